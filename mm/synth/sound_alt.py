"""A second synthesiser of the world's sounds, written apart from `mm.synth.sound`: evaluation only.

The *unseen rendering* split plays the same `Sound` descriptions through different machinery, so a
model that learnt the training synthesiser's quirks rather than what a listener hears is caught out:

- envelopes are ADSR (attack, decay, sustain, release) instead of linear fades;
- tone colour comes from two-operator FM (modulator at 2x the carrier for a square-like, odd-harmonic
  colour, at 1x for a saw-like one), not from adding harmonics; sines get a slow vibrato;
- sweeps follow a linear frequency law over their own range, not an exponential one;
- background noise is white, pink or brown (FFT-shaped), and half the sounds get a faint two-tap echo;
- everything is rendered at 44.1 kHz and band-limited to the requested rate by FFT resampling.

The truth a person hears stays put: the kind, the pitch band (the FM fundamental stays the strongest
partial), the number of beeps (gaps stay silent but for an echo well below the beeps) and the direction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mm.synth.vocab import PITCHES

if TYPE_CHECKING:
    from mm.synth.sound import Sound  # the description only: none of its synthesis

INTERNAL_RATE = 44100
FM = {"sine": (0.0, 0.0), "square": (2.0, 1.0), "saw": (1.0, 0.8)}  # timbre -> (modulator ratio, FM index)


def synthesize_alt(sound: Sound, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """float32 mono waveform of `sound` at `sample_rate` (8-48 kHz)."""
    if not 8000 <= sample_rate <= 48000:
        raise ValueError(f"sample_rate must be 8000-48000 Hz, got {sample_rate}")
    sr = INTERNAL_RATE
    n = int(round(sound.seconds * sr))
    y = np.zeros(n)
    start = min(n, int(round(sound.onset * sr)))
    if sound.timbre not in FM:
        raise ValueError(f"unknown timbre {sound.timbre!r}; one of {', '.join(FM)}")
    ratio, index = FM[sound.timbre]
    index *= float(rng.uniform(0.85, 1.15))
    if sound.kind in ("tone", "beeps"):
        f = PITCHES[sound.pitch][1] * float(rng.uniform(0.95, 1.05))
        if sound.kind == "tone":
            m = n - start
            y[start:] = _voice(_vibrato(f, m, sr, rng, sound.timbre), ratio, index, sr) * _adsr(m, sr, rng)
        else:
            m = int(round(sound.beep_seconds * sr))
            period = sound.beep_seconds + sound.gap_seconds
            for k in range(sound.beeps):
                a = start + int(round(k * period * sr))
                b = min(n, a + m)
                y[a:b] = _voice(np.full(b - a, f), ratio, index, sr) * _adsr(b - a, sr, rng)
    elif sound.kind == "sweep":
        lo, hi = float(rng.uniform(200.0, 400.0)), float(rng.uniform(1500.0, 3000.0))
        f0, f1 = (lo, hi) if sound.direction == "rising" else (hi, lo)
        m = n - start
        y[start:] = _voice(np.linspace(f0, f1, m), ratio, index, sr) * _adsr(m, sr, rng)
    else:
        m = n - start
        y[start:] = _coloured(m, str(rng.choice(["white", "pink"])), rng) * 0.3 * _adsr(m, sr, rng)
    y *= sound.gain / max(float(np.abs(y).max()), 1e-9) if sound.kind != "noise" else sound.gain
    if rng.random() < 0.5:
        y = _echo(y, sr, rng)
    y += _coloured(n, str(rng.choice(["white", "pink", "brown"])), rng) * sound.noise
    if sample_rate != sr:
        y = _resample(y, sr, sample_rate)
    return np.clip(y, -1, 1).astype(np.float32)


def _vibrato(f: float, m: int, sr: int, rng: np.random.Generator, timbre: str) -> np.ndarray:
    """Instantaneous frequency of a held note: a slow vibrato of +-0.5% on pure tones, steady otherwise."""
    if timbre != "sine":
        return np.full(m, f)
    rate = float(rng.uniform(4.0, 6.0))
    return f * (1 + 0.005 * np.sin(2 * np.pi * rate * np.arange(m) / sr))


def _voice(freq: np.ndarray, ratio: float, index: float, sr: int) -> np.ndarray:
    """Two-operator FM following the carrier frequency `freq` (Hz per sample); index 0 is a sine."""
    carrier = 2 * np.pi * np.cumsum(freq) / sr
    return np.sin(carrier + index * np.sin(ratio * carrier))


def _adsr(m: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Attack to 1, decay to a sustain level of 0.7-0.9, release to 0, all inside `m` samples."""
    seconds = m / sr
    attack = min(float(rng.uniform(0.004, 0.02)), 0.2 * seconds)
    decay = min(float(rng.uniform(0.02, 0.06)), 0.3 * seconds)
    release = min(float(rng.uniform(0.01, 0.03)), 0.25 * seconds)
    sustain = float(rng.uniform(0.7, 0.9))
    knots_t = [0.0, attack, attack + decay, max(attack + decay, seconds - release), seconds]
    knots_v = [0.0, 1.0, sustain, sustain, 0.0]
    return np.interp(np.arange(m) / sr, knots_t, knots_v)


def _coloured(m: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f^0 (white), 1/f (pink) or 1/f^2 (brown, floored at 40 Hz) power spectrum."""
    if m == 0:
        return np.zeros(0)
    white = rng.standard_normal(m)
    if colour == "white":
        return white
    spec = np.fft.rfft(white)
    f = np.maximum(np.fft.rfftfreq(m, 1 / INTERNAL_RATE), 40.0)
    spec /= np.sqrt(f) if colour == "pink" else f
    x = np.fft.irfft(spec, m)
    return x / max(float(x.std()), 1e-12)


def _echo(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Two faint taps (0.08-0.18, then its square) at a 40-90 ms delay: a small room, never a new beep."""
    delay, amp = int(float(rng.uniform(0.04, 0.09)) * sr), float(rng.uniform(0.08, 0.18))
    out = y.copy()
    for tap in (1, 2):
        out[tap * delay:] += amp**tap * y[: len(y) - tap * delay]
    return out


def _resample(y: np.ndarray, src: int, dst: int) -> np.ndarray:
    """FFT resampling: keep the spectrum below both Nyquist frequencies (an ideal low-pass), re-time."""
    n_out = int(round(len(y) * dst / src))
    spec = np.fft.rfft(y)
    keep = min(len(spec), n_out // 2 + 1)
    out_spec = np.zeros(n_out // 2 + 1, dtype=complex)
    out_spec[:keep] = spec[:keep]
    return np.fft.irfft(out_spec, n_out) * (n_out / len(y))
