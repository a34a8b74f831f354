"""`mm bench described`: the image questions asked about the picture and about a written description of it.

The same held-out scenes and questions, twice: once with the picture, once with no media and the scene's
caption (which names every object with its colour, size, shape and position) written before the question,
the form in which stage 0 teaches the LLM to answer. Where the answers from the description are no better
than those from the picture, the LLM, not what the bridge hands it, limits the model. Both are scored by
question type and by how many objects the scene holds (one object needs no telling apart).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mm.chat import MMChat
from mm.eval_report import normalise
from mm.media import prepare_media


def _tally(rows: list[tuple[str, int, bool]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind, objects, ok in rows:
        for key in (kind, f"{objects} object{'s' if objects > 1 else ''}", "all"):
            c = out.setdefault(key, {"right": 0, "questions": 0})
            c["right"] += int(ok)
            c["questions"] += 1
    for c in out.values():
        c["accuracy"] = round(100 * c["right"] / c["questions"], 1)
    return dict(sorted(out.items()))


def described_vs_seen(chat: MMChat, manifest: str | Path, *, batch_size: int = 32) -> dict[str, Any]:
    """Accuracy from the picture and from its caption on a world manifest's scenes (first-turn questions)."""
    if "image" not in chat.model.config.modalities:
        raise ValueError("the model has no image input")
    manifest = Path(manifest)
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    scenes = [r for r in records if "image" in r and "shapes" in r.get("meta", {}) and r.get("captions")]
    if not scenes:
        raise ValueError(f"{manifest}: no scenes of the synthetic world (records with an image, captions, meta)")
    asked = [(r, qa) for r in scenes for qa in r["qa"]]
    media = {r["id"]: prepare_media(chat.model, "image", manifest.parent / r["image"]) for r in scenes}
    gen = {"batch_size": batch_size, "max_new_tokens": 48}
    seen = chat.answer_batch([(qa["q"], [], media[r["id"]]) for r, qa in asked], **gen)
    read = chat.answer_batch([(f"{r['captions'][qa['lang']]}\n{qa['q']}", [], []) for r, qa in asked], **gen)
    rows = {"picture": [], "description": []}
    for (r, qa), a, b in zip(asked, seen, read):
        n = len(r["meta"]["shapes"])
        rows["picture"].append((qa["type"], n, normalise(a) == normalise(qa["a"])))
        rows["description"].append((qa["type"], n, normalise(b) == normalise(qa["a"])))
    return {"scenes": len(scenes), "questions": len(asked), **{k: _tally(v) for k, v in rows.items()}}
