"""Sounds of the synthetic world: steady tones, beeps, rising/falling sweeps and noise, at any sample rate.

Two samplers share one `Sound` description. `sample_sound(rng, classic=True)` is the world the shipped
model was trained on (sine tones, 0.15 s beeps, one loudness range, faint hiss, 16 kHz); the default
draws varied sounds: beep length, gap, loudness, onset, tone colour (sine, square, saw: additive and
band-limited, so nothing aliases) and background noise, with the truth (kind, pitch band, beep count,
sweep direction) always plain to a listener. `synthesize` renders either at 8-48 kHz; a classic sound at
16 kHz is today's waveform bit for bit. `mm.synth.sound_alt` is a second, independent synthesiser used
only for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mm.synth.vocab import DIRECTIONS, PITCHES, SOUND_KINDS

SAMPLE_RATE = 16000
MIN_RATE, MAX_RATE = 8000, 48000  # sample rates `synthesize` accepts
TIMBRES = ("sine", "square", "saw")
Timbre = Literal["sine", "square", "saw"]
HARMONIC_CEILING = 7000.0  # Hz: no partial above this (nor above 0.45 * rate), so every rate sounds alike
MIN_SNR_DB = 12.0  # background noise never comes closer than this to the sound's RMS level


@dataclass
class Sound:
    kind: str  # a key of SOUND_KINDS
    pitch: str | None = None  # tone and beeps
    beeps: int | None = None  # beeps only
    direction: str | None = None  # sweep only
    seconds: float = 1.5  # whole sound, silence included
    gain: float = 0.5  # peak level of the sound itself (before the background noise)
    timbre: str = "sine"  # a key of TIMBRES: tone colour of tones, beeps and sweeps
    beep_seconds: float = 0.15  # length of one beep
    gap_seconds: float = 0.15  # silence between beeps
    onset: float = 0.1  # seconds before the first sound
    noise: float = 0.005  # background noise amplitude (standard deviation)
    classic: bool = False  # today's synthesis (onset and jitter drawn while synthesising): the shipped model's world


def sample_sound(rng: np.random.Generator, *, classic: bool = False) -> Sound:
    """A random sound; `classic=True` draws exactly what today's world drew (same rng calls, same Sound)."""
    if classic:
        return _sample_classic(rng)
    kind = str(rng.choice(list(SOUND_KINDS)))
    s = Sound(kind=kind, gain=float(rng.uniform(0.1, 0.9)), timbre=str(rng.choice(TIMBRES)),
              onset=float(rng.uniform(0.02, 0.4)))
    if kind in ("tone", "beeps"):
        s.pitch = str(rng.choice(list(PITCHES)))
    if kind == "beeps":
        s.beeps = int(rng.integers(1, 5))
        s.beep_seconds = float(rng.uniform(0.06, 0.3))
        s.gap_seconds = float(rng.uniform(0.08, 0.35))
        pattern = s.beeps * s.beep_seconds + (s.beeps - 1) * s.gap_seconds
        s.seconds = s.onset + pattern + float(rng.uniform(0.1, 0.5))
    else:
        # Tones, sweeps and noise run from the onset to the end: the length sets a sweep's speed.
        s.seconds = s.onset + float(rng.uniform(0.4, 2.2))
    if kind == "sweep":
        s.direction = str(rng.choice(list(DIRECTIONS)))
    # Background: none a fifth of the time, otherwise 12-45 dB below the sound's RMS (a sine's: gain/sqrt 2).
    snr_db = float(rng.uniform(MIN_SNR_DB, 45.0))
    s.noise = 0.0 if rng.random() < 0.2 else s.gain / np.sqrt(2) * 10 ** (-snr_db / 20)
    return s


def _sample_classic(rng: np.random.Generator) -> Sound:
    kind = str(rng.choice(list(SOUND_KINDS)))
    s = Sound(kind=kind, seconds=float(rng.uniform(1.2, 1.9)), gain=float(rng.uniform(0.25, 0.7)), classic=True)
    if kind in ("tone", "beeps"):
        s.pitch = str(rng.choice(list(PITCHES)))
    if kind == "beeps":
        s.beeps = int(rng.integers(1, 5))
        s.seconds = max(s.seconds, 0.2 + s.beeps * 0.3 + 0.1)  # room for every beep
    if kind == "sweep":
        s.direction = str(rng.choice(list(DIRECTIONS)))
    return s


def _fade(x: np.ndarray, n: int = 80) -> np.ndarray:
    """Linear fade-in and fade-out of `n` samples, in place."""
    ramp = np.linspace(0.0, 1.0, min(n, len(x) // 2))
    x[: len(ramp)] *= ramp
    x[len(x) - len(ramp):] *= ramp[::-1]
    return x


def synthesize(sound: Sound, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 mono waveform at `sample_rate` (8-48 kHz); `rng` adds pitch jitter and the background noise."""
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise ValueError(f"sample_rate must be {MIN_RATE}-{MAX_RATE} Hz, got {sample_rate}")
    if sound.classic:
        return _synthesize_classic(sound, rng, sample_rate)
    sr = sample_rate
    n = int(round(sound.seconds * sr))
    x = np.zeros(n, dtype=np.float64)
    a0 = min(n, int(round(sound.onset * sr)))
    fade = max(2, int(float(rng.uniform(0.003, 0.012)) * sr))
    if sound.kind in ("tone", "beeps"):
        f = PITCHES[sound.pitch][1] * float(rng.uniform(0.94, 1.06))
        if sound.kind == "tone":
            x[a0:] = _fade(_oscillator(sound.timbre, np.full(n - a0, f), sr), fade)
        else:
            m = int(round(sound.beep_seconds * sr))
            wave = _oscillator(sound.timbre, np.full(m, f), sr)
            for k in range(sound.beeps):
                a = a0 + int(round(k * (sound.beep_seconds + sound.gap_seconds) * sr))
                b = min(n, a + m)
                x[a:b] = _fade(wave[: b - a].copy(), fade) * float(rng.uniform(0.85, 1.0))
    elif sound.kind == "sweep":
        # Exponential law over a range of 3-8x (about 1.5-3 octaves) somewhere in 150-3600 Hz.
        lo = float(rng.uniform(150.0, 450.0))
        hi = min(lo * float(rng.uniform(3.0, 8.0)), 3600.0, 0.4 * sr)
        f0, f1 = (lo, hi) if sound.direction == "rising" else (hi, lo)
        freq = f0 * (f1 / f0) ** np.linspace(0.0, 1.0, n - a0)
        x[a0:] = _fade(_oscillator(sound.timbre, freq, sr), fade)
    else:
        x[a0:] = _fade(rng.standard_normal(n - a0) * 0.35, fade)
    x = sound.gain * x + rng.standard_normal(n) * sound.noise
    return np.clip(x, -1, 1).astype(np.float32)


def _oscillator(timbre: str, freq: np.ndarray, sample_rate: int) -> np.ndarray:
    """Peak-normalised waveform following the instantaneous frequency `freq` (Hz per sample).

    Square and saw are sums of their harmonics (odd 1/k; all 1/k), each faded out as it nears the
    ceiling, so nothing folds back below Nyquist. The fundamental always has the largest amplitude.
    """
    if timbre not in TIMBRES:
        raise ValueError(f"unknown timbre {timbre!r}; one of {', '.join(TIMBRES)}")
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    if timbre == "sine":
        return np.sin(phase)
    ceiling = min(HARMONIC_CEILING, 0.45 * sample_rate)
    ks = range(1, int(ceiling / float(freq.min())) + 1, 2 if timbre == "square" else 1)
    x = np.zeros_like(phase)
    for k in ks:
        # Full weight up to 90% of the ceiling, then a linear taper to zero at the ceiling.
        w = np.clip((ceiling - k * freq) / (0.1 * ceiling), 0.0, 1.0)
        x += w * np.sin(k * phase) / k
    return x / max(float(np.abs(x).max()), 1e-9)


def _synthesize_classic(sound: Sound, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Today's synthesis, unchanged: at 16 kHz the same samples for the same (sound, rng)."""
    n = int(sound.seconds * sample_rate)
    t = np.arange(n) / sample_rate
    fade = 80 * sample_rate // SAMPLE_RATE
    x = np.zeros(n, dtype=np.float64)
    if sound.kind in ("tone", "beeps"):
        f = PITCHES[sound.pitch][1] * float(rng.uniform(0.94, 1.06))
        if sound.kind == "tone":
            x = _fade(np.sin(2 * np.pi * f * t), fade)
        else:
            beep, gap = 0.15, 0.15
            start = float(rng.uniform(0.05, 0.2))
            for k in range(sound.beeps):
                a = int((start + k * (beep + gap)) * sample_rate)
                b = min(n, a + int(beep * sample_rate))
                x[a:b] = _fade(np.sin(2 * np.pi * f * t[: b - a]), fade)
    elif sound.kind == "sweep":
        lo, hi = 250.0 * float(rng.uniform(0.9, 1.1)), 1800.0 * float(rng.uniform(0.9, 1.1))
        f0, f1 = (lo, hi) if sound.direction == "rising" else (hi, lo)
        # Exponential sweep: instantaneous frequency f0 * (f1/f0)^(t/T).
        k = np.log(f1 / f0) / sound.seconds
        x = _fade(np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k), fade)
    else:
        x = rng.standard_normal(n) * 0.5
    x = sound.gain * x + rng.standard_normal(n) * 0.005
    return np.clip(x, -1, 1).astype(np.float32)
