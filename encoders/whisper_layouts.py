"""OpenAI Whisper checkpoints (`{"dims", "model_state_dict"}`) -> transformers `WhisperEncoder` names.

Pure functions; no files. Shape letters: M mel bins, N audio positions, D width.

OpenAI's `AudioEncoder` (openai/whisper `whisper/model.py`): `encoder.conv1` (D, M, 3), `encoder.conv2`
(D, D, 3, stride 2), `encoder.positional_embedding` (N, D: sinusoids, a persistent buffer, so stored),
pre-norm blocks `encoder.blocks.N.{attn_ln, attn.query, attn.key (no bias), attn.value, attn.out, mlp_ln,
mlp.0, mlp.2}` and `encoder.ln_post`. The decoder (`decoder.*`) is not part of an audio encoder.
Names a conversion does not know pass through unchanged, so strict loading reports them by their own name.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import WhisperConfig

from encoders.weights import rename_first
from mm.errors import InputError

# OpenAI `ModelDimensions` field -> the WhisperConfig field it must equal.
DIMS_TO_CONFIG = {
    "n_mels": "num_mel_bins",
    "n_audio_ctx": "max_source_positions",
    "n_audio_state": "d_model",
    "n_audio_head": "encoder_attention_heads",
    "n_audio_layer": "encoder_layers",
}

_RENAMES = [
    (r"^encoder\.conv([12])\.", r"conv\1."),
    (r"^encoder\.positional_embedding$", "embed_positions.weight"),
    (r"^encoder\.blocks\.(\d+)\.attn\.query\.", r"layers.\1.self_attn.q_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn\.key\.weight$", r"layers.\1.self_attn.k_proj.weight"),
    (r"^encoder\.blocks\.(\d+)\.attn\.value\.", r"layers.\1.self_attn.v_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn\.out\.", r"layers.\1.self_attn.out_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn_ln\.", r"layers.\1.self_attn_layer_norm."),
    (r"^encoder\.blocks\.(\d+)\.mlp\.0\.", r"layers.\1.fc1."),
    (r"^encoder\.blocks\.(\d+)\.mlp\.2\.", r"layers.\1.fc2."),
    (r"^encoder\.blocks\.(\d+)\.mlp_ln\.", r"layers.\1.final_layer_norm."),
    (r"^encoder\.ln_post\.", "layer_norm."),
]


def is_openai_layout(state: dict[str, torch.Tensor]) -> bool:
    """True for OpenAI names (`encoder.blocks.*`, `encoder.ln_post`), as opposed to transformers'."""
    return any(k.startswith(("encoder.blocks.", "encoder.ln_post.", "encoder.positional_embedding")) for k in state)


def whisper_state_from_openai(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI `model_state_dict` -> `WhisperEncoder` names; `decoder.*` is left out."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("decoder."):
            continue
        out[rename_first(key, _RENAMES) or key] = value
    return out


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's fixed audio positions (N, D): sin of geometric timescales, then cos."""
    if channels % 2:
        raise ValueError(f"sinusoidal positions need an even width, got {channels}")
    increment = math.log(max_timescale) / (channels // 2 - 1)
    # float32 throughout, as the published buffer was computed
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]  # (N, D/2)
    return torch.cat([t.sin(), t.cos()], dim=1)  # (N, D)


def check_openai_dims(dims: Any, config: WhisperConfig, source: str) -> None:
    """InputError naming every encoder dimension of an OpenAI checkpoint that differs from `config`."""
    if not isinstance(dims, dict):
        raise InputError(f"{source}: 'dims' is a {type(dims).__name__}, not OpenAI Whisper's dimensions dict")
    wrong = [f"{k}={dims.get(k)} (encoder has {getattr(config, c)})" for k, c in DIMS_TO_CONFIG.items()
             if dims.get(k) != getattr(config, c)]
    if wrong:
        raise InputError(f"{source}: OpenAI Whisper checkpoint does not fit this audio encoder: {', '.join(wrong)}. "
                         "Pick the encoder of the checkpoint's size (e.g. whisper-large-v3, whisper-small).")
