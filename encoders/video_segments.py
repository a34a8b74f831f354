"""Walking a clip segment by segment: fixed windows or scene cuts, frames and sound per segment, streamed.

Shape letters: K frames sampled per segment, S audio samples.

`iter_segments` decodes the clip once and yields each `Segment` as soon as both its frames and its sound
are complete, so memory holds a few segments, however long the clip. Scene cuts are found in a first,
cheap pass over 32x32 grey thumbnails (mean absolute change between consecutive frames).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from encoders.audio_io import SAMPLE_RATE
from encoders.av_guard import VIDEO_LIMIT, check_seconds
from encoders.video_io import ClipDecoder, NearestFrames, iter_frames, open_video, probe_duration
from mm.errors import InputError, describe_source


@dataclass
class Segment:
    index: int
    start: float  # seconds
    end: float
    frames: list[Image.Image] = field(default_factory=list)  # K sampled frames
    times: list[float] = field(default_factory=list)
    audio: torch.Tensor | None = None  # (S,) at 16 kHz, None without an audio track

    @property
    def key_frame(self) -> Image.Image:
        return self.frames[len(self.frames) // 2]


def fixed_windows(duration: float, seconds: float) -> list[tuple[float, float]]:
    """[start, end) windows of `seconds`; a last piece shorter than half a window joins the one before."""
    if seconds <= 0:
        raise InputError(f"segment length must be positive, got {seconds}")
    n = max(1, int(np.ceil(duration / seconds - 1e-9)))
    bounds = [(k * seconds, min((k + 1) * seconds, duration)) for k in range(n)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < seconds / 2:
        bounds[-2] = (bounds[-2][0], bounds[-1][1])
        bounds.pop()
    return bounds


def scene_cuts(source: Any, threshold: float = 0.25, min_seconds: float = 0.5, *, max_seconds: float | None = None,
               max_pixels: int | None = None, max_bytes: int | None = None,
               deadline: float | None = None) -> list[tuple[float, float]]:
    """Segments between cuts: a cut is a mean absolute grey-level change above `threshold` (0-1)."""
    prev, starts, last_t = None, [0.0], 0.0
    frames = iter_frames(source, width=32, height=32, max_seconds=max_seconds, max_pixels=max_pixels,
                         max_bytes=max_bytes, deadline=deadline)
    with closing(frames):
        for t, frame in frames:
            grey = frame.to_ndarray(format="gray").astype(np.float32) / 255.0
            if prev is not None and np.abs(grey - prev).mean() > threshold and t - starts[-1] >= min_seconds:
                starts.append(t)
            prev, last_t = grey, t
    end = max(last_t, probe_duration(source, max_bytes=max_bytes, deadline=deadline))
    return [(a, b) for a, b in zip(starts, starts[1:] + [end]) if b > a] or [(0.0, end)]


def _check_count(n: int, max_segments: int | None, name: str) -> None:
    if max_segments is not None and n > max_segments:
        raise InputError(f"{name}: the clip would give {n} segments; the limit is {max_segments} "
                         "(Limits.max_clip_segments, --max-clip-segments): use a longer --segment")


def iter_segments(source: Any, *, seconds: float = 2.0, frames: int = 8, cuts: bool = False,
                  cut_threshold: float = 0.25, audio: bool = True, sample_rate: int = SAMPLE_RATE,
                  max_seconds: float | None = None, max_pixels: int | None = None, max_bytes: int | None = None,
                  max_segments: int | None = None, deadline: float | None = None) -> Iterator[Segment]:
    """Segments of `source` in order, each with `frames` frames at the centres of equal slices.

    Limits (None: none) as in `load_video`, plus `max_segments`: a clip that would give more segments is
    an InputError before any frame is decoded. The container is closed however the walk ends.
    """
    name = describe_source(source)
    limits = {"max_bytes": max_bytes, "deadline": deadline}
    if cuts:
        bounds = scene_cuts(source, cut_threshold, max_seconds=max_seconds, max_pixels=max_pixels, **limits)
    else:
        if seconds <= 0:
            raise InputError(f"segment length must be positive, got {seconds}")
        duration = probe_duration(source, **limits)
        check_seconds(duration, max_seconds, name, "the clip", VIDEO_LIMIT)
        _check_count(max(1, int(np.ceil(duration / seconds - 1e-9))), max_segments, name)
        bounds = fixed_windows(duration, seconds)
    _check_count(len(bounds), max_segments, name)
    with open_video(source, name, max_bytes=max_bytes) as c:
        decoder = ClipDecoder(c, name, audio=audio, sample_rate=sample_rate, max_seconds=max_seconds,
                              max_pixels=max_pixels, deadline=deadline)
        segs = [Segment(i, a, b) for i, (a, b) in enumerate(bounds)]
        nearest = [NearestFrames([a + (k + 0.5) * (b - a) / frames for k in range(frames)]) for a, b in bounds]
        buf, buf_start = [], 0  # audio chunks and the sample index of the first one
        video_t, audio_t = -1.0, -1.0 if decoder.audio is not None else float("inf")
        nxt = 0  # first segment not yet yielded

        def finish(i: int) -> Segment:
            nonlocal buf, buf_start
            seg = segs[i]
            seg.times, seg.frames = nearest[i].take(name)
            if decoder.audio is not None:
                wave = np.concatenate(buf) if buf else np.zeros(0, np.float32)
                a = max(0, int(seg.start * sample_rate) - buf_start)
                b = max(0, int(seg.end * sample_rate) - buf_start)
                seg.audio = torch.from_numpy(wave[a:b].copy()) if b > a else None
                keep = wave[b:]  # drop what no later segment needs
                buf, buf_start = [keep], buf_start + b
            return seg

        with closing(iter(decoder)) as decoded:
            for t, item in decoded:
                if isinstance(item, np.ndarray):
                    buf.append(item)
                    audio_t = t
                else:
                    video_t = t
                    for i in range(nxt, len(segs)):
                        if segs[i].start - 1.0 > t:
                            break
                        nearest[i].offer(t, item)
                # A segment is complete once both streams have passed its end.
                while nxt < len(segs) and video_t >= segs[nxt].end and audio_t >= segs[nxt].end:
                    yield finish(nxt)
                    nxt += 1
        while nxt < len(segs):
            seg = finish(nxt)
            nxt += 1
            if seg.frames:
                yield seg
