"""Sounds of the synthetic world: steady tones, beeps, rising/falling sweeps and noise at 16 kHz."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mm.synth.vocab import DIRECTIONS, PITCHES, SOUND_KINDS

SAMPLE_RATE = 16000


@dataclass
class Sound:
    kind: str  # a key of SOUND_KINDS
    pitch: str | None = None  # tone and beeps
    beeps: int | None = None  # beeps only
    direction: str | None = None  # sweep only
    seconds: float = 1.5
    gain: float = 0.5


def sample_sound(rng: np.random.Generator) -> Sound:
    kind = str(rng.choice(list(SOUND_KINDS)))
    s = Sound(kind=kind, seconds=float(rng.uniform(1.2, 1.9)), gain=float(rng.uniform(0.25, 0.7)))
    if kind in ("tone", "beeps"):
        s.pitch = str(rng.choice(list(PITCHES)))
    if kind == "beeps":
        s.beeps = int(rng.integers(1, 5))
        s.seconds = max(s.seconds, 0.2 + s.beeps * 0.3 + 0.1)  # room for every beep
    if kind == "sweep":
        s.direction = str(rng.choice(list(DIRECTIONS)))
    return s


def _fade(x: np.ndarray, n: int = 80) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, min(n, len(x) // 2))
    x[: len(ramp)] *= ramp
    x[len(x) - len(ramp):] *= ramp[::-1]
    return x


def synthesize(sound: Sound, rng: np.random.Generator) -> np.ndarray:
    """float32 waveform at 16 kHz; `rng` adds small frequency jitter and background hiss."""
    n = int(sound.seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    x = np.zeros(n, dtype=np.float64)
    if sound.kind in ("tone", "beeps"):
        f = PITCHES[sound.pitch][1] * float(rng.uniform(0.94, 1.06))
        if sound.kind == "tone":
            x = _fade(np.sin(2 * np.pi * f * t))
        else:
            beep, gap = 0.15, 0.15
            start = float(rng.uniform(0.05, 0.2))
            for k in range(sound.beeps):
                a = int((start + k * (beep + gap)) * SAMPLE_RATE)
                b = min(n, a + int(beep * SAMPLE_RATE))
                x[a:b] = _fade(np.sin(2 * np.pi * f * t[: b - a]))
    elif sound.kind == "sweep":
        lo, hi = 250.0 * float(rng.uniform(0.9, 1.1)), 1800.0 * float(rng.uniform(0.9, 1.1))
        f0, f1 = (lo, hi) if sound.direction == "rising" else (hi, lo)
        # Exponential sweep: instantaneous frequency f0 * (f1/f0)^(t/T).
        k = np.log(f1 / f0) / sound.seconds
        x = _fade(np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k))
    else:
        x = rng.standard_normal(n) * 0.5
    x = sound.gain * x + rng.standard_normal(n) * 0.005
    return np.clip(x, -1, 1).astype(np.float32)
