"""The trainable part: Q-Former bridges and the projection into the LLM's token space."""

from bridge.projector import Projector, ProjectorConfig
from bridge.qformer import QFormer, QFormerConfig, qformer_from_blip2, qformer_state_from_blip2
from bridge.temporal import TemporalQFormer

__all__ = [
    "Projector",
    "ProjectorConfig",
    "QFormer",
    "QFormerConfig",
    "TemporalQFormer",
    "qformer_from_blip2",
    "qformer_state_from_blip2",
]
