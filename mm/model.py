"""The multimodal model: frozen encoders -> Q-Former bridges -> projections -> spliced into the LLM.

Shape letters: B batch, T text tokens, N encoder tokens, Q query slots of one item, D Q-Former width,
E LLM embedding width, S total media slots in a batch.

Each prompt holds one placeholder token per media item, expanded to that item's slot count
(`mm.prompt.expand_placeholders`). `splice` writes the bridge outputs into those slots with
`masked_scatter`, in order of appearance, after checking that the counts match.

Video (when `config.video` is set) reuses the image encoder and image Q-Former per frame; the temporal
Q-Former (`bridge.temporal`) turns a clip's frames into V slots. A clip's sound track is a separate
"audio" item placed right after it.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import nn

from bridge.projector import Projector, ProjectorConfig
from bridge.qformer import QFormer
from bridge.temporal import TemporalQFormer
from encoders.audio_whisper import AudioBatch
from encoders.base import FrozenEncoder
from encoders.registry import create_encoder
from mm.config import MMConfig
from mm.generation import prefill_position_ids
from mm.llm import build_llm

logger = logging.getLogger(__name__)

MODALITIES = ("image", "audio", "video")


@dataclasses.dataclass
class VideoBatch:
    pixels: torch.Tensor  # (B, F, 3, H, W), frames beyond a clip's length are zero
    frames: list[int]  # real frames per clip

    def to(self, device: torch.device | str | None) -> VideoBatch:
        return VideoBatch(self.pixels.to(device), self.frames)


class MMModel(nn.Module):
    def __init__(self, config: MMConfig, llm: nn.Module | None = None,
                 encoders: dict[str, FrozenEncoder] | None = None) -> None:
        """`llm` and `encoders` (by modality) may come prebuilt, e.g. loaded from their checkpoints."""
        super().__init__()
        self.config = config
        self.llm = llm if llm is not None else build_llm(config.llm)
        width = self.llm.get_input_embeddings().embedding_dim
        self.encoders = nn.ModuleDict()
        self.qformers = nn.ModuleDict()
        self.projectors = nn.ModuleDict()
        given = encoders or {}
        for m in config.modalities:
            if m == "video":
                continue
            enc_cfg = getattr(config, f"{m}_encoder")
            encoder = given.get(m) or create_encoder(enc_cfg.name, **enc_cfg.options)
            if encoder.modality != m:
                raise ValueError(f"{m}_encoder {enc_cfg.name!r} is a {encoder.modality} encoder")
            q_cfg = dataclasses.replace(getattr(config, f"{m}_qformer"), encoder_width=encoder.width)
            self.encoders[m] = encoder
            self.qformers[m] = QFormer(q_cfg)
            self.projectors[m] = Projector(ProjectorConfig(config.projector, q_cfg.hidden_size, width))
        if config.video is not None:
            image_q = self.qformers["image"].config
            t_cfg = dataclasses.replace(config.video.temporal, encoder_width=image_q.hidden_size)
            self.qformers["video"] = TemporalQFormer(t_cfg, config.video.max_frames)
            self.projectors["video"] = Projector(ProjectorConfig(config.projector, t_cfg.hidden_size, width))
        # Placeholder token id per modality; set from the tokenizer (`set_media_token_ids`).
        self.media_token_ids: dict[str, int] = {}

    def set_media_token_ids(self, ids: dict[str, int]) -> None:
        self.media_token_ids = {m: ids[m] for m in self.config.modalities}

    # -- bridge -----------------------------------------------------------------------------------

    def encoder_for(self, modality: str):
        """The frozen encoder that reads `modality` (video frames are read by the image encoder)."""
        if modality not in self.config.modalities:
            raise ValueError(f"this model has no {modality} input (it takes: {', '.join(self.config.modalities)})")
        return self.encoders["image" if modality == "video" else modality]

    def encode(self, modality: str, inputs: torch.Tensor | AudioBatch | VideoBatch,
               ) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
        """Frozen encoder: states (B, N, De), mask (B, N) or None, valid tokens per item.

        For video, N = F*Nf: every frame's Nf image tokens, frame after frame."""
        encoder = self.encoder_for(modality)
        if modality == "video":
            b, f = inputs.pixels.shape[:2]
            states = encoder(inputs.pixels.flatten(0, 1))  # (B*F, Nf, De)
            nf = states.shape[1]
            states = states.reshape(b, f * nf, -1)
            valid = [n * nf for n in inputs.frames]
            mask = torch.arange(f * nf, device=states.device)[None, :] < torch.tensor(valid, device=states.device)[:, None]
            return states, mask, valid
        if modality == "image":
            states = encoder(inputs)  # (B, N, De)
            return states, None, [states.shape[1]] * states.shape[0]
        states, mask = encoder.encode(inputs)  # (B, W*N, De), (B, W*N)
        return states, mask, list(inputs.tokens)

    def bridge(self, modality: str, states: torch.Tensor, mask: torch.Tensor | None,
               valid: list[int]) -> list[torch.Tensor]:
        """Q-Former over encoder states -> one (Q_i, D) tensor per item (trainable path)."""
        if modality == "video":
            return self._bridge_video(states, valid)
        qformer = self.qformers[modality]
        out = qformer(states.to(qformer.query_tokens.dtype), mask)  # (B, Q', D)
        return [o[: qformer.num_output_tokens(v)] for o, v in zip(out, valid)]

    def _bridge_video(self, states: torch.Tensor, valid: list[int]) -> list[torch.Tensor]:
        """(B, F*Nf, De) frame tokens -> image Q-Former per frame -> temporal Q-Former -> (V, Dv) per clip."""
        image_q, temporal = self.qformers["image"], self.qformers["video"]
        nf = self.encoders["image"].num_tokens
        b, n, de = states.shape
        f = n // nf
        frames = states.reshape(b * f, nf, de).to(image_q.query_tokens.dtype)
        tokens = image_q(frames, None)  # (B*F, Q, D)
        tokens = tokens.reshape(b, f, *tokens.shape[1:])  # (B, F, Q, D)
        frame_mask = torch.arange(f, device=states.device)[None, :] < torch.tensor(
            [v // nf for v in valid], device=states.device)[:, None]  # (B, F)
        return list(temporal(tokens, frame_mask))

    def num_slots(self, modality: str, valid_tokens: int) -> int:
        if modality == "video":
            return self.qformers["video"].num_queries
        return self.qformers[modality].num_output_tokens(valid_tokens)

    def bridge_tokens(self, modality: str, inputs: torch.Tensor | AudioBatch) -> list[torch.Tensor]:
        """Pre-projection Q-Former outputs, one (Q_i, D) tensor per item (for pooling and embeddings)."""
        return self.bridge(modality, *self.encode(modality, inputs))

    def embed_media(self, modality: str, inputs: torch.Tensor | AudioBatch) -> list[torch.Tensor]:
        """Bridge outputs in the LLM's embedding space, one (Q_i, E) tensor per item."""
        tokens = self.bridge_tokens(modality, inputs)
        proj = self.projectors[modality]
        return [proj(t) for t in tokens]

    # -- splice -----------------------------------------------------------------------------------

    def media_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = torch.tensor(list(self.media_token_ids.values()), device=input_ids.device)
        return torch.isin(input_ids, ids)  # (B, T)

    def splice(self, input_ids: torch.Tensor, media: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with media slots replaced by `media` (S, E), row-major slot order."""
        mask = self.media_mask(input_ids)  # (B, T)
        # Placeholder ids may lie beyond the embedding table; they are overwritten anyway.
        embeds = self.llm.get_input_embeddings()(input_ids.masked_fill(mask, 0))  # (B, T, E)
        n_slots = int(mask.sum())
        n_media = 0 if media is None else media.shape[0]
        if n_slots != n_media:
            raise ValueError(f"the prompt has {n_slots} media slots but {n_media} media embeddings were given")
        if n_slots == 0:
            return embeds
        return embeds.masked_scatter(mask[..., None], media.to(embeds.dtype))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        media: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ):
        """LM forward on spliced embeddings; with `labels` (IGNORE_INDEX outside answers) returns the loss."""
        embeds = self.splice(input_ids, media)
        from_ids = getattr(self.llm, "position_ids_from_input_ids", None)  # ChatGLM-6B: context ends at <sop>
        if position_ids is None and from_ids is not None:
            position_ids = from_ids(input_ids, attention_mask)
        elif position_ids is None and attention_mask is not None:
            position_ids = prefill_position_ids(self.llm, attention_mask)
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                        labels=labels)

    # -- parameters -------------------------------------------------------------------------------

    def bridge_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained bridge (Q-Formers + projections), for bridge-only saves of full-scale models."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("qformers.", "projectors."))}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
