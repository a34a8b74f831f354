"""Readers for training data formats -> `Record`s (media references + captions or conversations).

Formats: JSONL manifests (ours and the synthetic world's), LLaVA conversation JSON, COCO captions
JSON, AudioCaps / Clotho CSV, and WebDataset tar shards (streamed, never unpacked). Readers only parse
text; media files are opened lazily when a batch needs them.
"""

from __future__ import annotations

import csv
import json
import logging
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoders.media_types import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from mm.errors import InputError

logger = logging.getLogger(__name__)

@dataclass
class Record:
    id: str
    media: list[tuple[str, Any]]  # (modality, path or bytes)
    captions: list[str] = field(default_factory=list)  # any language
    conversations: list[list[tuple[str, str]]] = field(default_factory=list)  # dialogues of (query, answer)
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific (synthetic world: qa, captions by lang)


def _resolve(root: Path, rel: str) -> str:
    p = Path(rel)
    return str(p if p.is_absolute() else root / p)


def _turns_from_sharegpt(conv: list[dict]) -> list[tuple[str, str]]:
    """LLaVA / ShareGPT `[{"from": "human", "value"}, {"from": "gpt", "value"}, ...]` -> turns.

    The `<image>` / `<audio>` markers are removed: this project places media before the first query.
    """
    turns, query = [], None
    for msg in conv:
        who, text = msg.get("from", msg.get("role")), msg.get("value", msg.get("content", ""))
        text = text.replace("<image>", "").replace("<audio>", "").strip()
        if who in ("human", "user"):
            query = text
        elif who in ("gpt", "assistant") and query is not None:
            turns.append((query, text))
            query = None
    return turns


def read_jsonl(path: str | Path) -> Iterator[Record]:
    """Our manifests: {"image"|"audio"|"video": path (or "videos": [paths]), "caption": str |
    "conversations": [...]} per line; the synthetic world's manifests add "captions" by language, "qa"
    and "dialogues"."""
    path = Path(path)
    root = path.parent
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                logger.warning("%s:%d: not JSON (%s); skipped", path, n, e)
                continue
            media = [(m, _resolve(root, d[m])) for m in ("image", "audio", "video") if d.get(m)]
            media += [("video", _resolve(root, v)) for v in d.get("videos") or []]
            captions = [d["caption"]] if isinstance(d.get("caption"), str) else []
            if isinstance(d.get("captions"), dict):
                captions += list(d["captions"].values())
            convs = [_turns_from_sharegpt(d["conversations"])] if d.get("conversations") else []
            extra = {k: d[k] for k in ("qa", "dialogues", "captions", "meta") if k in d}
            yield Record(str(d.get("id", f"{path.name}:{n}")), media, captions, convs, extra)


def read_llava(path: str | Path, image_root: str | Path | None = None) -> Iterator[Record]:
    """LLaVA conversation JSON: a list of {"id", "image", "conversations"}."""
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    for i, d in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        media = [("image", _resolve(root, d["image"]))] if d.get("image") else []
        yield Record(str(d.get("id", i)), media, [], [_turns_from_sharegpt(d.get("conversations", []))])


def read_coco(path: str | Path, image_root: str | Path | None = None) -> Iterator[Record]:
    """COCO captions JSON: {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}."""
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    data = json.loads(path.read_text(encoding="utf-8"))
    caps: dict[Any, list[str]] = {}
    for a in data.get("annotations", []):
        caps.setdefault(a["image_id"], []).append(a["caption"].strip())
    for img in data.get("images", []):
        if img["id"] in caps:
            yield Record(f"coco-{img['id']}", [("image", _resolve(root, img["file_name"]))], caps[img["id"]])


def read_audio_csv(path: str | Path, audio_root: str | Path | None = None) -> Iterator[Record]:
    """AudioCaps (`youtube_id`/`audiocap_id`, `caption`) or Clotho (`file_name`, `caption_1..5`) CSV."""
    path = Path(path)
    root = Path(audio_root) if audio_root else path.parent
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for i, row in enumerate(reader):
            if "file_name" in cols:  # Clotho
                name = row["file_name"]
                caps = [row[c] for c in cols if c.startswith("caption") and row.get(c)]
            elif "youtube_id" in cols:  # AudioCaps: files named by youtube id (how most mirrors store them)
                name = row["youtube_id"] + ".wav"
                by_id = f"{row.get('audiocap_id')}.wav"
                if not (root / name).exists() and (root / by_id).exists():
                    name = by_id
                caps = [row["caption"]]
            else:
                raise InputError(f"{path}: neither an AudioCaps nor a Clotho CSV (columns: {cols})")
            yield Record(f"{path.stem}-{i}", [("audio", _resolve(root, name))], caps)


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
            convs.append(_turns_from_sharegpt(d["conversations"]))
    if not media:
        logger.warning("webdataset sample %s has no media; skipped", key)
        return None
    return Record(key, media, captions, convs)


def read_source(spec: str) -> Iterator[Record]:
    """Dispatch by file type: *.jsonl, LLaVA *.json (a list), COCO *.json (a dict), *.csv, *.tar shards."""
    paths = [Path(p) for p in spec.split(",")]
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such data file")
    first = paths[0]
    if first.suffix == ".tar":
        return read_webdataset(paths)
    if len(paths) > 1:
        raise InputError(f"{spec}: only .tar shards can be listed together")
    if first.suffix == ".jsonl":
        return read_jsonl(first)
    if first.suffix == ".csv":
        return read_audio_csv(first)
    if first.suffix == ".json":
        with first.open(encoding="utf-8") as f:
            head = f.read(1)
            while head.isspace():
                head = f.read(1)
        return read_llava(first) if head == "[" else read_coco(first)
    raise InputError(f"{first}: unknown data format (use .jsonl, .json, .csv or .tar shards)")

