"""The one pad-and-mask helper: variable-length tensors -> one padded batch and the mask of real entries.

Shape letters: B batch, L longest length, ... the trailing dimensions every tensor shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch


def pad_and_mask(
    tensors: Sequence[torch.Tensor], *, side: Literal["right", "left"] = "right", value: float | int = 0,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_i, ...) tensors -> (B, L, ...) padded with `value` and a (B, L) bool mask, True on real entries.

    `side="left"` pads in front (prompts for generation end together); `"right"` after (frames of clips).
    """
    if not tensors:
        raise ValueError("pad_and_mask needs at least one tensor")
    longest = max(t.shape[0] for t in tensors)
    first = tensors[0]
    out = torch.full((len(tensors), longest, *first.shape[1:]), value, dtype=first.dtype, device=device)
    mask = torch.zeros(len(tensors), longest, dtype=torch.bool, device=device)
    for i, t in enumerate(tensors):
        n = t.shape[0]
        rows = slice(longest - n, longest) if side == "left" else slice(0, n)
        out[i, rows] = t.to(device)
        mask[i, rows] = True
    return out, mask
