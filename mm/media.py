"""User media -> model inputs, and the per-session cache of bridge outputs keyed by content hash.

The work is the modality objects' (`mm.modality`); these functions name the modality by string for
callers that hold a model rather than a modality. A follow-up question about the same picture or sound
reuses the cached embeddings instead of running the frozen encoder and bridge again.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
import torch
from PIL import Image

from encoders.video_io import VideoClip
from mm.limits import DEFAULT_LIMITS, Limits
from mm.modality import MediaBatch, Prepared, VideoModality, fingerprint
from mm.model import MMModel

# One user item: a path, bytes or an open file, a PIL image, an array (pixels, or a 1-D waveform at the
# encoder's rate), an audio `(waveform, sample_rate)` pair in either order, or a decoded `VideoClip`.
MediaItem = (str | os.PathLike[str] | bytes | IO[bytes] | Image.Image | np.ndarray | torch.Tensor
             | tuple[Any, Any] | VideoClip)
MediaInput = MediaItem | Sequence[MediaItem] | None  # what `image=`, `audio=` and `video=` take

__all__ = ["EmbeddingCache", "MediaInput", "MediaItem", "Prepared", "as_list", "batch_inputs", "prepare",
           "prepare_media", "prepare_video"]


def as_list(items: MediaInput) -> list[MediaItem]:
    """A single media item or a list of them -> list. Audio pairs `(wave, sr)` count as one item."""
    if items is None:
        return []
    if isinstance(items, tuple) and len(items) == 2 and any(isinstance(x, (int, np.integer)) for x in items):
        return [items]
    if isinstance(items, (list, tuple)):
        return list(items)
    return [items]


def _prepared(modality: str, data: torch.Tensor) -> Prepared:
    return Prepared(modality, data, fingerprint(modality, data))


def prepare_media(model: MMModel, modality: str, item: MediaItem, limits: Limits = DEFAULT_LIMITS,
                  deadline: float | None = None) -> list[Prepared]:
    """One user item -> model items (a video with sound gives two); see `Modality.prepare`."""
    return model.modality(modality).prepare(item, limits, deadline)


def prepare(model: MMModel, modality: str, item: MediaItem, limits: Limits = DEFAULT_LIMITS,
            deadline: float | None = None) -> Prepared:
    """Decode and preprocess one image or sound for `model`; see `prepare_media` for video."""
    reader = model.modality(modality)
    if not reader.single_item:
        raise ValueError("a video can become two items (frames and sound): use prepare_media")
    (out,) = reader.prepare(item, limits, deadline)
    return out


def _video(model: MMModel) -> VideoModality:
    return model.modality(VideoModality.name)


def video_frames(model: MMModel, clip: VideoClip) -> torch.Tensor:
    """A decoded `VideoClip`'s frames -> (F, 3, H, W) pixels for the image encoder."""
    return _video(model).frames(clip.frames)


def decode_video(model: MMModel, item: MediaItem, limits: Limits = DEFAULT_LIMITS,
                 deadline: float | None = None) -> VideoClip | torch.Tensor:
    """A clip -> `VideoClip`; an audio-only file -> its (S,) sound (`VideoModality.decode`)."""
    return _video(model).decode(item, limits, deadline)


def prepare_video(model: MMModel, item: MediaItem, limits: Limits = DEFAULT_LIMITS,
                  deadline: float | None = None) -> list[Prepared]:
    """A clip (or decoded `VideoClip`) -> [frames] or [frames, sound]; see `VideoModality.prepare`."""
    return _video(model).prepare(item, limits, deadline)


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


def batch_inputs(model: MMModel, modality: str, items: Sequence[Prepared],
                 device: torch.device | None = None) -> MediaBatch:
    """Stack prepared items of one modality into the encoder's batch input, on `device`."""
    return model.modality(modality).collate(items, device)
