"""WebDataset tar shards -> `Record`s, streamed member by member (never unpacked to disk).

Files sharing a key (`x.png` + `x.txt` / `x.json`) form one sample; the extension table
(`encoders.media_types`) says which members are media. Read by training (`mm.train.sources`) and by
`mm caption` on shards (`mm.captioning.caption_shards`).
"""

from __future__ import annotations

import json
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

from encoders.media_types import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from mm.records import Record, turns_from_sharegpt

logger = logging.getLogger(__name__)


def read_webdataset(shards: list[str | Path]) -> Iterator[Record]:
    """WebDataset tar shards: files sharing a key (`x.png` + `x.txt` / `x.json`) form one sample.
    Streamed member by member; media stay as bytes in memory only for the current sample."""
    for shard in shards:
        with tarfile.open(shard, "r|*") as tar:
            key, group = None, {}
            for member in tar:
                if not member.isfile():
                    continue
                name = Path(member.name)
                stem, ext = str(name.with_suffix("")), name.suffix.lower()
                if key is not None and stem != key:
                    rec = _wds_record(key, group)
                    if rec is not None:
                        yield rec
                    group = {}
                key = stem
                group[ext] = tar.extractfile(member).read()
            if key is not None:
                rec = _wds_record(key, group)
                if rec is not None:
                    yield rec


def _wds_record(key: str, group: dict[str, bytes]) -> Record | None:
    media = [("image", b) for e, b in group.items() if e in IMAGE_EXTENSIONS]
    media += [("audio", b) for e, b in group.items() if e in AUDIO_EXTENSIONS]
    media += [("video", b) for e, b in group.items() if e in VIDEO_EXTENSIONS]
    captions, convs = [], []
    if ".txt" in group:
        captions.append(group[".txt"].decode("utf-8").strip())
    if ".json" in group:
        d = json.loads(group[".json"])
        if isinstance(d.get("caption"), str):
            captions.append(d["caption"])
        if d.get("conversations"):
            convs.append(turns_from_sharegpt(d["conversations"]))
    if not media:
        logger.warning("webdataset sample %s has no media; skipped", key)
        return None
    return Record(key, media, captions, convs)
