"""Readers for training data formats -> `Record`s (media references + captions or conversations).

Formats: JSONL manifests (ours and the synthetic world's), LLaVA conversation JSON, COCO captions
JSON, AudioCaps / Clotho CSV, and WebDataset tar shards (streamed, never unpacked; `mm.webdataset`, which
captioning reads too). Readers only parse text; media files are opened lazily when a batch needs them.
`Record` lives in `mm.records` and is named here too.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mm.errors import InputError
from mm.records import Record, turns_from_sharegpt
from mm.webdataset import read_webdataset

__all__ = ["Record", "read_audio_csv", "read_coco", "read_jsonl", "read_llava", "read_source", "read_webdataset"]

logger = logging.getLogger(__name__)


def _resolve(root: Path, rel: str) -> str:
    p = Path(rel)
    return str(p if p.is_absolute() else root / p)


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
            convs = [turns_from_sharegpt(d["conversations"])] if d.get("conversations") else []
            extra = {k: d[k] for k in ("qa", "dialogues", "captions", "meta") if k in d}
            yield Record(str(d.get("id", f"{path.name}:{n}")), media, captions, convs, extra)


def read_llava(path: str | Path, image_root: str | Path | None = None) -> Iterator[Record]:
    """LLaVA conversation JSON: a list of {"id", "image", "conversations"}."""
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    for i, d in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        media = [("image", _resolve(root, d["image"]))] if d.get("image") else []
        yield Record(str(d.get("id", i)), media, [], [turns_from_sharegpt(d.get("conversations", []))])


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

