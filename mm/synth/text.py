"""Bilingual captions and question-answer pairs with known answers for scenes and sounds.

Every QA carries its question type and `key`: the answer word a correct response must contain
(`mm.evaluate` scores with it). Questions come from the grammar (`mm.synth.grammar`) in one of three
phrasing sets: "canonical" (the world's original question text), "seen" (many phrasings, for training)
and "unseen" (held-out templates and synonyms, for evaluation only); the answer of a question is the same
whatever its phrasing. Follow-up questions ("And what colour is it?") refer to the object of the previous
turn ("it"), or in a two-shape scene to "the other one".
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mm.synth.grammar import QA, Phrasing, ask
from mm.synth.grammar_image import (
    KINDS,
    about,
    absent_question,
    filtered_counts,
    follow,
    relation_question,
    yesno_questions,
)
from mm.synth.scene import Scene, Shape
from mm.synth.sound import Sound
from mm.synth.vocab import COLOURS, DIRECTIONS, NUMBERS_EN, NUMBERS_ZH, PITCHES, POSITIONS, SHAPES, SIZES

__all__ = ["QA", "caption_scene", "caption_sound", "counterfactual_scene_captions", "scene_followups",
           "scene_questions", "sound_questions"]

_SIZE_EN = {"small": "small", "large": "large"}


def _shape_en(s: Shape) -> str:
    return f"{_SIZE_EN[s.size]} {s.colour} {s.shape}"


def _shape_zh(s: Shape) -> str:
    return f"{SIZES[s.size]}的{COLOURS[s.colour][0]}{SHAPES[s.shape]}"


def caption_scene(scene: Scene, lang: str) -> str:
    if lang == "en":
        parts = [f"a {_shape_en(s)} at the {s.position}" for s in scene.shapes]
        text = (", ".join(parts[:-1]) + " and " + parts[-1]) if len(parts) > 1 else parts[0]
        text = text[0].upper() + text[1:] + "."
        if scene.digit is not None:
            text += f" The digit {scene.digit} is shown."
        return text
    parts = [f"{POSITIONS[s.position]}有一个{_shape_zh(s)}" for s in scene.shapes]
    text = "，".join(parts) + "。"
    if scene.digit is not None:
        text += f"图中有数字{scene.digit}。"
    return text


# What a counterfactual scene caption may change in one object, with the values it may take.
_OBJECT_VALUES = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "position": POSITIONS}


def counterfactual_scene_captions(scene: Scene, lang: str) -> list[str]:
    """The scene's caption wrong about exactly one thing (hard negatives for contrastive training): one
    object's colour, shape, size or position changed; two objects' colours or shapes swapped (which words
    belong to which object); one object left out (n > 1); the digit changed. Distinct, none the true one."""
    shapes = scene.shapes

    def with_shapes(new: list[Shape], digit: int | None = scene.digit) -> str:
        return caption_scene(Scene(shapes=new, digit=digit), lang)

    out: list[str] = []
    for i, s in enumerate(shapes):
        for attr, values in _OBJECT_VALUES.items():
            out += [with_shapes([*shapes[:i], dataclasses.replace(s, **{attr: v}), *shapes[i + 1:]])
                    for v in values if v != getattr(s, attr)]
    for i in range(len(shapes)):
        for j in range(i + 1, len(shapes)):
            for attr in ("colour", "shape"):
                a, b = getattr(shapes[i], attr), getattr(shapes[j], attr)
                if a != b:
                    new = list(shapes)
                    new[i], new[j] = dataclasses.replace(shapes[i], **{attr: b}), dataclasses.replace(shapes[j], **{attr: a})
                    out.append(with_shapes(new))
    if len(shapes) > 1:
        out += [with_shapes(shapes[:i] + shapes[i + 1:]) for i in range(len(shapes))]
    if scene.digit is not None:
        out += [with_shapes(shapes, d) for d in range(10) if d != scene.digit]
    true = caption_scene(scene, lang)
    return [c for c in dict.fromkeys(out) if c != true]


def caption_sound(sound: Sound, lang: str) -> str:
    if lang == "en":
        if sound.kind == "tone":
            return f"A steady {sound.pitch} tone."
        if sound.kind == "beeps":
            return f"{NUMBERS_EN[sound.beeps].capitalize()} {sound.pitch} beep{'s' if sound.beeps > 1 else ''}."
        if sound.kind == "sweep":
            return f"A {sound.direction} sweep."
        return "White noise."
    if sound.kind == "tone":
        return f"一个持续的{PITCHES[sound.pitch][0]}音。"
    if sound.kind == "beeps":
        return f"{NUMBERS_ZH[sound.beeps]}声{PITCHES[sound.pitch][0]}音哔声。"
    if sound.kind == "sweep":
        return f"一个{DIRECTIONS[sound.direction]}的扫频音。"
    return "白噪声。"


def scene_questions(scene: Scene, lang: str, rng: np.random.Generator | None = None,
                    phrasing: Phrasing = "canonical") -> list[QA]:
    """Every single-turn question of the classic types this scene can answer unambiguously, then the new
    kinds: a yes and a no question, one about an absent object, a relation (two shapes or more) and two
    filtered counts. Without `rng` every choice is the first one (deterministic)."""
    n = len(scene.shapes)
    if lang == "en":
        count = (f"There {'is' if n == 1 else 'are'} {NUMBERS_EN[n]} shape{'s' if n > 1 else ''}.", NUMBERS_EN[n])
        digit = (f"The digit is {scene.digit}.", str(scene.digit)) if scene.digit is not None else \
            ("There is no digit.", "no digit")
    else:
        count = (f"有{NUMBERS_ZH[n]}个形状。", NUMBERS_ZH[n])
        digit = (f"数字是{scene.digit}。", str(scene.digit)) if scene.digit is not None else ("图中没有数字。", "没有数字")
    out = [QA("count", lang, ask("count", lang, rng, phrasing), *count, False, phrasing),
           QA("digit", lang, ask("digit", lang, rng, phrasing), *digit, False, phrasing)]
    for s in scene.shapes:
        for kind in KINDS:
            qa = about(kind, s, scene, lang, rng, phrasing)
            if qa is not None:
                out.append(qa)
    out += yesno_questions(scene, lang, rng, phrasing)
    out += [q for q in (absent_question(scene, lang, rng, phrasing), relation_question(scene, lang, rng, phrasing))
            if q is not None]
    out += filtered_counts(scene, lang, rng, phrasing)
    return out


def scene_followups(scene: Scene, lang: str, rng: np.random.Generator,
                    phrasing: Phrasing = "canonical") -> list[QA] | None:
    """A dialogue about one object: a question naming it, then "And what ... is it?" about the same one.

    Canonical: exactly two turns as the world always had them. Seen/unseen: sometimes a third turn, about
    the same object ("it") or, in a two-shape scene, about "the other one"."""
    pairs = [(i, a, b) for i in range(len(scene.shapes)) for a in KINDS for b in KINDS if a != b]
    for j in rng.permutation(len(pairs)):
        i, k1, k2 = pairs[j]
        s = scene.shapes[i]
        first = about(k1, s, scene, lang, rng if phrasing != "canonical" else None, phrasing)
        if first is None:
            continue
        turns = [first, follow(k2, s, lang, rng, phrasing)]
        if phrasing != "canonical" and rng.random() < 0.5:
            if len(scene.shapes) == 2 and rng.random() < 0.5:
                other = scene.shapes[1 - i]
                turns.append(follow(KINDS[int(rng.integers(len(KINDS)))], other, lang, rng, phrasing, other=True))
            else:
                rest = [k for k in KINDS if k not in (k1, k2)]
                turns.append(follow(rest[int(rng.integers(len(rest)))], s, lang, rng, phrasing))
        return turns
    return None


def sound_questions(sound: Sound, lang: str, rng: np.random.Generator | None = None,
                    phrasing: Phrasing = "canonical") -> list[QA]:
    """The sound's kind, and its pitch, number of beeps or sweep direction where it has one."""
    out: list[QA] = []
    en = lang == "en"

    def q(kind: str, a: str, key: str) -> QA:
        return QA(kind, lang, ask(kind, lang, rng, phrasing), a, key, False, phrasing)

    kind_en = {"tone": "a steady tone", "beeps": "a series of beeps", "sweep": "a sweep", "noise": "noise"}
    kind_zh = {"tone": "持续的音调", "beeps": "哔声", "sweep": "扫频音", "noise": "噪声"}
    if en:
        out.append(q("kind", f"It is {kind_en[sound.kind]}.", kind_en[sound.kind]))
    else:
        out.append(q("kind", f"这是{kind_zh[sound.kind]}。", kind_zh[sound.kind]))
    if sound.pitch is not None:
        if en:
            out.append(q("pitch", f"The pitch is {sound.pitch}.", sound.pitch))
        else:
            zh = PITCHES[sound.pitch][0]
            out.append(q("pitch", f"音调是{zh}。", zh))
    if sound.beeps is not None:
        if en:
            out.append(q("beeps", f"There {'is' if sound.beeps == 1 else 'are'} {NUMBERS_EN[sound.beeps]} beep{'s' if sound.beeps > 1 else ''}.",
                          NUMBERS_EN[sound.beeps]))
        else:
            zh = NUMBERS_ZH[sound.beeps]
            out.append(q("beeps", f"有{zh}声。", zh))
    if sound.direction is not None:
        if en:
            out.append(q("sweep", f"It is {sound.direction}.", sound.direction))
        else:
            zh = DIRECTIONS[sound.direction]
            out.append(q("sweep", f"是{zh}的。", zh))
    return out
