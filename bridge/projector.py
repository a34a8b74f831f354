"""Projection from the Q-Former width into the LLM's token-embedding space.

Shape letters: B batch, Q query tokens, D Q-Former width, E LLM embedding width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass
class ProjectorConfig:
    kind: Literal["linear", "mlp"] = "linear"  # BLIP-2 / VisualGLM use one Linear; LLaVA-1.5 a 2-layer MLP
    in_dim: int = 768  # Q-Former width D
    out_dim: int = 4096  # LLM embedding width E
    hidden_dim: int = 0  # MLP inner width; 0 means out_dim

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "mlp"):
            raise ValueError(f"ProjectorConfig.kind must be 'linear' or 'mlp', got {self.kind!r}")
        if self.in_dim < 1 or self.out_dim < 1:
            raise ValueError(f"ProjectorConfig dims must be >= 1, got in={self.in_dim} out={self.out_dim}")
        if not self.hidden_dim:
            self.hidden_dim = self.out_dim


class Projector(nn.Module):
    """(B, Q, D) -> (B, Q, E)."""

    def __init__(self, cfg: ProjectorConfig) -> None:
        super().__init__()
        self.config = cfg
        if cfg.kind == "linear":
            self.net = nn.Linear(cfg.in_dim, cfg.out_dim)
        else:
            self.net = nn.Sequential(
                nn.Linear(cfg.in_dim, cfg.hidden_dim), nn.GELU(), nn.Linear(cfg.hidden_dim, cfg.out_dim)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
