"""Frozen feature extractors: the common base of image and audio encoders.

Shape letters: B batch, N tokens, D encoder width.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from encoders.weights import load_into, read_state_dict


class FrozenEncoder(nn.Module):
    """Wraps a pretrained network whose weights never train.

    `requires_grad_(False)` keeps its parameters out of every optimiser, `train()` is overridden so it
    stays in eval mode (dropout off, norm statistics fixed) inside a model that is training, and the
    forward pass runs under `torch.no_grad()`.
    """

    modality: str = ""
    width: int = 0  # D of the returned tokens

    def freeze(self) -> FrozenEncoder:
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FrozenEncoder:  # noqa: ARG002 - frozen: always eval
        return super().train(False)

    def convert_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hook for families whose checkpoints use other parameter names."""
        return state

    def load_weights(self, path: str | Path, strict: bool = True) -> None:
        """Load a local checkpoint (see `encoders.weights.read_state_dict` for the formats) with strict
        accounting: a file that does not fill this encoder exactly raises `InputError`."""
        self.load_state(read_state_dict(path), source=path, strict=strict)

    def load_state(self, state: dict[str, torch.Tensor], *, source: str | Path, strict: bool = True) -> None:
        """Load tensors already read (e.g. the tower's part of a whole VisualGLM release), by assignment."""
        state = self.convert_state_dict(state)
        load_into(self, state, component=f"{self.modality} encoder", source=source, strict=strict)
        self.freeze()
