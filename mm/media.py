"""User media -> model inputs, with a per-session cache of bridge outputs keyed by content hash.

A follow-up question about the same picture or sound reuses the cached embeddings instead of running
the frozen encoder and bridge again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from encoders.audio_io import load_audio
from encoders.av_guard import AUDIO_LIMIT, check_pixels, check_seconds
from encoders.image_io import load_image
from mm.errors import InputError, describe_source
from mm.limits import DEFAULT_LIMITS, Limits


def as_list(items: Any) -> list[Any]:
    """A single media item or a list of them -> list. Audio pairs `(wave, sr)` count as one item."""
    if items is None:
        return []
    if isinstance(items, tuple) and len(items) == 2 and any(isinstance(x, (int, np.integer)) for x in items):
        return [items]
    if isinstance(items, (list, tuple)):
        return list(items)
    return [items]


@dataclass
class Prepared:
    modality: str
    data: torch.Tensor  # image: (3, H, W) pixels; audio: (S,) 16 kHz waveform; video: (F, 3, H, W) frames
    key: str  # content hash of `data`


def _prepared(modality: str, data: torch.Tensor) -> Prepared:
    return Prepared(modality, data, hashlib.sha256(modality.encode() + data.numpy().tobytes()).hexdigest())


def prepare(model: Any, modality: str, item: Any, limits: Limits = DEFAULT_LIMITS,
            deadline: float | None = None) -> Prepared:
    """Decode and preprocess one image or sound for `model` (an MMModel); see `prepare_media` for video.

    `limits` bound the work (bytes read, image pixels, seconds of sound); `deadline` is an absolute
    `time.monotonic()` value checked while decoding (None: no deadline).
    """
    if modality not in model.config.modalities:
        raise InputError(f"this model does not take {modality} input (it takes: {', '.join(model.config.modalities)})")
    if modality == "video":
        raise ValueError("a video can become two items (frames and sound): use prepare_media")
    encoder = model.encoders[modality]
    if modality == "image":
        image = load_image(item, max_pixels=limits.max_image_pixels, max_bytes=limits.max_file_bytes)
        return _prepared(modality, encoder.preprocess(image))
    wave = load_audio(item, encoder.sample_rate, max_seconds=limits.max_audio_seconds,
                      max_bytes=limits.max_file_bytes, deadline=deadline)
    return _prepared(modality, wave)


def video_frames(model: Any, clip: Any) -> torch.Tensor:
    """A decoded `VideoClip`'s frames -> (F, 3, H, W) pixels for the image encoder."""
    encoder = model.encoders["image"]
    return torch.stack([encoder.preprocess(f) for f in clip.frames])


def decode_video(model: Any, item: Any, limits: Limits = DEFAULT_LIMITS, deadline: float | None = None) -> Any:
    """A clip -> `VideoClip` decoded as `model`'s video config asks; an audio-only file -> its (S,) sound.

    This is the decoding half of `prepare_video`, the part the server runs in a child process.
    """
    from encoders.video_io import has_video, load_video

    if not has_video(item, max_bytes=limits.max_file_bytes):
        if "audio" in model.config.modalities:  # audio-only container: its sound is all there is
            return load_audio(item, model.encoders["audio"].sample_rate, max_seconds=limits.max_audio_seconds,
                              max_bytes=limits.max_file_bytes, deadline=deadline)
        raise InputError(f"{describe_source(item)}: the file has no video track")
    vcfg = model.config.video
    return load_video(item, frames=vcfg.frames, fps=vcfg.fps, max_frames=vcfg.max_frames,
                      audio="audio" in model.config.modalities, sample_rate=16000,
                      max_seconds=limits.max_video_seconds, max_pixels=limits.max_image_pixels,
                      max_bytes=limits.max_file_bytes, deadline=deadline)


def prepare_video(model: Any, item: Any, limits: Limits = DEFAULT_LIMITS,
                  deadline: float | None = None) -> list[Prepared]:
    """A clip -> [video frames] or [video frames, its sound track]; an audio-only file -> [sound].

    `item` is a path, bytes or file object, or an already decoded `VideoClip` (the server decodes in a
    child process, see `mm.decode_process`). The sound track is kept when the model takes audio and the
    clip has one, and must fit `limits.max_audio_seconds`; frames must fit `limits.max_image_pixels`.
    """
    from encoders.video_io import VideoClip

    if "video" not in model.config.modalities:
        raise InputError(f"this model does not take video input (it takes: {', '.join(model.config.modalities)})")
    if isinstance(item, VideoClip):
        clip = item
        name = "<VideoClip>"
    else:
        decoded = decode_video(model, item, limits, deadline)
        if not isinstance(decoded, VideoClip):
            return [_prepared("audio", decoded)]
        clip, name = decoded, describe_source(item)
    if not clip.frames:
        raise InputError(f"{name}: the clip has no frames")
    for frame in clip.frames:
        check_pixels(frame.width, frame.height, limits.max_image_pixels, name, "each video frame")
    with_audio = "audio" in model.config.modalities
    out = [_prepared("video", video_frames(model, clip))]
    if with_audio and clip.audio is not None and clip.audio.numel() >= 160:
        seconds = clip.audio.numel() / clip.sample_rate
        check_seconds(seconds, limits.max_audio_seconds, name, "the clip's sound", AUDIO_LIMIT)
        wave = clip.audio if clip.sample_rate == 16000 else load_audio((clip.audio, clip.sample_rate), 16000)
        out.append(_prepared("audio", wave))
    return out


def prepare_media(model: Any, modality: str, item: Any, limits: Limits = DEFAULT_LIMITS,
                  deadline: float | None = None) -> list[Prepared]:
    """One user item -> model items (a video with sound gives two)."""
    if modality == "video":
        return prepare_video(model, item, limits, deadline)
    return [prepare(model, modality, item, limits, deadline)]


class EmbeddingCache:
    """LRU of (Q, E) bridge outputs by content hash; per MMChat, never global."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> torch.Tensor | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
        else:
            self._items.move_to_end(key)
            self.hits += 1
        return value

    def put(self, key: str, value: torch.Tensor) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


def batch_inputs(model: Any, modality: str, items: Sequence[Prepared], device: torch.device | None = None) -> Any:
    """Stack prepared items of one modality into the encoder's batch input, on `device`."""
    if modality == "image":
        return torch.stack([p.data for p in items]).to(device)
    if modality == "video":
        from mm.model import VideoBatch

        f = max(p.data.shape[0] for p in items)
        pixels = torch.zeros(len(items), f, *items[0].data.shape[1:], dtype=items[0].data.dtype)
        for i, p in enumerate(items):
            pixels[i, : p.data.shape[0]] = p.data
        return VideoBatch(pixels.to(device), [p.data.shape[0] for p in items])
    batch = model.encoders["audio"].features([p.data for p in items])
    batch.mel = batch.mel.to(device)
    return batch
