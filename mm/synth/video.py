"""Short clips of the synthetic world: one shape moving in a direction at a speed, with a beep.

A clip lasts `SECONDS` at `FPS`: the shape slides in a straight line (slow: at most 0.3 of the frame,
fast: at least 0.5; classic clips a quarter and two thirds), and one beep of a named pitch sounds at the
start or at the end. Everything is drawn from a numpy Generator. `variant` makes the comparison pairs:
the same clip with one attribute changed.

`sample_clip(rng, classic=True)` is the world the shipped model was trained on (one size, pure colours,
white background, a 0.3 s sine beep); the default also varies the shape's size and rotation, the
colour's shade, a light background tint, and the beep's tone colour, length and loudness, while the
motion, the speed class, the pitch band and the beep's half of the clip stay unambiguous.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mm.synth.scene import CANVAS, CELL, _polygon
from mm.synth.sound import SAMPLE_RATE, TIMBRES, Sound, _fade, synthesize
from mm.synth.vocab import COLOURS, MOTIONS, PITCHES, SHAPES, SPEEDS, WHEN

SECONDS = 2.0
FPS = 12
TRAVEL = {"slow": 0.25, "fast": 0.65}  # classic clips: fraction of the canvas crossed during the clip
TRAVEL_RANGE = {"slow": (0.15, 0.3), "fast": (0.5, 0.65)}  # varied clips: the classes never meet
STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
CLASSIC_RADIUS = 0.32 / 3  # of the canvas (0.32 of a cell)
RADIUS_RANGE = (0.07, 0.13)  # varied clips
BEEP_AT = {"start": (0.1, 0.5), "end": (1.3, 1.65)}  # seconds: the beep starts in this window
SUPERSAMPLE = 4  # varied frames are drawn this much larger and box-averaged down: anti-aliased edges


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
    travel: float | None = None  # fraction of the canvas crossed; None: TRAVEL[speed]
    radius: float = CLASSIC_RADIUS  # fraction of the canvas
    rotation: float = 0.0  # degrees
    shade: float = 0.0  # -1..1: towards black (negative) or white (positive) by this fraction
    background: tuple[int, int, int] = (255, 255, 255)
    timbre: str = "sine"  # the beep's tone colour, a key of mm.synth.sound.TIMBRES
    beep_seconds: float = 0.3
    beep_gain: float = 0.45
    noise: float = 0.005  # background noise amplitude of the sound track
    classic: bool = False  # today's clips (drawing and sound track): the shipped model's world

    def distance(self) -> float:
        return TRAVEL[self.speed] if self.travel is None else self.travel

    def path(self, t: float) -> tuple[float, float]:
        """Centre (fractions of the canvas) at time t."""
        dx, dy = STEP[self.motion]
        d = self.distance() * t / SECONDS
        return self.start[0] + dx * d, self.start[1] + dy * d


def sample_clip(rng: np.random.Generator, *, classic: bool = False) -> Clip:
    """A random clip; `classic=True` draws exactly what today's world drew (same rng calls, same clip)."""
    motion = str(rng.choice(list(MOTIONS)))
    speed = str(rng.choice(list(SPEEDS)))
    when = str(rng.choice(list(WHEN)))
    clip = Clip(shape=str(rng.choice(list(SHAPES))), colour=str(rng.choice(list(COLOURS))), motion=motion,
                speed=speed, pitch=str(rng.choice(list(PITCHES))), when=when, classic=classic)
    if not classic:
        clip = dataclasses.replace(
            clip, travel=_travel(speed, rng), radius=float(rng.uniform(*RADIUS_RANGE)),
            rotation=float(rng.uniform(-45.0, 45.0)), shade=float(rng.uniform(-0.2, 0.25)),
            background=tuple(int(v) for v in rng.integers(225, 256, size=3)),
            timbre=str(rng.choice(TIMBRES)), beep_seconds=float(rng.uniform(0.12, 0.3)),
            beep_gain=float(rng.uniform(0.15, 0.8)))
        snr_db = float(rng.uniform(15.0, 45.0))
        clip.noise = 0.0 if rng.random() < 0.2 else clip.beep_gain / math.sqrt(2) * 10 ** (-snr_db / 20)
    return _place(clip, rng)


def _travel(speed: str, rng: np.random.Generator) -> float:
    return float(rng.uniform(*TRAVEL_RANGE[speed]))


def _place(clip: Clip, rng: np.random.Generator) -> Clip:
    """Pick a start point so the whole path stays inside the frame, and the beep's time."""
    margin = 0.16 if clip.classic else clip.radius * 1.2 + 0.02  # a square's corner reaches 1.2 r
    dx, dy = STEP[clip.motion]
    travel = clip.distance()

    def span(d: int) -> tuple[float, float]:
        if d > 0:
            return margin, 1 - margin - travel
        if d < 0:
            return margin + travel, 1 - margin
        return margin + 0.1, 1 - margin - 0.1

    (x0, x1), (y0, y1) = span(dx), span(dy)
    start = (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
    beep_at = float(rng.uniform(*BEEP_AT[clip.when]))
    return dataclasses.replace(clip, start=start, beep_at=beep_at)


def variant(clip: Clip, attribute: str, rng: np.random.Generator) -> Clip:
    """The same clip with `attribute` changed to another value (new start point if the path changes)."""
    choices = {"motion": MOTIONS, "speed": SPEEDS, "colour": COLOURS, "shape": SHAPES, "pitch": PITCHES, "when": WHEN}
    if attribute not in choices:
        raise ValueError(f"unknown clip attribute {attribute!r}; one of {', '.join(choices)}")
    current = getattr(clip, attribute)
    other = str(rng.choice([v for v in choices[attribute] if v != current]))
    out = dataclasses.replace(clip, **{attribute: other})
    if attribute == "speed" and not clip.classic:
        out.travel = _travel(other, rng)
    if attribute in ("motion", "speed", "when"):
        keep_beep = out.beep_at if attribute != "when" else None
        out = _place(out, rng)
        if keep_beep is not None:
            out = dataclasses.replace(out, beep_at=keep_beep)
    return out


def render_frames(clip: Clip, fps: int = FPS, rng: np.random.Generator | None = None,
                  indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """(H, W, 3) uint8 frames; `rng` adds faint per-frame sensor noise to varied clips. `indices`: only
    those frames (of the `SECONDS * fps`), in that order (varied clips only)."""
    if clip.classic:
        if indices is not None:
            raise ValueError("indices: classic clips are rendered whole")
        return _render_classic(clip, fps)
    side = CANVAS * SUPERSAMPLE
    r = clip.radius * side
    fill = _shaded(COLOURS[clip.colour][1], clip.shade)
    frames = []
    for k in range(int(SECONDS * fps)) if indices is None else indices:
        img = Image.new("RGB", (side, side), tuple(clip.background))  # a list when read back from JSON
        draw = ImageDraw.Draw(img)
        fx, fy = clip.path((k + 0.5) / fps)
        cx, cy = fx * side, fy * side
        if clip.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_turned(_polygon(clip.shape, cx, cy, r), cx, cy, clip.rotation), fill=fill)
        frame = np.asarray(img.resize((CANVAS, CANVAS), Image.Resampling.BOX))
        if rng is not None:
            frame = np.clip(frame + rng.normal(0.0, 2.0, frame.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
    return frames


def _shaded(rgb: tuple[int, int, int], shade: float) -> tuple[int, int, int]:
    target = 255.0 if shade > 0 else 0.0
    return tuple(int(round(c + (target - c) * abs(shade))) for c in rgb)


def _turned(points: list[tuple[float, float]], cx: float, cy: float, degrees: float) -> list[tuple[float, float]]:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]


def _render_classic(clip: Clip, fps: int) -> list[np.ndarray]:
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
    """float32 mono at 16 kHz: one beep at `beep_at` over background noise (classic: 0.3 s sine, faint hiss)."""
    if not clip.classic:
        beep = Sound("beeps", pitch=clip.pitch, beeps=1, seconds=SECONDS, gain=clip.beep_gain, timbre=clip.timbre,
                     beep_seconds=clip.beep_seconds, onset=clip.beep_at, noise=clip.noise)
        return synthesize(beep, rng)
    n = int(SECONDS * SAMPLE_RATE)
    x = np.zeros(n)
    f = PITCHES[clip.pitch][1] * float(rng.uniform(0.95, 1.05))
    a = int(clip.beep_at * SAMPLE_RATE)
    b = min(n, a + int(0.3 * SAMPLE_RATE))
    t = np.arange(b - a) / SAMPLE_RATE
    x[a:b] = _fade(np.sin(2 * np.pi * f * t)) * float(rng.uniform(0.3, 0.6))
    x += rng.standard_normal(n) * 0.005
    return np.clip(x, -1, 1).astype(np.float32)
