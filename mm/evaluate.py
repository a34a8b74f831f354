"""`mm eval`: accuracy per question type and language on held-out splits of the synthetic world.

A response is correct when it equals the reference answer up to case, spaces and final punctuation
(every phrasing of a question has one answer form, so this is strict and unambiguous). Follow-ups are
asked with the model's own earlier answers in the history. Captions are scored by the objects they name
(see `mm.eval_report`).

The held-out splits (`EVAL_SPLITS`) come from one seed the recipe never uses, so they share their scenes
and sounds and differ only in what each varies: "seen" (training phrasing and renderers),
"unseen-phrasing" (templates and synonyms kept out of training) and "unseen-rendering" (a second
renderer and sound synthesiser; images and sounds only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mm.chat import MMChat
from mm.eval_report import add_predicted_keys, confusion, normalise, score_caption, summarise
from mm.media import prepare_media
from mm.prompt import CAPTION_PROMPTS

HELD_OUT_SEED = 777  # the recipe's worlds use seed 0
# split name -> (phrasing, rendering, with clips)
EVAL_SPLITS: dict[str, tuple[str, str, bool]] = {
    "seen": ("seen", "train", True),
    "unseen-phrasing": ("unseen", "train", True),
    "unseen-rendering": ("seen", "alt", False),
}

__all__ = ["EVAL_SPLITS", "HELD_OUT_SEED", "EvalReport", "evaluate", "evaluate_splits", "normalise",
           "record_modality", "write_eval_splits"]


@dataclass
class EvalReport:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per question asked
    captions: list[dict[str, Any]] = field(default_factory=list)  # one per caption asked

    @property
    def splits(self) -> list[str]:
        """Split names in the order they were evaluated."""
        return list(dict.fromkeys(r["split"] for r in self.rows + self.captions))

    def _of(self, split: str | None) -> tuple[list[dict], list[dict]]:
        if split is None:
            return self.rows, self.captions
        return [r for r in self.rows if r["split"] == split], [c for c in self.captions if c["split"] == split]

    def accuracy(self, **where: Any) -> float | None:
        rows = [r for r in self.rows if all(r[k] == v for k, v in where.items())]
        return sum(r["correct"] for r in rows) / len(rows) if rows else None

    def summary(self, split: str | None = None) -> dict[str, Any]:
        """Accuracy tables of one split (None: every row together); see `mm.eval_report.summarise`."""
        return summarise(*self._of(split))

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {s: self.summary(s) for s in self.splits}

    def confusion(self, split: str | None = None) -> dict[str, dict[str, dict[str, int]]]:
        """type -> reference key -> predicted key -> count."""
        return confusion(self._of(split)[0])

    def to_json(self) -> dict[str, Any]:
        """Everything: the first split's summary at the top level (what one-split readers expect), every
        split's summary under "splits" and its confusion tables under "confusion"."""
        summaries = self.summaries()
        first = next(iter(summaries.values()), summarise([], []))
        return {**first, "splits": summaries, "confusion": {s: self.confusion(s) for s in self.splits}}


def record_modality(rec: dict) -> str:
    """"image", "audio" or "video" (a clip, or a pair of clips)."""
    return next(m for m in ("image", "audio", "video", "videos") if m in rec).rstrip("s")


def _media(chat: MMChat, rec: dict, root: Path) -> list:
    if "videos" in rec:
        return [p for v in rec["videos"] for p in prepare_media(chat.model, "video", root / v)]
    modality = record_modality(rec)
    return prepare_media(chat.model, modality, root / rec[modality])


def _row(split: str, rec: dict, qa: dict, answer: str) -> dict[str, Any]:
    phrasing = qa.get("phrasing") or rec.get("world", {}).get("phrasing", "canonical")
    return {"split": split, "id": rec["id"], "modality": record_modality(rec), "type": qa["type"],
            "lang": qa["lang"], "followup": qa.get("followup", False), "phrasing": phrasing,
            "question": qa["q"], "reference": qa["a"], "key": qa["key"], "answer": answer,
            "correct": normalise(answer) == normalise(qa["a"])}


def evaluate(chat: MMChat, manifest: str | Path, *, limit: int | None = None, batch_size: int = 32,
             captions: bool = True, progress: bool = True, split: str = "data") -> EvalReport:
    """Ask every question (and caption prompt) of a world manifest; rows are tagged with `split`."""
    manifest = Path(manifest)
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    if limit is not None:
        kinds = ("image", "audio", "video", "videos")
        records = [r for k in kinds for r in [r for r in records if k in r][:limit]]
    report = EvalReport()
    single: list[tuple[dict, dict, list]] = []  # (record, qa, media)
    dialogues: list[tuple[dict, list[dict], list]] = []
    caps: list[tuple[dict, str, str, list]] = []
    for rec in tqdm(records, desc=f"preparing {split}", disable=not progress, leave=False):
        modality = record_modality(rec)
        if modality not in chat.model.config.modalities:
            continue
        media = _media(chat, rec, manifest.parent)
        single += [(rec, qa, media) for qa in rec["qa"]]
        dialogues += [(rec, d, media) for d in rec.get("dialogues", []) if len(d) >= 2]
        if captions and rec.get("captions"):
            caps += [(rec, lang, CAPTION_PROMPTS[modality][lang][0], media) for lang in ("en", "zh")]
    gen = {"batch_size": batch_size, "max_new_tokens": 48}
    answers = chat.answer_batch([(qa["q"], [], m) for _, qa, m in single], **gen)
    report.rows += [_row(split, rec, qa, ans) for (rec, qa, _), ans in zip(single, answers)]
    # Follow-ups: every turn after the first is asked after the model's own earlier answers, and scored.
    histories: list[list[tuple[str, str]]] = [[] for _ in dialogues]
    for turn in range(max((len(d) for _, d, _ in dialogues), default=0)):
        live = [i for i, (_, d, _) in enumerate(dialogues) if len(d) > turn]
        asked = [dialogues[i][1][turn] for i in live]
        answers = chat.answer_batch([(qa["q"], histories[i], dialogues[i][2]) for i, qa in zip(live, asked)], **gen)
        for i, qa, ans in zip(live, asked, answers):
            histories[i] = [*histories[i], (qa["q"], ans)]
            if turn > 0:
                report.rows.append(_row(split, dialogues[i][0], {**qa, "followup": True}, ans))
    texts = chat.answer_batch([(p, [], m) for _, _, p, m in caps], **{**gen, "max_new_tokens": 96})
    for (rec, lang, prompt, _), text in zip(caps, texts):
        # Objects are scored where the record lists its scene's shapes (the world's pictures).
        objects = score_caption(text, rec["meta"], lang) if "shapes" in rec.get("meta", {}) else None
        report.captions.append({"split": split, "id": rec["id"], "modality": record_modality(rec), "lang": lang,
                                "question": prompt, "reference": rec["captions"][lang], "answer": text,
                                "exact": normalise(text) == normalise(rec["captions"][lang]), "objects": objects})
    add_predicted_keys(report.rows)
    return report


def write_eval_splits(out: str | Path, splits: list[str], seed: int = HELD_OUT_SEED, *, images: int = 300,
                      sounds: int = 300, videos: int = 0, pairs: int = 0, workers: int = 2) -> dict[str, Path]:
    """Write the held-out `splits` (names of EVAL_SPLITS) under `out`/NAME; returns name -> manifest."""
    from mm.synth import write_split

    unknown = [s for s in splits if s not in EVAL_SPLITS]
    if unknown:
        raise ValueError(f"unknown evaluation split {unknown[0]!r}; one of {', '.join(EVAL_SPLITS)}")
    out = Path(out)
    manifests = {}
    for name in splits:
        phrasing, rendering, clips = EVAL_SPLITS[name]
        manifests[name] = write_split(out / name, "test", images, sounds, seed, workers,
                                      n_videos=videos if clips else 0, n_pairs=pairs if clips else 0,
                                      phrasing=phrasing, rendering=rendering)
    return manifests


def evaluate_splits(chat: MMChat, manifests: dict[str, str | Path], **kwargs: Any) -> EvalReport:
    """`evaluate` each manifest under its split name; one report with every row."""
    report = EvalReport()
    for name, manifest in manifests.items():
        part = evaluate(chat, manifest, split=name, **kwargs)
        report.rows += part.rows
        report.captions += part.captions
    return report
