"""Sounds and clips of the synthetic world: classic output unchanged, varied output still tells the truth.

The truth is measured from the signal the way a listener (or a simple detector) would: beeps by an
energy threshold on 10 ms frames, pitch by the spectrum's peak, sweep direction by the spectral
centroid of the first versus the last third, motion by the shape's centroid in the frames.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from encoders.audio_io import load_audio, log_mel
from mm.synth.sound import SAMPLE_RATE, TIMBRES, Sound, sample_sound, synthesize
from mm.synth.sound_alt import synthesize_alt
from mm.synth.video import FPS, SECONDS, Clip, render_frames, sample_clip, soundtrack, variant
from mm.synth.vocab import PITCHES

SYNTHS = {"train": synthesize, "alt": synthesize_alt}
BANDS = {"low": (200.0, 424.0), "medium": (424.0, 849.0), "high": (849.0, 1700.0)}  # geometric midpoints


def count_beeps(x: np.ndarray, sr: int = SAMPLE_RATE) -> int:
    """Runs of loud 10 ms frames (>= 30 ms long; quieter dips < 40 ms are bridged)."""
    hop = sr // 100
    frames = x[: len(x) // hop * hop].reshape(-1, hop).astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=1))
    floor, peak = np.percentile(rms, 10), rms.max()
    loud = rms > floor + 0.35 * (peak - floor)
    edges = np.flatnonzero(np.diff(np.r_[0, loud.astype(int), 0]))
    runs = list(zip(edges[::2], edges[1::2]))  # [start, stop) frame indices
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < 4:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return sum(1 for a, b in merged if b - a >= 3)


def peak_hz(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


def centroid_hz(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    return float((np.fft.rfftfreq(len(x), 1 / sr) * power).sum() / power.sum())


def _sounds(n: int, seed: int, kind: str | None = None) -> list[Sound]:
    rng = np.random.default_rng(seed)
    out: list[Sound] = []
    while len(out) < n:
        s = sample_sound(rng)
        if kind is None or s.kind == kind:
            out.append(s)
    return out


# Recorded from the generators before sounds and clips varied (seeds [11, s] and [12, s]).
CLASSIC_SOUND_HASH = "83a0af43b2d921f7d4795eb9b4e721aee0ece303025b575ce348669d34bbf7d2"
CLASSIC_SOUNDS = [("tone", "low", None, None, 1.5494945037080803, 0.5206742609305108),
                  ("beeps", "low", 2, None, 1.845538294376605, 0.6645040120678374),
                  ("tone", "high", None, None, 1.4773092589299437, 0.5167878675156444)]
CLASSIC_CLIPS = [("star", "red", "up", "slow", "low", "end", (0.34605987700069163, 0.5604523734562618),
                  1.380689436306467)]
CLASSIC_CLIPS_HASH = "837ff1e42d3f653c932755150a513331216c0f823183e918a9c3930af0d672a0"
CLASSIC_FRAMES_HASH = "06c1802710817363f155263e4a4e34800085fdc94e569648b0dfd45472963b8e"
CLASSIC_TRACK_HASH = "50e5f78a38042f729fc24206b67f4223eb348fb01357b841984b34eb64538e5b"
CLASSIC_CLIP_FIELDS = ("shape", "colour", "motion", "speed", "pitch", "when", "start", "beep_at")


def test_classic_sounds_are_todays_sounds_bit_for_bit():
    h, sounds = hashlib.sha256(), []
    for s in range(40):
        rng = np.random.default_rng([11, s])
        sound = sample_sound(rng, classic=True)
        sounds.append((sound.kind, sound.pitch, sound.beeps, sound.direction, sound.seconds, sound.gain))
        h.update(synthesize(sound, rng).tobytes())
    assert sounds[:3] == CLASSIC_SOUNDS
    assert h.hexdigest() == CLASSIC_SOUND_HASH


def test_classic_clips_are_todays_clips_bit_for_bit():
    clips, frames, track = [], hashlib.sha256(), hashlib.sha256()
    for s in range(12):
        rng = np.random.default_rng([12, s])
        c = sample_clip(rng, classic=True)
        clips.append(tuple(getattr(c, k) for k in CLASSIC_CLIP_FIELDS))
        for f in render_frames(c):
            frames.update(f.tobytes())
        track.update(soundtrack(c, rng).tobytes())
        for attr in ("motion", "speed", "colour", "shape", "pitch", "when"):
            v = variant(c, attr, rng)
            clips.append(tuple(getattr(v, k) for k in CLASSIC_CLIP_FIELDS))
    assert clips[:1] == CLASSIC_CLIPS
    assert hashlib.sha256(repr(clips).encode()).hexdigest() == CLASSIC_CLIPS_HASH
    assert frames.hexdigest() == CLASSIC_FRAMES_HASH and track.hexdigest() == CLASSIC_TRACK_HASH


def test_new_sounds_vary_what_the_issue_asks():
    sounds = _sounds(400, 1)
    beeps = [s for s in sounds if s.kind == "beeps"]
    assert {s.timbre for s in sounds} == set(TIMBRES) and not any(s.classic for s in sounds)
    assert min(s.beep_seconds for s in beeps) < 0.08 and max(s.beep_seconds for s in beeps) > 0.27
    assert min(s.gap_seconds for s in beeps) < 0.1 and max(s.gap_seconds for s in beeps) > 0.32
    assert min(s.gain for s in sounds) < 0.15 and max(s.gain for s in sounds) > 0.85
    assert min(s.onset for s in sounds) < 0.05 and max(s.onset for s in sounds) > 0.35
    assert any(s.noise == 0 for s in sounds) and max(s.noise / s.gain for s in sounds) > 0.15
    assert len({round(s.seconds, 1) for s in sounds}) > 15


@pytest.mark.parametrize("synth", SYNTHS)
def test_beep_count_is_recoverable_from_the_envelope(synth):
    sounds = _sounds(200, 2, "beeps")
    rng = np.random.default_rng(3)
    wrong = [(s, got) for s in sounds if (got := count_beeps(SYNTHS[synth](s, rng))) != s.beeps]
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("synth", SYNTHS)
@pytest.mark.parametrize("timbre", TIMBRES)
def test_the_strongest_frequency_of_a_tone_is_in_its_pitch_band(synth, timbre):
    rng = np.random.default_rng(4)
    for s in _sounds(40, 5, "tone") + _sounds(40, 6, "beeps"):
        s = dataclasses.replace(s, timbre=timbre)
        x = SYNTHS[synth](s, rng)
        lo, hi = BANDS[s.pitch]
        assert lo < peak_hz(x) < hi, (s, peak_hz(x))


@pytest.mark.parametrize("synth", SYNTHS)
def test_harmonics_do_not_move_a_tone_out_of_its_band_in_the_encoders_log_mel(synth):
    """What the audio encoder sees: the loudest mel bin of a square or saw tone is its fundamental's."""
    rng = np.random.default_rng(11)
    ref = {p: int(log_mel(torch.from_numpy(np.sin(2 * np.pi * f * np.arange(16000) / 16000).astype(np.float32)),
                          80).mean(dim=1).argmax()) for p, (_, f) in PITCHES.items()}
    for timbre in TIMBRES:
        for pitch in PITCHES:
            x = SYNTHS[synth](Sound("tone", pitch=pitch, timbre=timbre, seconds=1.0, noise=0.02), rng)
            loudest = int(log_mel(torch.from_numpy(x), 80).mean(dim=1).argmax())
            assert abs(loudest - ref[pitch]) <= 2, (timbre, pitch, loudest, ref)


def test_pitch_bands_do_not_overlap():
    centres = [PITCHES[p][1] for p in ("low", "medium", "high")]
    for a, b in zip(centres, centres[1:]):
        assert a * 1.06 < b * 0.94  # the training jitter (+-6%) keeps the bands apart


@pytest.mark.parametrize("synth", SYNTHS)
def test_sweeps_rise_and_fall_as_named(synth):
    rng = np.random.default_rng(7)
    for s in _sounds(60, 8, "sweep"):
        x = SYNTHS[synth](s, rng)
        body = x[int(s.onset * SAMPLE_RATE):]
        third = len(body) // 3
        first, last = centroid_hz(body[:third]), centroid_hz(body[-third:])
        assert (last > first * 1.3) if s.direction == "rising" else (first > last * 1.3), (s, first, last)


@pytest.mark.parametrize("synth", SYNTHS)
@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_any_sample_rate_keeps_the_truth_after_resampling_to_16k(synth, rate):
    rng = np.random.default_rng(9)
    for s in _sounds(24, 10):
        x = SYNTHS[synth](s, rng, sample_rate=rate)
        assert x.dtype == np.float32 and abs(len(x) - s.seconds * rate) <= 1
        y = load_audio((x, rate)).numpy()
        if s.kind == "beeps":
            assert count_beeps(y) == s.beeps, s
        elif s.kind == "tone":
            assert BANDS[s.pitch][0] < peak_hz(y) < BANDS[s.pitch][1], s


def test_unsupported_sample_rates_are_refused():
    for synth in SYNTHS.values():
        with pytest.raises(ValueError, match="sample_rate"):
            synth(Sound("tone", pitch="low"), np.random.default_rng(0), sample_rate=4000)


def _centroid(frame: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    mask = np.abs(frame.astype(int) - np.array(background)).max(axis=2) > 30
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()]) / frame.shape[1]


def test_new_clips_move_in_the_named_direction_by_the_named_travel_class():
    rng = np.random.default_rng(13)
    clips = [sample_clip(rng) for _ in range(40)]
    assert len({c.radius for c in clips}) == 40 and len({c.background for c in clips}) > 30
    assert {c.timbre for c in clips} == set(TIMBRES)
    for c in clips:
        frames = render_frames(c, rng=rng)
        assert len(frames) == int(SECONDS * FPS) and frames[0].dtype == np.uint8
        dx, dy = _centroid(frames[-1], c.background) - _centroid(frames[0], c.background)
        along, across = {"right": (dx, dy), "left": (-dx, dy), "down": (dy, dx), "up": (-dy, dx)}[c.motion]
        assert abs(across) < 0.02, c
        assert (0.1 < along < 0.3) if c.speed == "slow" else (along > 0.45), (c, along)


def test_new_clips_beep_once_in_the_named_half_at_the_named_pitch():
    rng = np.random.default_rng(14)
    for _ in range(30):
        c = sample_clip(rng)
        x = soundtrack(c, rng)
        assert len(x) == int(SECONDS * SAMPLE_RATE) and count_beeps(x) == 1
        hop = SAMPLE_RATE // 100
        rms = np.sqrt((x.reshape(-1, hop).astype(np.float64) ** 2).mean(axis=1))
        loudest = np.argmax(rms) / 100
        assert (loudest < 0.85) if c.when == "start" else (loudest > 1.3), (c, loudest)
        assert BANDS[c.pitch][0] < peak_hz(x) < BANDS[c.pitch][1], c


def test_variants_of_new_clips_change_only_the_named_attribute_and_keep_the_look():
    rng = np.random.default_rng(15)
    for _ in range(20):
        a = sample_clip(rng)
        for attr in ("motion", "speed", "colour", "shape", "pitch", "when"):
            b = variant(a, attr, rng)
            assert getattr(b, attr) != getattr(a, attr)
            assert (a.radius, a.shade, a.background, a.timbre) == (b.radius, b.shade, b.background, b.timbre)
            if attr == "speed":
                slow = min((a, b), key=lambda c: c.distance())
                assert slow.speed == "slow" and slow.distance() <= 0.3
            for clip in (a, b):  # the whole path stays inside the frame
                for t in (0.0, SECONDS):
                    x, y = clip.path(t)
                    assert clip.radius < x < 1 - clip.radius and clip.radius < y < 1 - clip.radius


@pytest.mark.parametrize("classic", [True, False])
def test_identical_pairs_are_identical_files(tmp_path, classic):
    from encoders.video_io import write_video

    rng = np.random.default_rng(16)
    clip: Clip = sample_clip(rng, classic=classic)
    state, data = rng.bit_generator.state, []
    for side in "ab":
        rng.bit_generator.state = state  # as the world writes a pair with change None
        path = tmp_path / f"{side}.mp4"
        write_video(path, render_frames(clip, rng=rng), FPS, audio=soundtrack(clip, rng))
        data.append(path.read_bytes())
    assert data[0] == data[1]
