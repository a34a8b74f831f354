"""Object slots for the image Q-Former in stage 1a: each query reads one object, all of its attributes together.

Shape letters: B scenes, Q query slots (a G x G grid), Dq Q-Former width.

The tiny LLM answers about the wrong object: on its own training scenes, 129 of 130 wrong colour answers and
111 of 112 wrong shape answers named the colour or shape of another object in the picture, though a linear
probe read what is where from the Q-Former at 87-92%. Contrastive learning against captions lets the queries
spread an object's colour, shape and position over several outputs; slots make each object one token. (The
same LLM also fails from a written description of the scene, `mm bench described`, so slots alone will not
mend the answers; the recipe does not use them yet.) Here, beside the CLIP loss, each query predicts
the object in its own cell of a G x G grid over the picture (G*G = Q): "nothing", or its shape, colour,
size, region and centre, so one output carries one object whole and an answer is one attention hop away.
DETR (Carion et al., 2020) matches predictions to objects with the Hungarian algorithm; a fixed grid is the
simpler assignment here, since a world scene's objects rarely share a cell (a second one takes the nearest
free cell). The pooled outputs also predict the digit. Targets come from the world's record of each scene
(`meta`); other records get none and only the CLIP loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mm.synth.vocab import COLOURS, POSITIONS, SHAPES, SIZES

IGNORE = -100
_FIELDS = (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("position", POSITIONS))
DIGITS = 10


@dataclass
class SlotTargets:
    labels: torch.Tensor  # (Q, 4) long: shape (0 nothing, else 1 + index), colour, size, region (IGNORE if empty)
    centre: torch.Tensor  # (Q, 2) float: x, y of the object, fractions of width and height (0 where empty)
    digit: int | torch.Tensor  # 0 no digit, else 1 + the digit; (B,) in a batch


def grid_side(num_queries: int) -> int:
    side = math.isqrt(num_queries)
    if side * side != num_queries:
        raise ValueError(f"object slots need a square number of queries (a grid), got {num_queries}")
    return side


def _cell_centre(k: int, side: int) -> tuple[float, float]:
    row, col = divmod(k, side)
    return (col + 0.5) / side, (row + 0.5) / side


def assign_cells(centres: list[tuple[float, float]], side: int) -> list[int]:
    """Each object's grid cell: the one holding its centre, or when taken the nearest free one (in order)."""
    taken: set[int] = set()
    cells = []
    for x, y in centres:
        own = min(int(y * side), side - 1) * side + min(int(x * side), side - 1)
        if own in taken:
            free = [k for k in range(side * side) if k not in taken]
            own = min(free, key=lambda k: (_cell_centre(k, side)[0] - x) ** 2 + (_cell_centre(k, side)[1] - y) ** 2)
        taken.add(own)
        cells.append(own)
    return cells


def slot_targets(meta: Any, num_queries: int) -> SlotTargets | None:
    """The targets of a world scene's `meta` (its shapes and digit); None for anything else."""
    shapes = meta.get("shapes") if isinstance(meta, dict) else None
    need = {name for name, _ in _FIELDS} | {"x", "y"}
    if not shapes or not all(isinstance(s, dict) and need <= s.keys() for s in shapes):
        return None
    side = grid_side(num_queries)
    if len(shapes) > num_queries:
        return None
    labels = torch.full((num_queries, len(_FIELDS)), IGNORE, dtype=torch.long)
    labels[:, 0] = 0
    centre = torch.zeros(num_queries, 2)
    try:
        for cell, s in zip(assign_cells([(float(s["x"]), float(s["y"])) for s in shapes], side), shapes):
            labels[cell] = torch.tensor([1 + list(SHAPES).index(s["shape"])]
                                        + [list(names).index(s[f]) for f, names in _FIELDS[1:]])
            centre[cell] = torch.tensor([float(s["x"]), float(s["y"])])
    except ValueError:  # a name outside the world's vocabulary
        return None
    digit = meta.get("digit")
    return SlotTargets(labels, centre, 0 if digit is None else 1 + int(digit))


def stack_targets(targets: list[SlotTargets | None], num_queries: int) -> SlotTargets | None:
    """A batch's targets, (B, Q, 4) / (B, Q, 2) / (B,); items without any are ignored; None if none has any."""
    if all(t is None for t in targets):
        return None
    empty = SlotTargets(torch.full((num_queries, len(_FIELDS)), IGNORE, dtype=torch.long), torch.zeros(num_queries, 2),
                        IGNORE)
    full = [empty if t is None else t for t in targets]
    return SlotTargets(torch.stack([t.labels for t in full]), torch.stack([t.centre for t in full]),
                       torch.tensor([t.digit for t in full]))


class SlotHeads(nn.Module):
    """Per-query linear heads (shape incl. nothing, colour, size, region, centre) and a pooled digit head."""

    def __init__(self, width: int, empty_weight: float = 0.2) -> None:
        super().__init__()
        self.heads = nn.ModuleList([nn.Linear(width, len(names) + (1 if f == "shape" else 0)) for f, names in _FIELDS])
        self.centre = nn.Linear(width, 2)
        self.digit = nn.Linear(width, 1 + DIGITS)
        # Most cells are empty: "nothing" weighs less, as DETR's no-object class does.
        self.register_buffer("shape_weight", torch.tensor([empty_weight] + [1.0] * len(SHAPES)), persistent=False)

    def forward(self, outs: torch.Tensor, t: SlotTargets) -> torch.Tensor:
        """`outs`: (B, Q, Dq) Q-Former outputs; the summed cross-entropies and the centres' L1 distance."""
        outs = outs.float()
        loss = outs.new_zeros(())
        for i, head in enumerate(self.heads):
            logits = head(outs).flatten(0, 1)
            target = t.labels[..., i].flatten()
            if (target != IGNORE).any():
                loss = loss + F.cross_entropy(logits, target, weight=self.shape_weight if i == 0 else None,
                                              ignore_index=IGNORE)
        occupied = t.labels[..., 0] > 0
        if occupied.any():
            loss = loss + 4.0 * F.l1_loss(self.centre(outs)[occupied].sigmoid(), t.centre[occupied])
        if (t.digit != IGNORE).any():
            loss = loss + F.cross_entropy(self.digit(outs.mean(1)), t.digit, ignore_index=IGNORE)
        return loss

    @torch.no_grad()
    def accuracy(self, outs: torch.Tensor, t: SlotTargets) -> dict[str, float]:
        """Per attribute, the share of occupied cells (or of all cells, for shape) predicted right."""
        outs = outs.float()
        occupied = t.labels[..., 0] > 0
        res = {}
        for i, (f, _) in enumerate(_FIELDS):
            pred = self.heads[i](outs).argmax(-1)
            where = (t.labels[..., 0] != IGNORE) if i == 0 else occupied
            res[f] = float((pred == t.labels[..., i])[where].float().mean()) if where.any() else float("nan")
        res["object"] = float((torch.stack([self.heads[i](outs).argmax(-1) == t.labels[..., i]
                                            for i in range(len(_FIELDS))]).all(0))[occupied].float().mean())
        return res
