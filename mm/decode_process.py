"""Decoding untrusted media in a child process with a wall-clock deadline (for the server).

`DecodeProcess` keeps one persistent child (multiprocessing "spawn": a fresh interpreter that imports
only `encoders.*` and `mm.errors` / `mm.limits`, not the model) and sends it one request at a time:

    decoder = DecodeProcess()
    clip = decoder.decode("video", data, limits=limits, frames=8)   # -> VideoClip
    decoder.close()

- A request that runs past its deadline (`timeout`, default `limits.deadline_seconds`) has its child
  killed; the caller gets `InputError("... decoding took longer than N s")` and the next call starts a
  fresh child. The loaders also check the same deadline cooperatively, between frames.
- An `InputError` raised in the child comes back as an `InputError` with the same message; any other
  exception there is a bug and comes back as `RuntimeError` carrying the child's traceback.
- A child that dies while decoding (a crash in a codec) is restarted; the caller gets an `InputError`.
- Thread-safe: calls are serialised by a lock (one child, one request at a time).

Sound comes back as a (S,) float32 tensor at `sample_rate`, images as RGB PIL images, clips as
`encoders.video_io.VideoClip` (pass it to `mm.media.prepare_video`). What the child runs for each kind
(named as the `mm.modality` objects are) is a `ChildDecoder` in `CHILD_DECODERS`; the options a model
decodes a kind with come from its modality object (`Modality.child_options`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from mm.errors import InputError, describe_source
from mm.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)

Kind = Literal["image", "audio", "video"]


def _load_image(data: bytes, limits: Limits, deadline: float, options: dict[str, Any]) -> Any:
    from encoders.image_io import load_image

    return load_image(data, max_pixels=limits.max_image_pixels, max_bytes=limits.max_file_bytes)


def _load_audio(data: bytes, limits: Limits, deadline: float, options: dict[str, Any]) -> Any:
    from encoders.audio_io import load_audio

    wave = load_audio(data, options.get("sample_rate", 16000), max_seconds=limits.max_audio_seconds,
                      max_bytes=limits.max_file_bytes, deadline=deadline)
    return wave.numpy()


def _load_video(data: bytes, limits: Limits, deadline: float, options: dict[str, Any]) -> Any:
    from encoders.video_io import load_video

    clip = load_video(data, frames=options.get("frames", 8), fps=options.get("fps"),
                      max_frames=options.get("max_frames", 64), audio=options.get("with_audio", True),
                      sample_rate=options.get("sample_rate", 16000), max_seconds=limits.max_video_seconds,
                      max_pixels=limits.max_image_pixels, max_bytes=limits.max_file_bytes, deadline=deadline)
    if clip.audio is not None:
        clip.audio = clip.audio.numpy()  # plain pickling, no torch shared-memory handles
    return clip


def _as_is(value: Any) -> Any:
    return value


def _wave_tensor(value: Any) -> Any:
    import torch

    return torch.from_numpy(value)


def _clip_tensors(clip: Any) -> Any:
    import torch

    if clip.audio is not None:
        clip.audio = torch.from_numpy(clip.audio)
    return clip


@dataclass(frozen=True)
class ChildDecoder:
    """How the child decodes one kind of media.

    `load(data, limits, deadline, options)` runs in the child, with the loaders and `limits`, and returns
    plain picklable values; it is a module-level function, sent to the child by name, so the child imports
    only this module. `restore` runs in the parent and turns those values back into tensors.
    """

    load: Callable[[bytes, Limits, float, dict[str, Any]], Any]
    restore: Callable[[Any], Any] = _as_is


# The child's decoder of each kind, by the name of the `mm.modality` object that reads it. (This module sits
# below the model and is all the child imports, so it holds the decoders itself instead of asking the
# modality objects.)
CHILD_DECODERS: Mapping[str, ChildDecoder] = {
    "image": ChildDecoder(_load_image),  # -> RGB PIL image
    "audio": ChildDecoder(_load_audio, _wave_tensor),  # -> (S,) float32 tensor at `sample_rate`
    "video": ChildDecoder(_load_video, _clip_tensors),  # -> `VideoClip`, its sound a tensor
}


def _child_main(conn: Any) -> None:
    """The child's loop: (load, data, limits, seconds, options) in, ("ok" | "input" | "bug", value) out."""
    import encoders.audio_io  # noqa: F401 - imported once, before "ready", so requests start at once
    import encoders.image_io  # noqa: F401
    import encoders.video_io  # noqa: F401

    conn.send(("ready", None))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if request is None:
            return
        load, data, limits, seconds, options = request
        try:
            reply = ("ok", load(data, limits, time.monotonic() + seconds, options))
        except InputError as e:
            reply = ("input", str(e))
        except MemoryError:
            reply = ("input", f"{describe_source(data)}: decoding ran out of memory")
        except Exception:  # noqa: BLE001 - a bug: sent back with its traceback, the child lives on
            reply = ("bug", traceback.format_exc())
        del request, data
        conn.send(reply)


class DecodeProcess:
    """One persistent decoding child; see the module docstring."""

    def __init__(self, *, start_timeout: float = 120.0) -> None:
        self.start_timeout = start_timeout  # seconds a fresh child may take to import its modules
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self.restarts = 0  # children killed or lost so far (for logs and tests)

    @property
    def pid(self) -> int | None:
        """The child's process id, None while none is running."""
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_child_main, args=(child,), name="mm-decode", daemon=True)
        proc.start()
        child.close()
        if not parent.poll(self.start_timeout):
            proc.kill()
            proc.join(5)
            raise RuntimeError(f"the decoding process did not start within {self.start_timeout:g} s")
        try:
            parent.recv()  # ("ready", None)
        except (EOFError, OSError):
            proc.join(5)
            raise RuntimeError(f"the decoding process exited at start (exit code {proc.exitcode})") from None
        self._proc, self._conn = proc, parent

    def _stop(self) -> None:
        """Kill the child (if any) and forget it; the next call starts a fresh one."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(5)

    def decode(self, kind: Kind, data: bytes, *, limits: Limits = DEFAULT_LIMITS, timeout: float | None = None,
               frames: int | None = 8, fps: float | None = None, max_frames: int = 64,
               sample_rate: int = 16000, with_audio: bool = True) -> Any:
        """Decode `data` in the child: a PIL image, a (S,) float32 tensor at `sample_rate`, or a `VideoClip`.

        `timeout` (seconds, default `limits.deadline_seconds`) bounds the call's wall-clock time.
        """
        decoder = CHILD_DECODERS.get(kind)
        if decoder is None:
            *names, last = map(repr, CHILD_DECODERS)
            raise ValueError(f"kind must be {', '.join(names)} or {last}, got {kind!r}")
        name = describe_source(data)
        if not isinstance(data, (bytes, bytearray)):
            raise InputError(f"{name}: the decoding process takes bytes")
        if len(data) > limits.max_file_bytes:
            raise InputError(f"{name}: the limit is {limits.max_file_bytes} bytes "
                             "(Limits.max_file_bytes, --max-file-mb)")
        seconds = limits.deadline_seconds if timeout is None else timeout
        options = {"frames": frames, "fps": fps, "max_frames": max_frames, "sample_rate": sample_rate,
                   "with_audio": with_audio}
        # Plain `Limits` over the pipe: a subclass (the server's) would make the child import its module.
        plain = Limits(**{f.name: getattr(limits, f.name) for f in fields(Limits)})
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                if self._proc is not None:
                    log.warning("the decoding process had exited (code %s); starting a new one", self._proc.exitcode)
                self._stop()
                self._start()
            started = time.monotonic()
            try:
                self._conn.send((decoder.load, bytes(data), plain, seconds, options))
                # A little grace over the child's own cooperative deadline, so its clear message wins.
                ready = self._conn.poll(seconds + min(1.0, 0.1 * seconds))
                status, value = self._conn.recv() if ready else (None, None)
            except (EOFError, OSError):
                code = self._proc.exitcode if self._proc is not None else None
                self._stop()
                self.restarts += 1
                log.warning("the decoding process died on %s (exit code %s); restarted", name, code)
                raise InputError(f"{name}: the decoder crashed on this input (exit code {code}); "
                                 "the file is probably corrupt") from None
            if not ready:
                self._stop()
                self.restarts += 1
                log.warning("decoding %s took longer than %g s; the decoding process was restarted", name, seconds)
                raise InputError(f"{name}: decoding took longer than {seconds:g} s "
                                 f"(the request's deadline; took {time.monotonic() - started:.1f} s)")
        if status == "input":
            raise InputError(value)
        if status == "bug":
            raise RuntimeError(f"decoding failed in the decoding process:\n{value}")
        return decoder.restore(value)

    def close(self) -> None:
        """Stop the child; a later `decode` starts a new one."""
        with self._lock:
            if self._conn is not None and self._proc is not None and self._proc.is_alive():
                try:
                    self._conn.send(None)
                    self._proc.join(2)
                except OSError:
                    pass
            self._stop()

    def __enter__(self) -> DecodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
