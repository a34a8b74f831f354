"""Decoding with PyAV so that it cannot hang: no Python log callback, slice threads only, a deadline.

Why a corrupt clip used to hang the process forever: importing torchvision (open_clip and timm import
it) runs `av.logging.set_level(av.logging.ERROR)`, which installs PyAV's Python log callback. With
`thread_type="AUTO"` FFmpeg decodes H.264 on frame threads that keep running between calls; a corrupt
stream makes those threads log, and each log call takes the GIL. When decoding stops early (an error,
an abandoned generator), the codec context is freed by `CodecContext.__dealloc__`, which calls
`avcodec_free_context` *holding the GIL* and waits for the frame threads, which wait for the GIL in
the log callback: a deadlock at 0% CPU (gdb: main thread in `avcodec_free_context` <- `__dealloc__`,
thread `av:h264:df2` in `PyGILState_Ensure` <- `av.logging.log_callback` <- `av_log`).

What this module does about it, in one place:

- `quiet_ffmpeg()` routes FFmpeg's log messages nowhere (`av.logging.set_level(None)`, PyAV's own
  default) while our decoding runs and restores the caller's level afterwards, so no FFmpeg thread
  calls into Python. Nothing changes at import time. The level is process-wide in FFmpeg, so entries
  are counted: the first one saves and silences, the last one restores (unless someone else changed
  the level meanwhile). A decode error is reported as one `InputError`, not as pages of FFmpeg lines.
- `configure_stream` asks for slice threading only: slice workers run only inside a decode call (with
  the GIL released) and are idle when the context is freed, so even with a Python log callback
  installed by someone else there is no thread left to wait for. Frame threading is never used.
- `check_deadline` is called between frames and packets: a request's absolute `time.monotonic()`
  deadline turns a slow decode into an `InputError` instead of an unbounded one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mm.errors import InputError

THREAD_TYPE = "SLICE"  # never "FRAME"/"AUTO": see the module docstring

_lock = threading.Lock()
_depth = 0  # how many decodes are running now (FFmpeg's log callback is process-wide)
_saved: Any = None  # the level to restore when the last one ends


@contextmanager
def quiet_ffmpeg() -> Iterator[None]:
    """FFmpeg logs go nowhere (no Python callback) while the block runs; the previous level comes back."""
    import av.logging

    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = av.logging.get_level()
            if _saved is not None:
                av.logging.set_level(None)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                # Restore only what we changed: a level set by someone else meanwhile is theirs.
                if _saved is not None and av.logging.get_level() is None:
                    av.logging.set_level(_saved)
                _saved = None


def configure_stream(stream: Any) -> None:
    """Slice threads only (see the module docstring); FFmpeg picks how many."""
    stream.thread_type = THREAD_TYPE


def check_deadline(deadline: float | None, name: str) -> None:
    """InputError once `time.monotonic()` has passed `deadline` (None: no limit)."""
    if deadline is not None and time.monotonic() > deadline:
        raise InputError(f"{name}: decoding took longer than the request's deadline")


def check_pixels(width: int, height: int, max_pixels: int | None, name: str, what: str = "the image") -> None:
    """InputError naming the limit when width x height is more than `max_pixels` (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(f"{name}: {what} is {width}x{height} = {width * height} pixels; the limit is "
                         f"{max_pixels} (Limits.max_image_pixels, --max-image-pixels)")


def check_seconds(seconds: float, max_seconds: float | None, name: str, what: str, limit: str) -> None:
    """InputError when `seconds` is more than `max_seconds`; `limit` names the field and flag."""
    if max_seconds is not None and seconds > max_seconds:
        raise InputError(f"{name}: {what} is {seconds:.1f} s long; the limit is {max_seconds:g} s ({limit})")


AUDIO_LIMIT = "Limits.max_audio_seconds, --max-audio-seconds"
VIDEO_LIMIT = "Limits.max_video_seconds, --max-video-seconds"


def missing_stream(container: Any, name: str, wanted: str) -> InputError:
    """Why a container has no `wanted` ("audio" or "video") stream: it holds only the other kind, only
    other streams (subtitles, data), or nothing readable."""
    other = "video" if wanted == "audio" else "audio"
    if getattr(container.streams, other):
        hint = "it holds only video: pass it as a video" if other == "video" else "it is audio only"
        return InputError(f"{name}: the file has no {wanted} track ({hint})")
    kinds = sorted({s.type for s in container.streams})
    if kinds:
        return InputError(f"{name}: the file has no audio or video stream (only {', '.join(kinds)})")
    return InputError(f"{name}: not a readable {wanted} file (no {wanted} stream found)")
