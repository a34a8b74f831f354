"""Records -> training examples (media + conversation turns), drawn afresh each epoch.

Each example is a pure function of (record, seed, epoch, index), so a resumed run sees exactly the
examples it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mm.modality import MODALITY_TYPES
from mm.prompt import CAPTION_PROMPTS
from mm.train.sources import Record

Mode = Literal["caption", "dialogue", "text"]

@dataclass
class Example:
    id: str
    media: list[tuple[str, str]]  # (modality, media key) in prompt order
    turns: list[tuple[str, str]]  # (query, answer)


def media_key(record: Record, k: int) -> str:
    """Stable key of a record's k-th media item: its path, or `id#k` for in-memory bytes."""
    src = record.media[k][1]
    return src if isinstance(src, str) else f"{record.id}#{k}"


TRACK = "#audio"  # suffix of the key of a clip's sound track in its `sound_track` modality's feature cache


def sound_track(modality: str) -> str | None:
    """The modality whose feature cache holds the sound track of a `modality` item (a clip's: audio)."""
    kind = MODALITY_TYPES.get(modality)
    return None if kind is None else kind.sound_track


def example_media(record: Record) -> list[tuple[str, str]]:
    """(modality, key) in prompt order; a clip is followed by its sound track (dropped later if silent)."""
    out = []
    for k, (modality, _) in enumerate(record.media):
        key = media_key(record, k)
        out.append((modality, key))
        track = sound_track(modality)
        if track is not None:
            out.append((track, key + TRACK))
    return out


def _lang(text: str) -> str:
    return "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"


def _caption_turn(record: Record, rng: np.random.Generator) -> tuple[str, str] | None:
    if not record.captions:
        return None
    caption = record.captions[int(rng.integers(len(record.captions)))]
    modality = record.media[0][0] if record.media else "image"
    prompts = CAPTION_PROMPTS[modality][_lang(caption)]
    return prompts[int(rng.integers(len(prompts)))], caption


# Questions per synthetic dialogue. Stage 2 asks more per example (the media tokens and the prompt are paid
# once per example) and draws each question's type first, so rare types (absent objects, relations, digits)
# are trained as often as common ones; stage 0's text examples keep the first recipe's draw.
TEXT_QUESTIONS = (1, 1, 2, 3)
DIALOGUE_QUESTIONS = (2, 3, 4)


def _pick_questions(pool: list[dict], n: int, by_type: bool, rng: np.random.Generator) -> list[dict]:
    if not by_type:
        return [pool[int(i)] for i in rng.choice(len(pool), size=n, replace=False)]
    kinds: dict[str, list[dict]] = {}
    for t in pool:
        kinds.setdefault(t.get("type", ""), []).append(t)
    names = sorted(kinds)
    chosen = [names[int(i)] for i in rng.choice(len(names), size=min(n, len(names)), replace=False)]
    return [kinds[k][int(rng.integers(len(kinds[k])))] for k in chosen]


def _synth_dialogue(extra: dict[str, Any], rng: np.random.Generator, counts: tuple[int, ...] = TEXT_QUESTIONS,
                    by_type: bool = False) -> list[tuple[str, str]] | None:
    """A random dialogue from the synthetic world: a follow-up pair, or questions in one language
    (how many: one of `counts`; `by_type`: each of a different type, types drawn uniformly)."""
    qa, dialogues = extra.get("qa", []), extra.get("dialogues", [])
    if dialogues and rng.random() < 0.3:
        d = dialogues[int(rng.integers(len(dialogues)))]
        return [(t["q"], t["a"]) for t in d]
    if not qa:
        return None
    lang = "en" if rng.random() < 0.5 else "zh"
    pool = [t for t in qa if t["lang"] == lang] or qa
    n = min(len(pool), int(rng.choice(counts)))
    return [(t["q"], t["a"]) for t in _pick_questions(pool, n, by_type, rng)]


def make_example(record: Record, mode: Mode, rng: np.random.Generator) -> Example | None:
    """One example of `mode` from `record`, or None when the record has nothing for that mode."""
    media = example_media(record)
    if mode == "caption":
        turn = _caption_turn(record, rng)
        return Example(record.id, media, [turn]) if turn else None
    if mode == "dialogue":
        turns = (_synth_dialogue(record.extra, rng, DIALOGUE_QUESTIONS, by_type=True)
                 if record.extra.get("qa") else None)
        if turns is None and record.conversations:
            turns = record.conversations[int(rng.integers(len(record.conversations)))]
        if (turns is None or rng.random() < 0.15) and record.captions:
            turns = [_caption_turn(record, rng)]
        return Example(record.id, media, turns) if turns else None
    # "text": the LLM learns to answer from a written description (stage 0, no media).
    if not record.captions:
        return None
    by_lang = record.extra.get("captions")
    if isinstance(by_lang, dict) and rng.random() < 0.8:
        turns = _synth_dialogue(record.extra, rng)
        if turns:
            described = by_lang.get(_lang(turns[0][0]), record.captions[0])
            turns[0] = (f"{described}\n{turns[0][0]}", turns[0][1])
            return Example(record.id, [], turns)
    caption = record.captions[int(rng.integers(len(record.captions)))]
    prompts = CAPTION_PROMPTS["image"][_lang(caption)]
    return Example(record.id, [], [(prompts[int(rng.integers(len(prompts)))], caption)])


class ExampleDataset:
    """Map-style dataset over records; `set_epoch` changes which example each record yields."""

    def __init__(self, records: list[Record], mode: Mode, seed: int = 0) -> None:
        self.records = records
        self.mode = mode
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Example | None:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return make_example(self.records[i], self.mode, rng)
