"""`mm eval`: accuracy per question type and language on a held-out split of the synthetic world.

A response is correct when it equals the reference answer up to case, spaces and final punctuation
(answers in this world are short templated sentences, so this is strict and unambiguous). Follow-ups
are asked with the model's own first answer in the history. Captions are scored by the objects they
get fully right (size, colour, shape and position) and the digit.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mm.media import prepare_media
from mm.prompt import CAPTION_PROMPTS
from mm.synth.vocab import COLOURS, POSITIONS, SHAPES, SIZES

IMAGE_TYPES = ("colour", "shape", "count", "position", "size", "digit")
AUDIO_TYPES = ("pitch", "beeps", "sweep", "kind")
VIDEO_TYPES = ("motion", "speed", "object", "beep", "when", "difference")
_PUNCT = " \t\n.。!！?？,，"


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip(_PUNCT).lower())


@dataclass
class EvalReport:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per question asked
    captions: list[dict[str, Any]] = field(default_factory=list)  # one per caption asked

    def accuracy(self, **where: Any) -> float | None:
        rows = [r for r in self.rows if all(r[k] == v for k, v in where.items())]
        return sum(r["correct"] for r in rows) / len(rows) if rows else None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"questions": len(self.rows)}
        by: dict[str, dict[str, float | None]] = defaultdict(dict)
        for t in (*IMAGE_TYPES, *AUDIO_TYPES, *VIDEO_TYPES):
            for lang in ("en", "zh"):
                by[t][lang] = self.accuracy(type=t, lang=lang, followup=False)
            by[t]["all"] = self.accuracy(type=t, followup=False)
        out["by_type"] = dict(by)
        for modality in ("image", "audio", "video"):
            out[modality] = {lang: self.accuracy(modality=modality, lang=lang, followup=False) for lang in ("en", "zh")}
            out[modality]["all"] = self.accuracy(modality=modality, followup=False)
        out["followup"] = {lang: self.accuracy(followup=True, lang=lang) for lang in ("en", "zh")}
        out["followup"]["all"] = self.accuracy(followup=True)
        for lang in ("en", "zh"):
            caps = [c for c in self.captions if c["lang"] == lang]
            if caps:
                objects = [o for c in caps for o in c["objects"]]
                out.setdefault("captions", {})[lang] = {
                    "object_recall": sum(objects) / len(objects) if objects else None,
                    "exact": sum(c["exact"] for c in caps) / len(caps),
                }
        return out


def _caption_objects(text: str, meta: dict[str, Any], modality: str, lang: str) -> list[bool]:
    """Per true object (and the digit): is it described completely and correctly?"""
    if modality != "image":
        return []
    got = []
    for s in meta["shapes"]:
        if lang == "en":
            phrase = f"{s['size']} {s['colour']} {s['shape']} at the {s['position']}"
            got.append(re.search(re.escape(phrase) + r"(?=[,.]| and)", text) is not None)
        else:
            phrase = f"{POSITIONS[s['position']]}有一个{SIZES[s['size']]}的{COLOURS[s['colour']][0]}{SHAPES[s['shape']]}"
            got.append(phrase in text and not re.search(re.escape(phrase) + r"[^，。]", text))
    if meta.get("digit") is not None:
        got.append(str(meta["digit"]) in text)
    return got


def record_modality(rec: dict) -> str:
    """"image", "audio" or "video" (a clip, or a pair of clips)."""
    return next(m for m in ("image", "audio", "video", "videos") if m in rec).rstrip("s")


def _media(chat: Any, rec: dict, root: Path) -> list:
    if "videos" in rec:
        return [p for v in rec["videos"] for p in prepare_media(chat.model, "video", root / v)]
    modality = record_modality(rec)
    return prepare_media(chat.model, modality, root / rec[modality])


def evaluate(chat: Any, manifest: str | Path, *, limit: int | None = None, batch_size: int = 32,
             captions: bool = True, progress: bool = True) -> EvalReport:
    manifest = Path(manifest)
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    if limit is not None:
        kinds = ("image", "audio", "video", "videos")
        records = [r for k in kinds for r in [r for r in records if k in r][:limit]]
    report = EvalReport()
    single: list[tuple[dict, dict, list]] = []  # (record, qa, media)
    first: list[tuple[dict, list[dict], list]] = []
    caps: list[tuple[dict, str, str, list]] = []
    for rec in tqdm(records, desc="preparing", disable=not progress, leave=False):
        modality = record_modality(rec)
        if modality not in chat.model.config.modalities:
            continue
        media = _media(chat, rec, manifest.parent)
        single += [(rec, qa, media) for qa in rec["qa"]]
        first += [(rec, d, media) for d in rec.get("dialogues", [])]
        if captions and rec.get("captions"):
            caps += [(rec, lang, CAPTION_PROMPTS[modality][lang][0], media) for lang in ("en", "zh")]
    gen = {"batch_size": batch_size, "max_new_tokens": 48}
    answers = chat.answer_batch([(qa["q"], [], m) for _, qa, m in single], **gen)
    for (rec, qa, _), ans in zip(single, answers):
        report.rows.append({"id": rec["id"], "modality": record_modality(rec), "type": qa["type"],
                            "lang": qa["lang"], "followup": False, "q": qa["q"], "expected": qa["a"],
                            "answer": ans, "correct": normalise(ans) == normalise(qa["a"])})
    # Follow-ups: the second question is asked after the model's own first answer.
    a1 = chat.answer_batch([(d[0]["q"], [], m) for _, d, m in first], **gen)
    a2 = chat.answer_batch([(d[1]["q"], [(d[0]["q"], a)], m) for (_, d, m), a in zip(first, a1)], **gen)
    for (rec, d, _), ans in zip(first, a2):
        qa = d[1]
        report.rows.append({"id": rec["id"], "modality": "image", "type": qa["type"], "lang": qa["lang"],
                            "followup": True, "q": qa["q"], "expected": qa["a"], "answer": ans,
                            "correct": normalise(ans) == normalise(qa["a"])})
    texts = chat.answer_batch([(p, [], m) for _, _, p, m in caps], **{**gen, "max_new_tokens": 96})
    for (rec, lang, _, _), text in zip(caps, texts):
        modality = record_modality(rec)
        report.captions.append({"id": rec["id"], "lang": lang, "caption": text,
                                "exact": normalise(text) == normalise(rec["captions"][lang]),
                                "objects": _caption_objects(text, rec["meta"], modality, lang)})
    return report


def _pct(x: float | None) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}"


def format_report(summary: dict[str, Any]) -> str:
    lines = [f"{'question type':16s}{'en':>5s}  {'zh':>5s}  {'all':>5s}", "-" * 35]
    for t, acc in summary["by_type"].items():
        if acc["all"] is not None:
            lines.append(f"{t:16s}{_pct(acc['en'])}  {_pct(acc['zh'])}  {_pct(acc['all'])}")
    lines.append("-" * 35)
    for key in ("image", "audio", "video", "followup"):
        acc = summary[key]
        if acc["all"] is not None:
            lines.append(f"{key + ' overall':16s}{_pct(acc['en'])}  {_pct(acc['zh'])}  {_pct(acc['all'])}")
    for lang, c in summary.get("captions", {}).items():
        lines.append(f"captions ({lang}): object recall {_pct(c['object_recall'])}%, exact {_pct(c['exact'])}%")
    lines.append(f"{summary['questions']} questions")
    return "\n".join(lines)
