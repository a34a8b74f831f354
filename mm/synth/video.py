"""Short clips of the synthetic world: one shape moving in a direction at a speed, with a beep.

A clip lasts `SECONDS` at `FPS`: the shape slides in a straight line (slow: a quarter of the frame,
fast: two thirds), and one beep of a named pitch sounds at the start or at the end. Everything is drawn
from a numpy Generator. `variant` makes the comparison pairs: the same clip with one attribute changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mm.synth.scene import CANVAS, CELL, _polygon
from mm.synth.sound import SAMPLE_RATE, _fade
from mm.synth.vocab import COLOURS, MOTIONS, PITCHES, SHAPES, SPEEDS, WHEN

SECONDS = 2.0
FPS = 12
TRAVEL = {"slow": 0.25, "fast": 0.65}  # fraction of the canvas crossed during the clip
STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class Clip:
    shape: str
    colour: str
    motion: str  # a key of MOTIONS
    speed: str  # a key of SPEEDS
    pitch: str  # pitch of the beep
    when: str  # a key of WHEN: the beep sounds at the start or at the end
    start: tuple[float, float] = (0.5, 0.5)  # centre at t=0, as fractions of the canvas
    beep_at: float = 0.3  # seconds

    def path(self, t: float) -> tuple[float, float]:
        """Centre (fractions of the canvas) at time t."""
        dx, dy = STEP[self.motion]
        d = TRAVEL[self.speed] * t / SECONDS
        return self.start[0] + dx * d, self.start[1] + dy * d


def sample_clip(rng: np.random.Generator) -> Clip:
    motion = str(rng.choice(list(MOTIONS)))
    speed = str(rng.choice(list(SPEEDS)))
    when = str(rng.choice(list(WHEN)))
    clip = Clip(shape=str(rng.choice(list(SHAPES))), colour=str(rng.choice(list(COLOURS))), motion=motion,
                speed=speed, pitch=str(rng.choice(list(PITCHES))), when=when)
    return _place(clip, rng)


def _place(clip: Clip, rng: np.random.Generator) -> Clip:
    """Pick a start point so the whole path stays inside the frame, and the beep's time."""
    margin = 0.16
    dx, dy = STEP[clip.motion]
    travel = TRAVEL[clip.speed]

    def span(d: int) -> tuple[float, float]:
        if d > 0:
            return margin, 1 - margin - travel
        if d < 0:
            return margin + travel, 1 - margin
        return margin + 0.1, 1 - margin - 0.1

    (x0, x1), (y0, y1) = span(dx), span(dy)
    start = (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
    beep_at = float(rng.uniform(0.1, 0.5)) if clip.when == "start" else float(rng.uniform(1.3, 1.65))
    return dataclasses.replace(clip, start=start, beep_at=beep_at)


def variant(clip: Clip, attribute: str, rng: np.random.Generator) -> Clip:
    """The same clip with `attribute` changed to another value (new start point if the path changes)."""
    choices = {"motion": MOTIONS, "speed": SPEEDS, "colour": COLOURS, "shape": SHAPES, "pitch": PITCHES, "when": WHEN}
    if attribute not in choices:
        raise ValueError(f"unknown clip attribute {attribute!r}; one of {', '.join(choices)}")
    current = getattr(clip, attribute)
    other = str(rng.choice([v for v in choices[attribute] if v != current]))
    out = dataclasses.replace(clip, **{attribute: other})
    if attribute in ("motion", "speed", "when"):
        keep_beep = out.beep_at if attribute != "when" else None
        out = _place(out, rng)
        if keep_beep is not None:
            out = dataclasses.replace(out, beep_at=keep_beep)
    return out


def render_frames(clip: Clip, fps: int = FPS) -> list[np.ndarray]:
    """(H, W, 3) uint8 frames."""
    frames = []
    r = CELL * 0.32
    fill = COLOURS[clip.colour][1]
    for k in range(int(SECONDS * fps)):
        img = Image.new("RGB", (CANVAS, CANVAS), "white")
        draw = ImageDraw.Draw(img)
        fx, fy = clip.path((k + 0.5) / fps)
        cx, cy = fx * CANVAS, fy * CANVAS
        if clip.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(clip.shape, cx, cy, r), fill=fill)
        frames.append(np.asarray(img))
    return frames


def soundtrack(clip: Clip, rng: np.random.Generator) -> np.ndarray:
    """float32 mono at 16 kHz: one 0.3 s beep at `beep_at` over faint hiss."""
    n = int(SECONDS * SAMPLE_RATE)
    x = np.zeros(n)
    f = PITCHES[clip.pitch][1] * float(rng.uniform(0.95, 1.05))
    a = int(clip.beep_at * SAMPLE_RATE)
    b = min(n, a + int(0.3 * SAMPLE_RATE))
    t = np.arange(b - a) / SAMPLE_RATE
    x[a:b] = _fade(np.sin(2 * np.pi * f * t)) * float(rng.uniform(0.3, 0.6))
    x += rng.standard_normal(n) * 0.005
    return np.clip(x, -1, 1).astype(np.float32)
