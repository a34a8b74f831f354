"""The multimodal model: frozen encoders -> Q-Former bridges -> projections -> spliced into the LLM.

Shape letters: B batch, T text tokens, N encoder tokens, Q query slots of one item, D Q-Former width,
E LLM embedding width, S total media slots in a batch.

Each prompt holds one placeholder token per media item, expanded to that item's slot count
(`mm.prompt.expand_placeholders`). `splice` writes the bridge outputs into those slots with
`masked_scatter`, in order of appearance, after checking that the counts match.

Every input kind is a `mm.modality.Modality` in `self.modalities` (name -> object, torchtune's
`EarlyFusionModel` shape): it prepares, collates, encodes and bridges its items and knows its slot count.
The model only loops over them. The weights keep their places (`encoders.<name>`, `qformers.<name>`,
`projectors.<name>`), so state-dict keys do not depend on the modality objects. Video (when
`config.video` is set) reuses the image encoder and image Q-Former per frame; the temporal Q-Former
(`bridge.temporal`) turns a clip's frames into V slots. A clip's sound track is a separate "audio" item
placed right after it.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from encoders.base import FrozenEncoder
from mm.checkpoint import bridge_state_dict
from mm.config import MMConfig
from mm.errors import InputError
from mm.generation import prefill_position_ids
from mm.llm import build_llm
from mm.modality import MODALITIES, MODALITY_TYPES, EncoderOutput, MediaBatch, Modality, VideoBatch

logger = logging.getLogger(__name__)

__all__ = ["MODALITIES", "MMModel", "VideoBatch"]


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
        # Not modules: each reads its parts from the three dicts above by its name.
        self.modalities: dict[str, Modality] = {}
        given = encoders or {}
        for name in config.modalities:
            kind = MODALITY_TYPES[name]
            parts = kind.build_parts(config, width, given.get(name))
            if parts.encoder is not None:
                self.encoders[name] = parts.encoder
            self.qformers[name] = parts.qformer
            self.projectors[name] = parts.projector
            self.modalities[name] = kind(config, self.encoders, self.qformers, self.projectors, self.modalities)
        # Placeholder token id per modality; set from the tokenizer (`set_media_token_ids`).
        self.media_token_ids: dict[str, int] = {}

    def set_media_token_ids(self, ids: dict[str, int]) -> None:
        self.media_token_ids = {m: ids[m] for m in self.config.modalities}

    def modality(self, name: str) -> Modality:
        """The modality object that reads `name` input; InputError when this model takes none."""
        try:
            return self.modalities[name]
        except KeyError:
            raise InputError(f"this model does not take {name} input (it takes: "
                             f"{', '.join(self.config.modalities)})") from None

    # -- bridge (by modality name; the work is the modality object's) ----------------------------

    def encoder_for(self, modality: str) -> FrozenEncoder:
        """The frozen encoder that reads `modality` (video frames are read by the image encoder)."""
        return self.modality(modality).encoder

    def encode(self, modality: str, inputs: MediaBatch) -> EncoderOutput:
        """Frozen encoder: states (B, N, De), mask (B, N) or None, valid tokens per item.

        For video, N = F*Nf: every frame's Nf image tokens, frame after frame."""
        return self.modality(modality).encode(inputs)

    def bridge(self, modality: str, states: torch.Tensor, mask: torch.Tensor | None,
               valid: list[int]) -> list[torch.Tensor]:
        """Q-Former over encoder states -> one (Q_i, D) tensor per item (trainable path)."""
        return self.modality(modality).bridge(states, mask, valid)

    def num_slots(self, modality: str, valid_tokens: int) -> int:
        return self.modality(modality).num_slots(valid_tokens)

    def bridge_tokens(self, modality: str, inputs: MediaBatch) -> list[torch.Tensor]:
        """Pre-projection Q-Former outputs, one (Q_i, D) tensor per item (for pooling and embeddings)."""
        return self.modality(modality).bridge_tokens(inputs)

    def embed_media(self, modality: str, inputs: MediaBatch) -> list[torch.Tensor]:
        """Bridge outputs in the LLM's embedding space, one (Q_i, E) tensor per item."""
        return self.modality(modality).embed(inputs)

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
        """Only the trained bridge (Q-Formers + projections, `mm.checkpoint.is_bridge_key`)."""
        return bridge_state_dict(self)
