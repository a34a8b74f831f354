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
    data: torch.Tensor  # image: (3, H, W) pixels; audio: (S,) 16 kHz waveform
    key: str  # content hash of `data`


def prepare(model: Any, modality: str, item: Any) -> Prepared:
    """Decode and preprocess one item for `model` (an MMModel)."""
    if modality not in model.encoders:
        raise InputError(f"this model does not take {modality} input (it takes: {', '.join(model.encoders)})")
    encoder = model.encoders[modality]
    if modality == "image":
        data = encoder.preprocess(item)
    else:
        data = load_audio(item, encoder.sample_rate)
    digest = hashlib.sha256(modality.encode() + data.numpy().tobytes()).hexdigest()
    return Prepared(modality, data, digest)


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
    batch = model.encoders["audio"].features([p.data for p in items])
    batch.mel = batch.mel.to(device)
    return batch
