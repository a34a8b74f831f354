"""The video Q-Former (Video-LLaMA's design): per-frame image-bridge outputs + frame positions -> video slots.

Shape letters: B clips, F frames, Q image-bridge outputs per frame, D their width, V video slots.

Each frame goes through the image encoder and the image Q-Former as a still picture would; a learned
frame-position embedding is added to that frame's Q outputs, and a small Q-Former cross-attends to all
F*Q of them to produce V slots for the whole clip. Frames beyond a clip's length are masked out.
"""

from __future__ import annotations

import torch
from torch import nn

from bridge.qformer import QFormer, QFormerConfig


class TemporalQFormer(nn.Module):
    def __init__(self, cfg: QFormerConfig, max_frames: int) -> None:
        super().__init__()
        if cfg.window_size:
            raise ValueError("the temporal Q-Former reads whole clips; window_size must be 0")
        self.max_frames = max_frames
        self.frame_position = nn.Embedding(max_frames, cfg.encoder_width)
        # Comparable to the (layer-normed, ~unit) frame tokens, so frame order is visible from the start.
        nn.init.normal_(self.frame_position.weight, std=0.5)
        self.qformer = QFormer(cfg)

    @property
    def num_queries(self) -> int:
        return self.qformer.config.num_queries

    def forward(self, frame_tokens: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """frame_tokens (B, F, Q, D), frame_mask (B, F) bool (True = a real frame) -> (B, V, Dv)."""
        b, f, q, d = frame_tokens.shape
        if f > self.max_frames:
            raise ValueError(f"{f} frames given; this model's frame-position table holds {self.max_frames}")
        pos = self.frame_position.weight[:f].to(frame_tokens.dtype)  # (F, D)
        x = (frame_tokens + pos[None, :, None, :]).reshape(b, f * q, d)
        mask = None if frame_mask is None else frame_mask.repeat_interleave(q, dim=1)  # (B, F*Q)
        return self.qformer(x, mask)
