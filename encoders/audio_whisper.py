"""Whisper encoders (transformers `WhisperEncoder`) with the log-mel front end and long-audio windows.

Shape letters: B items, W windows, M mel bins, T mel frames per window, N tokens per window,
D width, S samples.

Whisper sees fixed windows (30 s at full scale: T=3000 frames -> N=1500 tokens). Audio longer than one
window is split into consecutive windows that are encoded as a batch and concatenated, never truncated;
the padded tail of the last window is masked out.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from encoders.audio_io import HOP_LENGTH, SAMPLE_RATE, log_mel
from encoders.base import FrozenEncoder
from encoders.registry import register_encoder
from encoders.weights import load_into, read_checkpoint, strip_prefix
from encoders.whisper_layouts import check_openai_dims, is_openai_layout, sinusoids, whisper_state_from_openai

logger = logging.getLogger(__name__)


@dataclass
class AudioBatch:
    mel: torch.Tensor  # (sum W, M, T) every window of every item
    windows: list[int]  # W per item
    tokens: list[int]  # valid encoder tokens per item (over all its windows)


class WhisperAudioEncoder(FrozenEncoder):
    modality = "audio"

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.config = config
        self.model = WhisperEncoder(config)
        self.width = config.d_model
        self.n_mels = config.num_mel_bins
        self.tokens_per_window = config.max_source_positions  # N
        self.window_frames = 2 * config.max_source_positions  # T (the conv stem halves the frames)
        self.sample_rate = SAMPLE_RATE
        self.freeze()

    @property
    def window_seconds(self) -> float:
        return self.window_frames * HOP_LENGTH / SAMPLE_RATE

    def features(self, waves: list[torch.Tensor]) -> AudioBatch:
        """Mono 16 kHz waveforms -> log-mel windows of every item, ready for `forward`."""
        window_samples = self.window_frames * HOP_LENGTH
        mels, windows, tokens = [], [], []
        for wave in waves:
            n_win = max(1, math.ceil(wave.shape[-1] / window_samples))
            chunks = [wave[i * window_samples:(i + 1) * window_samples] for i in range(n_win)]
            mels.extend(log_mel(c, self.n_mels, self.window_frames) for c in chunks)
            frames = math.ceil(wave.shape[-1] / HOP_LENGTH)
            windows.append(n_win)
            tokens.append(max(1, min(math.ceil(frames / 2), n_win * self.tokens_per_window)))
        return AudioBatch(torch.stack(mels), windows, tokens)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, M, T) -> (B, N, D) last-layer states."""
        with torch.no_grad():
            dtype = next(self.model.parameters()).dtype
            return self.model(mel.to(dtype)).last_hidden_state

    def encode(self, batch: AudioBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """All windows in one batch, regrouped per item -> states (B, Wmax*N, D) and mask (B, Wmax*N)."""
        states = self.forward(batch.mel)  # (sum W, N, D)
        n = self.tokens_per_window
        w_max = max(batch.windows)
        out = states.new_zeros(len(batch.windows), w_max * n, states.shape[-1])
        mask = torch.zeros(len(batch.windows), w_max * n, dtype=torch.bool, device=states.device)
        start = 0
        for i, (w, t) in enumerate(zip(batch.windows, batch.tokens)):
            out[i, : w * n] = states[start:start + w].reshape(w * n, -1)  # (W*N, D)
            mask[i, :t] = True
            start += w
        return out, mask

    def load_weights(self, path: str | Path, strict: bool = True) -> None:
        """Load a local checkpoint strictly (see `FrozenEncoder.load_weights`). An OpenAI `.pt`
        (`{"dims", "model_state_dict"}`) must have this encoder's dimensions, else `InputError`."""
        path = Path(path)
        if path.is_file() and path.suffix != ".safetensors":
            obj = read_checkpoint(path)
            if isinstance(obj, dict) and "dims" in obj and isinstance(obj.get("model_state_dict"), dict):
                check_openai_dims(obj["dims"], self.config, str(path))
                tensors = {k: v for k, v in obj["model_state_dict"].items() if isinstance(v, torch.Tensor)}
                load_into(self, self.convert_state_dict(tensors), component="audio encoder", source=path,
                          strict=strict)
                self.freeze()
                return
        super().load_weights(path, strict)

    def convert_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accepts OpenAI names (`encoder.blocks.*`; see `encoders.whisper_layouts`), a full transformers
        checkpoint (`model.encoder.*` or `encoder.*`), an encoder-only one, or ours. The decoder and other
        components are left out (logged); every other tensor goes to strict loading."""
        state = strip_prefix(state, ("module.",))
        if is_openai_layout(state):
            encoder = whisper_state_from_openai(state)
            if len(encoder) < len(state):
                logger.info("audio encoder: %d OpenAI decoder tensors left out", len(state) - len(encoder))
            if "embed_positions.weight" not in encoder:  # a buffer of fixed sinusoids; recompute it
                logger.info("audio encoder: no encoder.positional_embedding stored; using Whisper's sinusoids")
                encoder["embed_positions.weight"] = sinusoids(self.config.max_source_positions, self.config.d_model)
            return {"model." + k: v for k, v in encoder.items()}
        for prefix in ("model.encoder.", "encoder."):
            if any(k.startswith(prefix) for k in state):
                encoder = {"model." + k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
                if len(encoder) < len(state):
                    logger.info("audio encoder: %d tensors outside `%s` (decoder, heads) left out",
                                len(state) - len(encoder), prefix)
                return encoder
        if any(k.startswith("model.") for k in state):
            return state
        return {"model." + k: v for k, v in state.items()}


def _whisper(defaults: dict[str, Any], overrides: dict[str, Any]) -> WhisperAudioEncoder:
    return WhisperAudioEncoder(WhisperConfig(**{**defaults, **overrides}))


def _register(name: str, **defaults: Any) -> None:
    def build(**overrides: Any) -> WhisperAudioEncoder:
        return _whisper(defaults, overrides)

    build.modality = "audio"  # type: ignore[attr-defined]
    build.__doc__ = f"Whisper encoder `{name}`: {defaults}"
    register_encoder(name)(build)


# Published shapes (openai/whisper model cards); weights come from the user's disk.
_register("whisper-large-v3", d_model=1280, encoder_layers=32, encoder_attention_heads=20,
          encoder_ffn_dim=5120, num_mel_bins=128, max_source_positions=1500)
_register("whisper-small", d_model=768, encoder_layers=12, encoder_attention_heads=12,
          encoder_ffn_dim=3072, num_mel_bins=80, max_source_positions=1500)
# Tiny: 2 s windows (T=200 frames -> 100 tokens), trained by the project on the synthetic world.
_register("tiny-whisper", d_model=128, encoder_layers=2, encoder_attention_heads=4,
          encoder_ffn_dim=512, num_mel_bins=80, max_source_positions=100)
