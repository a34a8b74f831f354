"""Captioning many items: batched generation, per-item errors, and resumable JSONL jobs (`mm caption`).

`caption_items` turns a list of mixed images, sounds and clips into `CaptionResult`s in input order.
Items that cannot be read become results with an `error` (on_error="skip") or raise (on_error="raise");
readable items are captioned in left-padded batches, one forward per step for the whole batch.
`caption_files` walks paths, writes one JSON line per item as it goes and skips what the output already
holds, so an interrupted run over many files loses nothing (`ResultsFile`, which `caption_shards` uses too). On resume a file is the same item however it
is named (`dir/a.png`, `./dir/a.png`, `dir/../dir/a.png`, the absolute path), and a last line torn by a
crash (even inside a multi-byte character) is dropped and redone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from encoders.media_types import MEDIA_EXTENSIONS
from mm.engine import Engine, HasEngine, engine_of
from mm.errors import InputError
from mm.limits import Limits
from mm.media import Prepared
from mm.processor import check_batch_size, infer_modality
from mm.prompt import CAPTION_PROMPTS
from mm.webdataset import read_webdataset

logger = logging.getLogger(__name__)


@dataclass
class CaptionResult:
    path: str  # the item's path, or "<item N>" for in-memory items
    modality: str | None  # "image", "audio" or "video"; None when it could not be told
    caption: str | None  # None when the item failed
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _name(item: Any, i: int) -> str:
    return str(item) if isinstance(item, (str, Path)) else f"<item {i}>"


def _prompts(prompt: Any, n: int) -> list[str | None]:
    """`prompt` (None, one request, or one per item: any sequence or iterable of them) -> one per item."""
    if prompt is None or isinstance(prompt, str):
        return [prompt] * n
    if isinstance(prompt, bytes) or not isinstance(prompt, Iterable):
        raise InputError(f"prompt must be a string or a list of strings, got {type(prompt).__name__}")
    prompts = list(prompt)  # a generator or an array: read it once, here
    if len(prompts) != n:
        raise InputError(f"{len(prompts)} prompts for {n} items")
    for i, p in enumerate(prompts):
        if p is not None and not isinstance(p, str):
            raise InputError(f"prompt {i} must be a string, got {type(p).__name__}")
    return prompts


def caption_items(chat: Engine | HasEngine, items: Sequence[Any], *, batch_size: int = 8, prompt: str | Sequence[str] | None = None,
                  lang: str = "en", on_error: str = "raise", names: Sequence[str] | None = None,
                  limits: Limits | None = None, **gen: Any) -> list[CaptionResult]:
    """One result per item, in order. `prompt`: one request for all items or one per item (default: the
    modality's "Describe ..." prompt in `lang`). Each item is decoded within `limits` (default: the
    model's), with its own deadline. `chat` is an `MMChat` or its engine."""
    engine = engine_of(chat)
    if on_error not in ("skip", "raise"):
        raise InputError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if lang not in ("en", "zh"):
        raise InputError(f"lang must be 'en' or 'zh', got {lang!r}")
    batch_size = check_batch_size(batch_size)
    limits = engine.processor.limits_for(limits)
    items = list(items)
    prompts = _prompts(prompt, len(items))
    names = list(names) if names is not None else [_name(x, i) for i, x in enumerate(items)]
    results: list[CaptionResult] = []
    requests: list[tuple[str, list, list[Prepared]]] = []
    slots: list[int] = []
    for i, item in enumerate(items):
        modality = None
        try:
            if isinstance(item, _Tagged):
                modality, item = item.modality, item.data
            else:
                modality = infer_modality(item)
            deadline = time.monotonic() + limits.deadline_seconds
            prepared = engine.processor.prepare(item, modality, limits=limits, deadline=deadline)
        except InputError as e:
            if on_error == "raise":
                raise InputError(f"item {i}: {e}") from None
            results.append(CaptionResult(names[i], modality, None, str(e)))
            continue
        requests.append((prompts[i] or CAPTION_PROMPTS[modality][lang][0], [], prepared))
        slots.append(len(results))
        results.append(CaptionResult(names[i], modality, None))
    captions = engine.answer_batch(requests, batch_size=batch_size, limits=limits, **gen) if requests else []
    for k, text in zip(slots, captions):
        results[k].caption = text
    failed = [r for r in results if r.error]
    if failed:
        logger.warning("%d of %d items could not be captioned: %s", len(failed), len(items),
                       "; ".join(r.error for r in failed[:5]) + (" ..." if len(failed) > 5 else ""))
    return results


def media_files(paths: Iterable[str | Path], recursive: bool = True) -> Iterator[Path]:
    """Files under `paths` whose extension names an image, sound or video, in sorted order; files given
    by name are yielded whatever their extension (they fail later with a clear error if unreadable)."""
    exts = set().union(*MEDIA_EXTENSIONS.values())
    for p in paths:
        p = Path(p)
        if p.is_dir():
            walker = p.rglob("*") if recursive else p.glob("*")
            for f in sorted(walker):
                if f.is_file() and f.suffix.lower() in exts:
                    yield f
        elif p.exists():
            yield p
        else:
            raise InputError(f"{p}: no such file or directory")


def _lines(out: Path) -> list[str]:
    """The lines of a JSONL file; a line that is not UTF-8 (torn inside a character) is left out."""
    lines = []
    for raw in out.read_bytes().split(b"\n"):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return lines


def done_paths(out: Path) -> set[str]:
    """Paths already in a captions JSONL file, as written (a torn or unreadable line is ignored)."""
    done: set[str] = set()
    if not out.exists():
        return done
    for line in _lines(out):
        try:
            path = json.loads(line)["path"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if isinstance(path, str):
            done.add(path)
    return done


def path_key(path: str | Path) -> str:
    """One key per file however it is named: relative or absolute, with `.` or `..`, through a symlink."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # a symlink loop, a name too long: fall back to the plain spelling
        return os.path.abspath(path)


def _shard_key(name: str) -> str:
    """`SHARD::KEY` with the shard's path normalised like `path_key`."""
    shard, sep, key = name.rpartition("::")
    return f"{path_key(shard)}::{key}" if sep else path_key(name)


def _trim_torn_line(out: Path) -> None:
    """Drop a partial last line (no newline) left by a crash, so appends start on a fresh line. Bytes, not
    text: the tear may be inside a multi-byte UTF-8 character."""
    if not out.exists() or out.stat().st_size == 0:
        return
    with out.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data = out.read_bytes()
        f.truncate(data.rfind(b"\n") + 1)


class ResultsFile:
    """A JSONL file of `CaptionResult`s written as a job goes, which a later run of the job resumes.

    With `resume`, a last line torn by a crash is dropped (so it is done again) and `done` holds the keys
    (`key(path)`) of the items the file already holds; without it the file is replaced. Inside the `with`
    block `write` appends results and makes them durable (flush and fsync), so a crash loses at most the
    results in flight; `counts` adds them up.
    """

    def __init__(self, out: str | Path, *, resume: bool, key: Callable[[str], str]) -> None:
        self.path = Path(out)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self.done: set[str] = set()
        if resume:
            _trim_torn_line(self.path)
            self.done = {key(p) for p in done_paths(self.path)}
        self.counts = {"captioned": 0, "failed": 0}
        self._file: IO[str] | None = None

    def __enter__(self) -> ResultsFile:
        self._file = self.path.open("a" if self.resume else "w", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def write(self, results: Iterable[CaptionResult]) -> None:
        for r in results:
            self._file.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
            self.counts["failed" if r.error else "captioned"] += 1
        self._file.flush()
        os.fsync(self._file.fileno())


def caption_files(chat: Engine | HasEngine, files: Sequence[Path], out: str | Path, *, resume: bool = False, batch_size: int = 8,
                  chunk: int = 64, progress: bool = True, **kwargs: Any) -> dict[str, int]:
    """Caption `files` into the JSONL file `out`, `chunk` items at a time, flushing after each chunk.

    With `resume`, files already in `out` are skipped (compared by `path_key`: the same file named another
    way is the same item); without it an existing `out` is replaced. `prompt` may be one per file.
    Returns counts: total, skipped (already done), captioned, failed.
    """
    from tqdm import tqdm

    check_batch_size(batch_size)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"chunk must be a whole number >= 1, got {chunk!r}")
    files = list(files)
    prompts = _prompts(kwargs.pop("prompt", None), len(files))
    results = ResultsFile(out, resume=resume, key=path_key)
    todo, seen = [], set()
    for f, p in zip(files, prompts):
        key = path_key(f)
        if key not in results.done and key not in seen:  # a file named twice in `files` is captioned once
            todo.append((f, p))
            seen.add(key)
    with results, tqdm(total=len(todo), desc="captioning", unit="item", disable=not progress) as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            results.write(caption_items(chat, [str(f) for f, _ in part], prompt=[p for _, p in part],
                                        batch_size=batch_size, on_error="skip", **kwargs))
            bar.update(len(part))
    return {"total": len(files), "skipped": len(files) - len(todo), **results.counts}


def caption_shards(chat: Engine | HasEngine, shards: Sequence[Path], out: str | Path, *, rank: int = 0, world_size: int = 1,
                   resume: bool = False, batch_size: int = 8, chunk: int = 64, progress: bool = True,
                   **kwargs: Any) -> dict[str, int]:
    """Caption the samples of WebDataset shards `shards[rank::world_size]` into `out` (this rank's part).

    A sample's first media member is captioned; its path is `SHARD::KEY`. Shards are streamed.
    """
    from tqdm import tqdm

    results = ResultsFile(out, resume=resume, key=_shard_key)
    mine = list(shards)[rank::world_size]
    total = skipped = 0
    with results, tqdm(desc=f"captioning (rank {rank})", unit="item", disable=not progress) as bar:
        pending: list[tuple[str, Any]] = []

        def flush() -> None:
            results.write(caption_items(chat, [x for _, x in pending], names=[n for n, _ in pending],
                                        batch_size=batch_size, on_error="skip", **kwargs))
            bar.update(len(pending))
            pending.clear()

        for shard in mine:
            for rec in read_webdataset([shard]):
                total += 1
                name = f"{shard}::{rec.id}"
                if _shard_key(name) in results.done:
                    skipped += 1
                    continue
                modality, data = rec.media[0]
                pending.append((name, _Tagged(modality, data)))
                if len(pending) >= chunk:
                    flush()
            if pending:
                flush()
    return {"total": total, "skipped": skipped, **results.counts}


@dataclass
class _Tagged:
    """In-memory media whose modality is known from its member name (bytes carry no extension)."""

    modality: str
    data: bytes


def merge_parts(parts: Sequence[Path], out: Path) -> int:
    """Concatenate per-rank JSONL parts into `out` (atomically); returns the line count."""
    tmp = out.with_suffix(out.suffix + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for part in parts:
            for line in _lines(part):
                if line.strip():
                    f.write(line + "\n")
                    n += 1
    tmp.replace(out)
    return n
