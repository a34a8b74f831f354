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
from mm.errors import InputError


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


def prepare(model: Any, modality: str, item: Any) -> Prepared:
    """Decode and preprocess one image or sound for `model` (an MMModel); see `prepare_media` for video."""
    if modality not in model.config.modalities:
        raise InputError(f"this model does not take {modality} input (it takes: {', '.join(model.config.modalities)})")
    if modality == "video":
        raise ValueError("a video can become two items (frames and sound): use prepare_media")
    encoder = model.encoders[modality]
    if modality == "image":
        return _prepared(modality, encoder.preprocess(item))
    return _prepared(modality, load_audio(item, encoder.sample_rate))


def video_frames(model: Any, clip: Any) -> torch.Tensor:
    """A decoded `VideoClip`'s frames -> (F, 3, H, W) pixels for the image encoder."""
    encoder = model.encoders["image"]
    return torch.stack([encoder.preprocess(f) for f in clip.frames])


def prepare_video(model: Any, item: Any) -> list[Prepared]:
    """A clip -> [video frames] or [video frames, its sound track]; an audio-only file -> [sound].

    The sound track is kept when the model takes audio and the clip has one.
    """
    from encoders.video_io import has_video, load_video

    if "video" not in model.config.modalities:
        raise InputError(f"this model does not take video input (it takes: {', '.join(model.config.modalities)})")
    vcfg = model.config.video
    if not has_video(item):
        if "audio" in model.config.modalities:
            return [prepare(model, "audio", item)]  # audio-only container: its sound is all there is
        raise InputError("the file has no video track")
    with_audio = "audio" in model.config.modalities
    clip = load_video(item, frames=vcfg.frames, fps=vcfg.fps, max_frames=vcfg.max_frames, audio=with_audio,
                      sample_rate=16000)
    out = [_prepared("video", video_frames(model, clip))]
    if with_audio and clip.audio is not None and clip.audio.numel() >= 160:
        out.append(_prepared("audio", clip.audio))
    return out


def prepare_media(model: Any, modality: str, item: Any) -> list[Prepared]:
    """One user item -> model items (a video with sound gives two)."""
    return prepare_video(model, item) if modality == "video" else [prepare(model, modality, item)]


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
