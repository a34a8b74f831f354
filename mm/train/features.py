"""Frozen-encoder feature cache: encoder outputs computed once, stored as safetensors shards.

Shape letters: N valid encoder tokens of one item, D encoder width.

The cache directory is named by a fingerprint of the encoder (registry name, options, a hash of its
weights) and of the preprocessing (image size and normalisation, or mel bins and window), so changing
either starts a fresh cache instead of silently reusing stale features. Items whose media cannot be
read are recorded as bad, logged and counted, and skipped by training.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from mm.errors import InputError
from mm.media import Prepared, batch_inputs
from mm.model import MMModel
from mm.train.examples import TRACK

logger = logging.getLogger(__name__)

SHARD_ITEMS = 2048


def fingerprint(model: MMModel, modality: str) -> str:
    """Hash of what determines the features: encoder identity, weights and preprocessing
    (`Modality.cache_fingerprint`)."""
    return model.modality(modality).cache_fingerprint()


class FeatureCache:
    def __init__(self, root: str | Path, model: MMModel, modality: str) -> None:
        self.model = model
        self.modality = modality
        self.dir = Path(root) / f"{modality}-{fingerprint(model, modality)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index_file = self.dir / "index.json"
        index = json.loads(self.index_file.read_text()) if self.index_file.exists() else {}
        self.where: dict[str, str] = index.get("where", {})  # key -> shard file name
        self.bad: dict[str, str] = index.get("bad", {})  # key -> why it could not be read
        self._handles: dict[str, Any] = {}

    def _save_index(self) -> None:
        tmp = self.index_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"where": self.where, "bad": self.bad}))
        os.replace(tmp, self.index_file)

    def _prepare(self, source: Any) -> torch.Tensor:
        if isinstance(source, str) and source.endswith(TRACK):
            source = source[: -len(TRACK)]  # a clip's sound track: read from the clip's own file
        return self.model.modality(self.modality).prepare_training(source)

    @torch.no_grad()
    def build(self, items: Iterable[tuple[str, Any]], batch_size: int = 64, total: int | None = None) -> int:
        """Compute features for every (key, source) not yet cached; returns how many were added."""
        todo = ((k, s) for k, s in items if k not in self.where and k not in self.bad)
        shard: dict[str, torch.Tensor] = {}
        batch: list[tuple[str, torch.Tensor]] = []
        added = 0
        device = next(self.model.llm.parameters()).device

        def flush_batch() -> None:
            nonlocal added
            if not batch:
                return
            keys = [k for k, _ in batch]
            prepared = [Prepared(self.modality, x, k) for k, x in batch]
            inputs = batch_inputs(self.model, self.modality, prepared, device)
            states, _, valid = self.model.encode(self.modality, inputs)
            for k, s, v in zip(keys, states, valid):
                shard[k] = s[:v].to(torch.float16).cpu().contiguous()  # (N, D)
            added += len(batch)
            batch.clear()

        def flush_shard() -> None:
            if not shard:
                return
            name = f"shard-{len({v.split(':')[0] for v in self.where.values()}):05d}.safetensors"  # next free
            tmp = self.dir / (name + ".tmp")
            save_file({f"t{i}": t for i, t in enumerate(shard.values())}, str(tmp))
            os.replace(tmp, self.dir / name)
            for i, k in enumerate(shard):
                self.where[k] = f"{name}:t{i}"
            shard.clear()
            self._save_index()

        for key, source in tqdm(todo, total=total, desc=f"caching {self.modality} features", leave=False):
            try:
                batch.append((key, self._prepare(source)))
            except InputError as e:
                self.bad[key] = str(e)
                logger.warning("skipping unreadable %s: %s", self.modality, e)
                continue
            if len(batch) >= batch_size:
                flush_batch()
            if len(shard) >= SHARD_ITEMS:
                flush_shard()
        flush_batch()
        flush_shard()
        self._save_index()
        return added

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def get(self, key: str) -> torch.Tensor:
        """(N, D) float16 features of one item."""
        shard, name = self.where[key].split(":")
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.dir / shard), framework="pt")
        return self._handles[shard].get_tensor(name)
