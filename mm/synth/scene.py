"""Images of the synthetic world: 1-3 shapes on a 3x3 grid, optionally a digit, rendered with PIL.

Everything is drawn from a numpy Generator, so a seed fixes the scene and its picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mm.synth.vocab import COLOURS, POSITIONS, SHAPES, SIZES

CANVAS = 128  # pixels; the tiny encoder sees 64
CELL = CANVAS / 3


@dataclass
class Shape:
    shape: str
    colour: str
    size: str
    position: str  # a key of POSITIONS


@dataclass
class Scene:
    shapes: list[Shape]
    digit: int | None = None
    digit_position: str | None = None
    jitter: list[tuple[float, float]] = field(default_factory=list)  # per-shape offset within its cell

    def unique(self, **attrs: str) -> Shape | None:
        """The one shape with these attributes, or None when zero or several match."""
        hits = [s for s in self.shapes if all(getattr(s, k) == v for k, v in attrs.items())]
        return hits[0] if len(hits) == 1 else None


def sample_scene(rng: np.random.Generator) -> Scene:
    n = int(rng.integers(1, 4))
    cells = list(rng.permutation(len(POSITIONS)))
    names = list(POSITIONS)
    shapes = [
        Shape(
            shape=str(rng.choice(list(SHAPES))),
            colour=str(rng.choice(list(COLOURS))),
            size=str(rng.choice(list(SIZES))),
            position=names[cells[i]],
        )
        for i in range(n)
    ]
    digit = digit_position = None
    if rng.random() < 0.5:
        digit = int(rng.integers(0, 10))
        digit_position = names[cells[n]]
    jitter = [(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08))) for _ in shapes]
    return Scene(shapes, digit, digit_position, jitter)


def _centre(position: str, jitter: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    idx = list(POSITIONS).index(position)
    row, col = divmod(idx, 3)
    return (col + 0.5 + jitter[0]) * CELL, (row + 0.5 + jitter[1]) * CELL


def _polygon(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if kind == "square":
        r *= 0.85
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if kind == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if kind == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    raise ValueError(kind)


def render(scene: Scene) -> Image.Image:
    img = Image.new("RGB", (CANVAS, CANVAS), "white")
    draw = ImageDraw.Draw(img)
    for s, jit in zip(scene.shapes, scene.jitter or [(0.0, 0.0)] * len(scene.shapes)):
        cx, cy = _centre(s.position, jit)
        r = CELL * (0.45 if s.size == "large" else 0.24)
        fill = COLOURS[s.colour][1]
        if s.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(s.shape, cx, cy, r), fill=fill)
    if scene.digit is not None and scene.digit_position is not None:
        cx, cy = _centre(scene.digit_position)
        font = ImageFont.load_default(size=int(CELL * 0.9))
        draw.text((cx, cy), str(scene.digit), font=font, fill=(40, 40, 40), anchor="mm")
    return img
