"""Video decoding with PyAV: sampled frames and the audio track, streamed so memory stays flat.

Shape letters: F sampled frames, H/W frame size, S audio samples (16 kHz mono).

`load_video` keeps only the frames it samples (uniformly over the clip, or at a fixed rate) and the
resampled audio track; every other decoded frame is dropped as soon as it is seen, so a long clip costs
time, not memory. `iter_frames` streams (time, frame) pairs for tools that walk a clip segment by
segment (`mm.compare`). Containers and codecs are whatever the bundled FFmpeg reads (mp4, mkv, webm,
mov, avi; h264, h265, vp9, mpeg4; aac, opus, mp3, pcm). Variable frame rates are handled by using each
frame's own timestamp. Both, and `encoders.video_segments`, decode through one loop (`ClipDecoder`) and
pick frames the same way (`NearestFrames`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from encoders.audio_io import SAMPLE_RATE
from encoders.av_guard import (
    VIDEO_LIMIT,
    check_deadline,
    check_pixels,
    check_seconds,
    configure_stream,
    missing_stream,
    quiet_ffmpeg,
)
from encoders.source_bytes import check_file, read_source
from mm.errors import InputError, describe_source

log = logging.getLogger(__name__)


@dataclass
class VideoClip:
    frames: list[Image.Image]  # F sampled frames, RGB
    times: list[float]  # seconds of each sampled frame
    audio: torch.Tensor | None  # (S,) float32 at `sample_rate`, None without an audio track
    duration: float  # seconds
    sample_rate: int = SAMPLE_RATE
    info: dict[str, Any] = field(default_factory=dict)  # codec names, frame size, average rate


def _target(source: Any, name: str, max_bytes: int | None) -> Any:
    """What `av.open` reads: a checked regular file's path, or the (capped) bytes in memory."""
    if isinstance(source, (str, Path)):
        return str(check_file(source, max_bytes, name))
    if isinstance(source, (bytes, bytearray)) or hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        return io.BytesIO(read_source(source, max_bytes, name))
    raise InputError(f"{name}: expected a video path, bytes or a binary file object")


@contextmanager
def open_video(source: Any, name: str, *, max_bytes: int | None = None) -> Iterator[Any]:
    """The opened container, with FFmpeg's logging kept out of Python, closed on leaving the block."""
    import av

    target = _target(source, name, max_bytes)
    with quiet_ffmpeg():
        try:
            container = av.open(target)
        except Exception as e:  # noqa: BLE001 - PyAV raises many error types; all mean "cannot open"
            raise InputError(f"{name}: not a readable video file ({e})") from None
        with container:
            yield container


def has_video(source: Any, *, max_bytes: int | None = None) -> bool:
    """Whether the file has a video track (False for audio-only containers); unreadable: InputError."""
    name = describe_source(source)
    with open_video(source, name, max_bytes=max_bytes) as c:
        return bool(c.streams.video)


def probe_duration(source: Any, *, max_bytes: int | None = None, deadline: float | None = None) -> float:
    """Clip length in seconds, from the container header or, failing that, the last packet's timestamp."""
    name = describe_source(source)
    with open_video(source, name, max_bytes=max_bytes) as c:
        return _duration(c, name, deadline)


def _duration(container: Any, name: str, deadline: float | None = None) -> float:
    streams = list(container.streams.video) + list(container.streams.audio)
    if not streams:
        raise missing_stream(container, name, "video")
    s = (container.streams.video or container.streams.audio)[0]
    if s.duration and s.time_base:
        return float(s.duration * s.time_base)
    if container.duration:
        return container.duration / 1_000_000
    # No header duration (some webm / streamed mp4): demux packets without decoding them.
    last = 0.0
    try:
        for packet in container.demux(s):
            check_deadline(deadline, name)
            if packet.pts is not None and packet.time_base:
                last = max(last, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        container.seek(0)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt index or packet
        raise InputError(f"{name}: not a readable video file ({e})") from None
    return last


def check_frame_size(stream: Any, max_pixels: int | None, name: str) -> None:
    """The stream's frame size against `max_pixels`, from the header, before any frame is decoded."""
    cc = stream.codec_context
    check_pixels(cc.width or 0, cc.height or 0, max_pixels, name, "each video frame")


def sample_times(duration: float, frames: int | None = 8, fps: float | None = None, max_frames: int = 64) -> list[float]:
    """Target timestamps: `frames` at the centres of equal slices, or every 1/fps seconds (capped)."""
    if fps is not None:
        if fps <= 0:
            raise InputError(f"fps must be positive, got {fps}")
        n = max(1, min(max_frames, int(duration * fps)))
        return [(k + 0.5) / fps for k in range(n)]
    if not frames or frames < 1:
        raise InputError(f"frames must be at least 1, got {frames}")
    return [(k + 0.5) * duration / frames for k in range(frames)]


def _frame_time(frame: Any) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


class ClipDecoder:
    """One pass over an open clip's video track and its sound: the decode loop of `load_video`, `iter_frames`
    and `encoders.video_segments.iter_segments`.

    Building it checks that there is a video track and its frame size, and picks the first audio track
    (`audio=True`, when there is one). Iterating decodes both in stream order and yields `(seconds,
    av.VideoFrame)` for a frame, with the frame's own timestamp (or the previous one plus a frame at the
    average rate), and `(seconds of sound so far, (S,) float32)` for sound, resampled to mono at
    `sample_rate`, each after the limits (`max_pixels`, `max_seconds`, `deadline`) are checked. A stream that
    breaks is an InputError ("decoding failed") with `partial=False`; with `partial=True` it is "not a
    readable video file" before the first frame, and after it ends the iteration (logged) with what was decoded.
    """

    def __init__(self, container: Any, name: str, *, audio: bool = True, sample_rate: int = SAMPLE_RATE,
                 max_seconds: float | None = None, max_pixels: int | None = None, deadline: float | None = None,
                 partial: bool = True) -> None:
        import av

        if not container.streams.video:
            raise missing_stream(container, name, "video")
        self.video = container.streams.video[0]
        configure_stream(self.video)
        check_frame_size(self.video, max_pixels, name)
        self.audio = container.streams.audio[0] if (audio and container.streams.audio) else None
        self._resampler = (av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
                           if self.audio is not None else None)
        self._container = container
        self._name = name
        self._sample_rate = sample_rate
        self._max_seconds, self._max_pixels, self._deadline = max_seconds, max_pixels, deadline
        self._partial = partial
        self.frames = 0  # video frames decoded
        self.samples = 0  # sound samples decoded (at `sample_rate`)
        self.last_t = -1.0  # the last frame's time

    def _sound(self, frame: Any) -> Iterator[tuple[float, np.ndarray]]:
        """(seconds of sound so far, (S,) chunk) for each chunk the resampler gives for an audio frame (None:
        what it still holds); an audio frame's sound is held to `max_seconds` before any of it is yielded."""
        chunks = [o.to_ndarray().reshape(-1) for o in self._resampler.resample(frame)]
        if frame is not None:
            end = (self.samples + sum(c.size for c in chunks)) / self._sample_rate
            check_seconds(end, self._max_seconds, self._name, "the clip's sound", VIDEO_LIMIT)
        for c in chunks:
            self.samples += c.size
            yield self.samples / self._sample_rate, c

    def __iter__(self) -> Iterator[tuple[float, Any]]:
        import av

        name = self._name
        fallback = 1.0 / float(self.video.average_rate or 25)
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        try:
            for frame in self._container.decode(*streams):
                check_deadline(self._deadline, name)
                if isinstance(frame, av.AudioFrame):
                    yield from self._sound(frame)
                    continue
                check_pixels(frame.width, frame.height, self._max_pixels, name, "a video frame")
                t = _frame_time(frame)
                t = self.last_t + fallback if t is None else t
                self.last_t = t
                check_seconds(t, self._max_seconds, name, "the clip", VIDEO_LIMIT)
                self.frames += 1
                yield t, frame
            if self._resampler is not None:
                yield from self._sound(None)
        except (InputError, GeneratorExit):
            raise
        except Exception as e:  # noqa: BLE001 - PyAV raises many error types: a truncated or corrupt stream
            if not self._partial:
                raise InputError(f"{name}: decoding failed ({e})") from None
            if self.frames == 0:
                raise InputError(f"{name}: not a readable video file ({e})") from None
            log.info("%s: decoding stopped after %d frames (%s); using what was decoded", name, self.frames, e)


class NearestFrames:
    """For each target time, the decoded frame nearest to it: one pass, memory for one frame a target."""

    def __init__(self, targets: list[float]) -> None:
        self.targets = targets
        self._best: list[tuple[float, Any, float]] = [(float("inf"), None, 0.0)] * len(targets)  # (distance, frame, t)

    def offer(self, t: float, frame: Any) -> None:
        for k, target in enumerate(self.targets):
            d = abs(t - target)
            if d < self._best[k][0]:
                self._best[k] = (d, frame, t)

    def take(self, name: str) -> tuple[list[float], list[Image.Image]]:
        """The times and RGB images of the frames picked (each frame converted once), in target order.

        The decoded frames are let go, so that none outlives its container.
        """
        picked = [(t, f) for _, f, t in self._best if f is not None]
        self._best = []
        try:
            images = {id(f): f.to_image() for _, f in picked}
        except Exception as e:  # noqa: BLE001 - a frame in a format PIL cannot take
            raise InputError(f"{name}: not a readable video file ({e})") from None
        return [t for t, _ in picked], [images[id(f)] for _, f in picked]


def iter_frames(source: Any, *, width: int | None = None, height: int | None = None, max_seconds: float | None = None,
                max_pixels: int | None = None, max_bytes: int | None = None,
                deadline: float | None = None) -> Iterator[tuple[float, Any]]:
    """(seconds, av.VideoFrame) for every decoded frame; frames are resized by FFmpeg when asked.

    The container is closed when the generator ends, fails or is closed early (`GeneratorExit`);
    call `.close()` (or use `contextlib.closing`) when you stop before the end.
    """
    name = describe_source(source)
    with open_video(source, name, max_bytes=max_bytes) as c:
        decoder = ClipDecoder(c, name, audio=False, max_seconds=max_seconds, max_pixels=max_pixels,
                              deadline=deadline, partial=False)
        if max_seconds is not None:
            check_seconds(_duration(c, name, deadline), max_seconds, name, "the clip", VIDEO_LIMIT)
        with closing(iter(decoder)) as decoded:
            for t, frame in decoded:
                if width or height:
                    try:
                        frame = frame.reformat(width=width, height=height)
                    except Exception as e:  # noqa: BLE001
                        raise InputError(f"{name}: decoding failed ({e})") from None
                yield t, frame


def load_video(source: Any, *, frames: int | None = 8, fps: float | None = None, max_frames: int = 64,
               audio: bool = True, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None,
               max_pixels: int | None = None, max_bytes: int | None = None,
               deadline: float | None = None) -> VideoClip:
    """Decode `source` once: the sampled frames (see `sample_times`) and the audio track at `sample_rate`.

    A file with no video track raises InputError (use `encoders.audio_io.load_audio` for it); a clip with
    no audio track gives `audio=None`. Limits (None: none): `max_seconds` of clip (the header's length
    before decoding, then every decoded timestamp, since headers can lie), `max_pixels` per frame (the
    stream's frame size before decoding), `max_bytes` of file, `deadline` (absolute `time.monotonic()`).
    """
    name = describe_source(source)
    with open_video(source, name, max_bytes=max_bytes) as c:
        decoder = ClipDecoder(c, name, audio=audio, sample_rate=sample_rate, max_seconds=max_seconds,
                              max_pixels=max_pixels, deadline=deadline)
        duration = _duration(c, name, deadline)
        check_seconds(duration, max_seconds, name, "the clip", VIDEO_LIMIT)
        nearest = NearestFrames(sample_times(duration, frames, fps, max_frames) if duration > 0 else [0.0])
        chunks: list[np.ndarray] = []
        with closing(iter(decoder)) as decoded:
            for t, item in decoded:
                if isinstance(item, np.ndarray):
                    chunks.append(item)
                else:
                    nearest.offer(t, item)
        if decoder.frames == 0:
            raise InputError(f"{name}: the video track has no frames")
        vs, as_ = decoder.video, decoder.audio
        info = {"video_codec": vs.codec_context.name, "width": vs.codec_context.width,
                "height": vs.codec_context.height, "average_rate": float(vs.average_rate or 0),
                "frames_decoded": decoder.frames,
                "audio_codec": as_.codec_context.name if as_ is not None else None}
        times, images = nearest.take(name)
    wave = torch.from_numpy(np.concatenate(chunks)).float() if chunks else None
    if wave is not None and wave.numel() == 0:
        wave = None
    return VideoClip(images, times, wave, max(duration, decoder.last_t), sample_rate, info)


def write_video(path: str | Path, frames: list[np.ndarray] | list[Image.Image], fps: float, *,
                audio: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE, codec: str = "libx264",
                audio_codec: str = "aac", pix_fmt: str = "yuv420p") -> Path:
    """Encode RGB frames (and a mono float waveform) into a container chosen by the file extension."""
    from fractions import Fraction

    import av

    path = Path(path)
    with av.open(str(path), "w") as c:
        rate = Fraction(fps).limit_denominator(1000)
        vs = c.add_stream(codec, rate=rate)
        first = np.asarray(frames[0])
        vs.height, vs.width = first.shape[0], first.shape[1]
        vs.pix_fmt = pix_fmt
        if codec == "libx265":
            vs.options = {"x265-params": "log-level=error"}
        a_stream = None
        if audio is not None:
            a_stream = c.add_stream(audio_codec, rate=sample_rate)
            a_stream.layout = "mono"
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.asarray(img, dtype=np.uint8), format="rgb24")
            c.mux(vs.encode(frame))
        c.mux(vs.encode(None))
        if a_stream is not None:
            fmt = a_stream.codec_context.format.name if a_stream.codec_context.format else "fltp"
            samples = np.asarray(audio, dtype=np.float32)
            size = a_stream.codec_context.frame_size or 1024
            resampler = av.AudioResampler(format=fmt, layout="mono", rate=sample_rate)
            for start in range(0, len(samples), size):
                chunk = samples[start:start + size][None, :]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                for out in resampler.resample(frame):
                    c.mux(a_stream.encode(out))
            for out in resampler.resample(None):
                c.mux(a_stream.encode(out))
            c.mux(a_stream.encode(None))
    return path
