"""Frozen-encoder feature cache: encoder outputs computed once, stored as safetensors shards.

Shape letters: N valid encoder tokens of one item, D encoder width.

The cache directory is named by a fingerprint of the encoder (registry name, options, a hash of its
weights) and of the preprocessing (image size and normalisation, or mel bins and window), so changing
either starts a fresh cache instead of silently reusing stale features. Items whose media cannot be
read are recorded as bad (by media key), logged and counted, and skipped by training.

Callers name items by media key (`mm.train.examples.media_key`: a file's path, `path#audio` for a clip's
sound track, or `id#k` for in-memory media); the index stores a file's features under a digest of its
bytes, so a data set that is moved, renamed or copied (a run continued under another directory) keeps its
features instead of being encoded again. An index written by keys (version 1) is re-keyed on opening.
"""

from __future__ import annotations

import hashlib
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
INDEX_VERSION = 2  # "where" keyed by content digest for files (1: by media key)


def file_digest(path: str) -> str:
    """A digest of the file's bytes (BLAKE2b, 128 bits)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


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
        self._digests: dict[str, str] = {}  # media key -> index key, computed once per process
        self.where: dict[str, str] = index.get("where", {})  # index key (see `_index_key`) -> shard:tensor
        self.bad: dict[str, str] = index.get("bad", {})  # media key -> why it could not be read
        self._handles: dict[str, Any] = {}
        if self.where and index.get("version", 1) < INDEX_VERSION:
            self.where = {self._index_key(k): v for k, v in self.where.items()}
            self._save_index()
            logger.info("feature cache %s: re-keyed %d items by content", self.dir, len(self.where))

    def _index_key(self, key: str) -> str:
        """The media key's features are stored under: for a file, a digest of its bytes (a clip's sound track:
        with `TRACK` after it); anything else (in-memory media, a file that is gone) under the key itself."""
        if key not in self._digests:
            path, suffix = (key[: -len(TRACK)], TRACK) if key.endswith(TRACK) else (key, "")
            try:
                self._digests[key] = f"b2:{file_digest(path)}{suffix}" if os.path.isfile(path) else key
            except OSError:
                self._digests[key] = key
        return self._digests[key]

    def _save_index(self) -> None:
        tmp = self.index_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": INDEX_VERSION, "where": self.where, "bad": self.bad}))
        os.replace(tmp, self.index_file)

    def _prepare(self, source: Any) -> torch.Tensor:
        if isinstance(source, str) and source.endswith(TRACK):
            source = source[: -len(TRACK)]  # a clip's sound track: read from the clip's own file
        return self.model.modality(self.modality).prepare_training(source)

    @torch.no_grad()
    def build(self, items: Iterable[tuple[str, Any]], batch_size: int = 64, total: int | None = None) -> int:
        """Compute features for every (key, source) not yet cached; returns how many were added."""
        todo = ((k, s) for k, s in items if k not in self and k not in self.bad)
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
                self.where[self._index_key(k)] = f"{name}:t{i}"
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
        return self._index_key(key) in self.where

    def get(self, key: str) -> torch.Tensor:
        """(N, D) float16 features of the item with media key `key`."""
        shard, name = self.where[self._index_key(key)].split(":")
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.dir / shard), framework="pt")
        return self._handles[shard].get_tensor(name)

    def tokens(self, key: str) -> int:
        """How many encoder tokens the item with media key `key` has, read from the shard's header only."""
        shard, name = self.where[self._index_key(key)].split(":")
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.dir / shard), framework="pt")
        return int(self._handles[shard].get_slice(name).get_shape()[0])
