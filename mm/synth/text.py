"""Bilingual captions and question-answer pairs with known answers for scenes and sounds.

Every QA carries its question type and `key`: the answer word a correct response must contain
(`mm.evaluate` scores with it). Follow-up questions ("And what colour is it?") refer to the object of
the previous turn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mm.synth.scene import Scene, Shape
from mm.synth.sound import Sound
from mm.synth.vocab import COLOURS, DIRECTIONS, NUMBERS_EN, NUMBERS_ZH, PITCHES, POSITIONS, SHAPES, SIZES

_SIZE_EN = {"small": "small", "large": "large"}


@dataclass
class QA:
    type: str  # one of vocab.QUESTION_TYPES
    lang: str  # "en" or "zh"
    q: str
    a: str
    key: str  # the answer word (in `lang`)
    followup: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


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


def _ref_en(s: Shape, scene: Scene) -> str | None:
    """Shortest unambiguous English reference to `s`."""
    if scene.unique(shape=s.shape) is s:
        return f"the {s.shape}"
    if scene.unique(colour=s.colour) is s:
        return f"the {s.colour} object"
    if scene.unique(colour=s.colour, shape=s.shape) is s:
        return f"the {s.colour} {s.shape}"
    return None


def _ref_zh(s: Shape, scene: Scene) -> str | None:
    if scene.unique(shape=s.shape) is s:
        return SHAPES[s.shape]
    if scene.unique(colour=s.colour) is s:
        return f"{COLOURS[s.colour][0]}的物体"
    if scene.unique(colour=s.colour, shape=s.shape) is s:
        return f"{COLOURS[s.colour][0]}{SHAPES[s.shape]}"
    return None


def _about_shape(kind: str, s: Shape, scene: Scene, lang: str, followup: bool) -> QA | None:
    """One question of `kind` about shape `s`; as a follow-up it says "it" instead of naming `s`."""
    ref = ("it" if lang == "en" else "它") if followup else (_ref_en(s, scene) if lang == "en" else _ref_zh(s, scene))
    if ref is None:
        return None
    if lang == "en":
        lead = "And " if followup else ""

        def ask(text: str) -> str:
            text = lead + text
            return text[0].upper() + text[1:]

        if kind == "colour":
            if not followup and s.colour in ref:
                return None
            return QA(kind, lang, ask(f"what colour is {ref}?"), f"It is {s.colour}.", s.colour, followup)
        if kind == "shape":
            if not followup and s.shape in ref:
                return None
            return QA(kind, lang, ask(f"what shape is {ref}?"), f"It is a {s.shape}.", s.shape, followup)
        if kind == "position":
            return QA(kind, lang, ask(f"where is {ref}?"), f"It is at the {s.position}.", s.position, followup)
        if kind == "size":
            return QA(kind, lang, ask(f"is {ref} large or small?"), f"It is {s.size}.", s.size, followup)
    else:
        pre = "那" if followup else ""
        if kind == "colour":
            if not followup and COLOURS[s.colour][0] in ref:
                return None
            return QA(kind, lang, f"{pre}{ref}是什么颜色？", f"{COLOURS[s.colour][0]}。", COLOURS[s.colour][0], followup)
        if kind == "shape":
            if not followup and SHAPES[s.shape] in ref:
                return None
            return QA(kind, lang, f"{pre}{ref}是什么形状？", f"是{SHAPES[s.shape]}。", SHAPES[s.shape], followup)
        if kind == "position":
            return QA(kind, lang, f"{pre}{ref}在哪里？", f"在{POSITIONS[s.position]}。", POSITIONS[s.position], followup)
        if kind == "size":
            return QA(kind, lang, f"{pre}{ref}是大的还是小的？", f"是{SIZES[s.size]}的。", SIZES[s.size], followup)
    return None


def scene_questions(scene: Scene, lang: str) -> list[QA]:
    """Every single-turn question this scene can answer unambiguously."""
    out: list[QA] = []
    n = len(scene.shapes)
    if lang == "en":
        out.append(QA("count", lang, "How many shapes are there?",
                      f"There {'is' if n == 1 else 'are'} {NUMBERS_EN[n]} shape{'s' if n > 1 else ''}.", NUMBERS_EN[n]))
        if scene.digit is not None:
            out.append(QA("digit", lang, "What digit is shown?", f"The digit is {scene.digit}.", str(scene.digit)))
        else:
            out.append(QA("digit", lang, "What digit is shown?", "There is no digit.", "no digit"))
    else:
        out.append(QA("count", lang, "图中有几个形状？", f"有{NUMBERS_ZH[n]}个形状。", NUMBERS_ZH[n]))
        if scene.digit is not None:
            out.append(QA("digit", lang, "图中的数字是几？", f"数字是{scene.digit}。", str(scene.digit)))
        else:
            out.append(QA("digit", lang, "图中的数字是几？", "图中没有数字。", "没有数字"))
    for s in scene.shapes:
        for kind in ("colour", "shape", "position", "size"):
            qa = _about_shape(kind, s, scene, lang, followup=False)
            if qa is not None:
                out.append(qa)
    return out


def scene_followups(scene: Scene, lang: str, rng: np.random.Generator) -> list[QA] | None:
    """A two-turn dialogue: a question naming an object, then "And what ... is it?" about the same one."""
    kinds = ["colour", "shape", "position", "size"]
    pairs = [(i, a, b) for i in range(len(scene.shapes)) for a in kinds for b in kinds if a != b]
    for j in rng.permutation(len(pairs)):
        i, k1, k2 = pairs[j]
        s = scene.shapes[i]
        first = _about_shape(k1, s, scene, lang, followup=False)
        second = _about_shape(k2, s, scene, lang, followup=True)
        if first is not None and second is not None:
            return [first, second]
    return None


def sound_questions(sound: Sound, lang: str) -> list[QA]:
    out: list[QA] = []
    en = lang == "en"
    kind_en = {"tone": "a steady tone", "beeps": "a series of beeps", "sweep": "a sweep", "noise": "noise"}
    kind_zh = {"tone": "持续的音调", "beeps": "哔声", "sweep": "扫频音", "noise": "噪声"}
    if en:
        out.append(QA("kind", lang, "What kind of sound is this?", f"It is {kind_en[sound.kind]}.", kind_en[sound.kind]))
    else:
        out.append(QA("kind", lang, "这是什么声音？", f"这是{kind_zh[sound.kind]}。", kind_zh[sound.kind]))
    if sound.pitch is not None:
        if en:
            out.append(QA("pitch", lang, "Is the pitch low, medium or high?", f"The pitch is {sound.pitch}.", sound.pitch))
        else:
            zh = PITCHES[sound.pitch][0]
            out.append(QA("pitch", lang, "音调是低、中还是高？", f"音调是{zh}。", zh))
    if sound.beeps is not None:
        if en:
            out.append(QA("beeps", lang, "How many beeps are there?",
                          f"There {'is' if sound.beeps == 1 else 'are'} {NUMBERS_EN[sound.beeps]} beep{'s' if sound.beeps > 1 else ''}.",
                          NUMBERS_EN[sound.beeps]))
        else:
            zh = NUMBERS_ZH[sound.beeps]
            out.append(QA("beeps", lang, "有几声哔声？", f"有{zh}声。", zh))
    if sound.direction is not None:
        if en:
            out.append(QA("sweep", lang, "Is the sweep rising or falling?", f"It is {sound.direction}.", sound.direction))
        else:
            zh = DIRECTIONS[sound.direction]
            out.append(QA("sweep", lang, "扫频音是上升还是下降？", f"是{zh}的。", zh))
    return out
