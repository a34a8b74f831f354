"""Bilingual captions, questions and comparison answers for the synthetic clips (see `mm.synth.video`).

Questions come from the grammar (`mm.synth.grammar`) in a phrasing set; answers have one form per type.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mm.prompt import COMPARE_PROMPTS  # noqa: F401 - the product's question, named here for the world's tests
from mm.synth.grammar import QA, Phrasing, ask
from mm.synth.video import Clip
from mm.synth.vocab import COLOURS, MOTIONS, PITCHES, SHAPES, SPEEDS, WHEN

_MOTION_EN = {"left": "to the left", "right": "to the right", "up": "upwards", "down": "downwards"}
_SPEED_EN = {"slow": "slowly", "fast": "quickly"}
_SPEED_ZH = {"slow": "慢慢地", "fast": "快速地"}
_WHEN_EN = {"start": "at the start", "end": "at the end"}


def caption_clip(clip: Clip, lang: str) -> str:
    if lang == "en":
        return (f"A {clip.colour} {clip.shape} moves {_SPEED_EN[clip.speed]} {_MOTION_EN[clip.motion]}. "
                f"A {clip.pitch} beep sounds {_WHEN_EN[clip.when]}.")
    return (f"一个{COLOURS[clip.colour][0]}{SHAPES[clip.shape]}{_SPEED_ZH[clip.speed]}{MOTIONS[clip.motion]}移动。"
            f"{WHEN[clip.when]}有一声{PITCHES[clip.pitch][0]}音哔声。")


# What a counterfactual caption may change, with the values it may take.
_COUNTERFACTUAL = {"motion": MOTIONS, "speed": SPEEDS, "colour": COLOURS, "shape": SHAPES, "pitch": PITCHES,
                   "when": WHEN}


def counterfactual_captions(clip: Clip, lang: str, attributes: tuple[str, ...] = ("motion", "speed")) -> list[str]:
    """The clip's caption with one of `attributes` changed to each other value: captions that are wrong
    about exactly one thing (hard negatives for contrastive training; motion 3 + speed 1 by default)."""
    unknown = [a for a in attributes if a not in _COUNTERFACTUAL]
    if unknown:
        raise ValueError(f"unknown clip attribute {unknown[0]!r}; one of {', '.join(_COUNTERFACTUAL)}")
    return [caption_clip(dataclasses.replace(clip, **{a: v}), lang)
            for a in attributes for v in _COUNTERFACTUAL[a] if v != getattr(clip, a)]


def _clip_ref(clip: Clip, lang: str, rng: np.random.Generator | None, phrasing: Phrasing) -> str:
    """The moving shape: by its shape (canonical), colour and shape, or a plain noun (it is alone)."""
    if lang == "en":
        options = [f"the {clip.shape}", f"the {clip.colour} {clip.shape}", "the [shape|object|thing|figure|!item]"]
    else:
        options = [SHAPES[clip.shape], f"{COLOURS[clip.colour][0]}{SHAPES[clip.shape]}", "[这个|那个][形状|图形|物体]"]
    return options[0] if phrasing == "canonical" or rng is None else options[int(rng.integers(len(options)))]


def clip_questions(clip: Clip, lang: str, rng: np.random.Generator | None = None,
                   phrasing: Phrasing = "canonical") -> list[QA]:
    """Motion, speed, the moving object, the beep's pitch and when it sounds."""

    def q(kind: str, a: str, key: str, ref: bool = False) -> QA:
        slots = {"ref": _clip_ref(clip, lang, rng, phrasing)} if ref else {}
        return QA(kind, lang, ask(kind, lang, rng, phrasing, **slots), a, key, False, phrasing)

    if lang == "en":
        s = clip.shape
        return [
            q("motion", f"It moves {_MOTION_EN[clip.motion]}.", clip.motion, ref=True),
            q("speed", f"It moves {_SPEED_EN[clip.speed]}.", clip.speed, ref=True),
            q("object", f"A {clip.colour} {s}.", f"{clip.colour} {s}"),
            q("beep", f"The beep is {clip.pitch}.", clip.pitch),
            q("when", f"It sounds {_WHEN_EN[clip.when]}.", clip.when),
        ]
    s = SHAPES[clip.shape]
    colour, motion, when = COLOURS[clip.colour][0], MOTIONS[clip.motion], WHEN[clip.when]
    return [
        q("motion", f"{motion}移动。", motion, ref=True),
        q("speed", f"移动得很{SPEEDS[clip.speed]}。", SPEEDS[clip.speed], ref=True),
        q("object", f"一个{colour}{s}。", f"{colour}{s}"),
        q("beep", f"音调是{PITCHES[clip.pitch][0]}。", PITCHES[clip.pitch][0]),
        q("when", f"在{when}。", when),
    ]


_SUBJECT = {"en": {"pitch": "beep", "when": "beep"}, "zh": {"pitch": "哔声", "when": "哔声"}}


def _value(clip: Clip, attribute: str, lang: str) -> str:
    v = getattr(clip, attribute)
    en = {"motion": lambda: f"moves {_MOTION_EN[v]}", "speed": lambda: f"moves {_SPEED_EN[v]}",
          "colour": lambda: f"is {v}", "shape": lambda: f"is a {v}", "pitch": lambda: f"is {v}",
          "when": lambda: f"sounds {_WHEN_EN[v]}"}
    zh = {"motion": lambda: f"{MOTIONS[v]}移动", "speed": lambda: f"移动得{SPEEDS[v]}",
          "colour": lambda: f"是{COLOURS[v][0]}", "shape": lambda: f"是{SHAPES[v]}",
          "pitch": lambda: f"是{PITCHES[v][0]}音", "when": lambda: f"在{WHEN[v]}响起"}
    return (en if lang == "en" else zh)[attribute]()


def compare_answer(a: Clip, b: Clip, attribute: str | None, lang: str, rng: np.random.Generator | None = None,
                   phrasing: Phrasing = "canonical") -> QA:
    """The comparison question for a pair that differs in `attribute` (None: identical clips) and its
    answer; the canonical question is `mm.prompt.COMPARE_PROMPTS[lang]`, the one `mm compare` asks."""
    q = ask("difference", lang, rng, phrasing)
    if attribute is None:
        text = "The two clips are the same." if lang == "en" else "两个片段相同。"
        return QA("difference", lang, q, text, "same" if lang == "en" else "相同", False, phrasing)
    if lang == "en":
        subject = _SUBJECT["en"].get(attribute, "shape")
        text = f"In the first clip the {subject} {_value(a, attribute, lang)}; in the second it {_value(b, attribute, lang)}."
    else:
        subject = _SUBJECT["zh"].get(attribute, "形状")
        text = f"第一个片段中{subject}{_value(a, attribute, lang)}，第二个片段中{_value(b, attribute, lang)}。"
    return QA("difference", lang, q, text, attribute, False, phrasing)
