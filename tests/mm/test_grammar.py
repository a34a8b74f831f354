"""Questions from a grammar: phrasing sets, the canonical text, one answer per type, the new image kinds."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from mm.synth import grammar
from mm.synth.clip_text import COMPARE_PROMPTS, caption_clip, clip_questions, compare_answer
from mm.synth.grammar import HELD_OUT_WORDS, TEMPLATES, ask, expansions
from mm.synth.grammar_image import about, answer, filtered_count, relation_question
from mm.synth.scene import Scene, Shape, sample_scene
from mm.synth.sound import Sound, sample_sound
from mm.synth.text import caption_scene, scene_followups, scene_questions, sound_questions
from mm.synth.video import Clip, sample_clip, variant
from mm.synth.vocab import CLASSIC_TYPES, COLOURS, POSITIONS, QUESTION_TYPES, SHAPES, TYPES_BY_MODALITY

SLOTS = {"en": dict(ref="the circle", it="it", its="its", colour="red", shape="circle", size="large", pos="top left",
                    thing="a star", a="the circle", b="the square", rel="left of", cmp="bigger", things="red shapes"),
         "zh": dict(ref="圆形", it="它", its="它的", colour="红色", shape="圆形", size="大", pos="左上方", thing="星形",
                    a="圆形", b="正方形", rel="左边", cmp="更大", things="红色的形状")}
FAMILIES = {t: [t] for t in QUESTION_TYPES} | {
    "yesno": [f for f in TEMPLATES["en"] if f.startswith("yesno.")],
    "relation": [f for f in TEMPLATES["en"] if f.startswith("relation.")],
    "absent": ["colour", "shape", "position", "size"],
}


def _scenes(n: int, seed: int = 0) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, classic=i % 2 == 0) for i in range(n)]


def _shape(shape: str, colour: str, size: str, position: str, x: float, y: float) -> Shape:
    return Shape(shape, colour, size, position, x=x, y=y)


def _norm(text: str) -> str:
    return text.lower().rstrip("?？.。")


def test_types_by_modality_name_every_question_type_once():
    assert sorted(QUESTION_TYPES) == sorted(t for ts in TYPES_BY_MODALITY.values() for t in ts)
    assert set(CLASSIC_TYPES) < set(QUESTION_TYPES)
    assert {"yesno", "absent", "relation", "filtered_count"} <= set(TYPES_BY_MODALITY["image"])


@pytest.mark.parametrize("qtype", QUESTION_TYPES)
def test_every_type_has_20_english_and_10_chinese_seen_phrasings_and_some_unseen(qtype):
    for lang, least in (("en", 20), ("zh", 10)):
        seen = set().union(*(expansions(f, lang, "seen", **SLOTS[lang]) for f in FAMILIES[qtype]))
        unseen = set().union(*(expansions(f, lang, "unseen", **SLOTS[lang]) for f in FAMILIES[qtype]))
        assert len(seen) >= least, (qtype, lang, len(seen))
        assert len(unseen) >= 2, (qtype, lang, len(unseen))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_seen_and_unseen_templates_never_meet(lang):
    for family in TEMPLATES[lang]:
        for slots in (SLOTS[lang], {k: v + "x" for k, v in SLOTS[lang].items()}):
            seen = {_norm(s) for s in expansions(family, lang, "seen", **slots)}
            unseen = {_norm(s) for s in expansions(family, lang, "unseen", **slots)}
            assert not seen & unseen, (family, seen & unseen)
            assert _norm(ask(family, lang, None, **slots)) in seen  # the canonical question is a seen one


def _held_out_in(text: str, lang: str) -> list[str]:
    if lang == "zh":
        return [w for w in HELD_OUT_WORDS["zh"] if w in text]
    return [w for w in HELD_OUT_WORDS["en"] if re.search(rf"\b{re.escape(w)}\b", text.lower())]


def test_no_unseen_question_is_ever_asked_in_seen_mode():
    """On real scenes, sounds and clips: seen questions never use a held-out word, and no unseen question
    string is among the seen ones generated for the same items."""
    rng = np.random.default_rng(7)
    seen: set[str] = set()
    unseen: set[str] = set()
    for scene in _scenes(30):
        sound, clip = sample_sound(rng), sample_clip(rng)
        for lang in ("en", "zh"):
            for phrasing, bucket in (("seen", seen), ("unseen", unseen)):
                for _ in range(4):
                    qs = scene_questions(scene, lang, rng, phrasing) + sound_questions(sound, lang, rng, phrasing)
                    qs += clip_questions(clip, lang, rng, phrasing) + [compare_answer(clip, clip, None, lang, rng, phrasing)]
                    qs += scene_followups(scene, lang, rng, phrasing) or []
                    assert all(q.phrasing == phrasing for q in qs)
                    bucket.update(q.q for q in qs)
                    if phrasing == "seen":
                        assert not [q.q for q in qs if _held_out_in(q.q, lang)]
    assert len(unseen) > 1000 and not seen & unseen
    assert sum(bool(_held_out_in(q, "en" if q.isascii() else "zh")) for q in unseen) > len(unseen) / 3


def test_canonical_questions_are_todays_text():
    scene = Scene([Shape("circle", "red", "large", "top left"), Shape("square", "red", "small", "centre"),
                   Shape("square", "blue", "large", "bottom right")], digit=4, digit_position="top")
    qs = [(q.type, q.q, q.a) for q in scene_questions(scene, "en") if q.type in CLASSIC_TYPES]
    assert qs == [
        ("count", "How many shapes are there?", "There are three shapes."),
        ("digit", "What digit is shown?", "The digit is 4."),
        ("colour", "What colour is the circle?", "It is red."),
        ("position", "Where is the circle?", "It is at the top left."),
        ("size", "Is the circle large or small?", "It is large."),
        ("position", "Where is the red square?", "It is at the centre."),
        ("size", "Is the red square large or small?", "It is small."),
        ("shape", "What shape is the blue object?", "It is a square."),
        ("position", "Where is the blue object?", "It is at the bottom right."),
        ("size", "Is the blue object large or small?", "It is large."),
    ]
    zh = [(q.type, q.q, q.a) for q in scene_questions(scene, "zh") if q.type in CLASSIC_TYPES]
    assert zh[:3] == [("count", "图中有几个形状？", "有三个形状。"), ("digit", "图中的数字是几？", "数字是4。"),
                      ("colour", "圆形是什么颜色？", "红色。")]
    assert ("shape", "蓝色的物体是什么形状？", "是正方形。") in zh and ("size", "红色正方形是大的还是小的？", "是小的。") in zh
    turns = scene_followups(scene, "en", np.random.default_rng(0))
    assert len(turns) == 2 and turns[1].followup and turns[1].q in {
        "And what colour is it?", "And what shape is it?", "And where is it?", "And is it large or small?"}
    zh_turns = scene_followups(scene, "zh", np.random.default_rng(0))
    assert zh_turns[1].q in {"那它是什么颜色？", "那它是什么形状？", "那它在哪里？", "那它是大的还是小的？"}

    sound = Sound("beeps", pitch="high", beeps=3)
    assert [(q.q, q.a) for q in sound_questions(sound, "en")] == [
        ("What kind of sound is this?", "It is a series of beeps."), ("Is the pitch low, medium or high?", "The pitch is high."),
        ("How many beeps are there?", "There are three beeps.")]
    assert [q.q for q in sound_questions(Sound("sweep", direction="rising"), "zh")] == ["这是什么声音？", "扫频音是上升还是下降？"]
    assert [q.q for q in sound_questions(sound, "zh")] == ["这是什么声音？", "音调是低、中还是高？", "有几声哔声？"]

    clip = Clip("circle", "red", "left", "fast", "low", "start")
    assert [(q.q, q.a) for q in clip_questions(clip, "en")] == [
        ("Which way does the circle move?", "It moves to the left."), ("Does the circle move fast or slow?", "It moves quickly."),
        ("What is moving?", "A red circle."), ("Is the beep low, medium or high?", "The beep is low."),
        ("When does the beep sound?", "It sounds at the start.")]
    assert [q.q for q in clip_questions(clip, "zh")] == [
        "圆形往哪个方向移动？", "圆形移动得快还是慢？", "什么在移动？", "哔声的音调是低、中还是高？", "哔声在什么时候响起？"]
    same = compare_answer(clip, clip, None, "en")
    assert (same.q, same.a, same.key) == (COMPARE_PROMPTS["en"], "The two clips are the same.", "same")
    assert compare_answer(clip, clip, None, "zh").q == "这两个片段有什么不同？"
    assert caption_clip(clip, "en") == "A red circle moves quickly to the left. A low beep sounds at the start."


def test_every_phrasing_of_a_question_has_the_same_answer():
    rng = np.random.default_rng(3)
    for scene in _scenes(20):
        for lang in ("en", "zh"):
            for s in scene.shapes:
                for kind in ("colour", "shape", "position", "size"):
                    got = {about(kind, s, scene, lang, rng, p).a for p in ("seen", "unseen") for _ in range(3)
                           if about(kind, s, scene, lang, rng, p) is not None}
                    assert got <= {answer(kind, s, lang)[0]}
    sound, clip = sample_sound(rng), sample_clip(rng)
    for lang in ("en", "zh"):
        for make, item in ((sound_questions, sound), (clip_questions, clip)):
            answers = {tuple(q.a for q in make(item, lang, rng, p)) for p in ("canonical", "seen", "unseen") for _ in range(5)}
            assert len(answers) == 1


ANSWER_FORMS = {
    "en": {"yesno": r"(Yes|No), (it is|there is) .+\.", "absent": r"There is no [a-z ]+\.",
           "relation": r"(Yes|No), it is (left of|right of|above|below) the [a-z]+ [a-z]+\.|It is the [a-z]+ [a-z]+\.",
           "filtered_count": r"There (is one|are (two|three|no)) [a-z ]+\."},
    "zh": {"yesno": r"(是的|不是)，(它|图中).+。", "absent": r"图中没有.+。", "relation": r"(是的|不是)，它在.+的[左右上下]边?面?。|是.+。",
           "filtered_count": r"(有[一两三]个|没有).+。"},
}


def test_new_kinds_have_one_answer_form_and_yes_no_is_balanced():
    rng = np.random.default_rng(5)
    keys: Counter = Counter()
    for scene in _scenes(200):
        for lang in ("en", "zh"):
            for q in scene_questions(scene, lang, rng, "seen"):
                if q.type in ANSWER_FORMS[lang]:
                    assert re.fullmatch(ANSWER_FORMS[lang][q.type], q.a), (q.type, q.q, q.a)
                if q.type == "yesno":
                    keys[q.key] += 1
                    assert q.a.startswith({"yes": "Yes,", "no": "No,", "是": "是的，", "不是": "不是，"}[q.key])
                    m = re.fullmatch(r"(Yes|No), there is (?:a|no) (?:([a-z]+) )?([a-z]+)\.", q.a)
                    if m:  # existence: the answer agrees with the scene
                        colour, noun = m.group(2), m.group(3)
                        present = any((colour is None or s.colour == colour) and (noun == "shape" or s.shape == noun)
                                      for s in scene.shapes)
                        assert present == (m.group(1) == "Yes"), (q.q, q.a, scene.shapes)
    assert keys["yes"] == keys["no"] == 200 and keys["是"] == keys["不是"] == 200
    # Balanced across sub-kinds too: every yes/no family is asked.
    asked = Counter()
    for scene in _scenes(100, seed=1):
        for q in scene_questions(scene, "en", rng, "canonical"):
            if q.type == "yesno":
                asked[re.sub(r"(the|a) [a-z ]+", "X", q.q).split()[0]] += 1
    assert asked["Is"] > 50


def test_absent_questions_ask_only_about_what_is_not_there():
    rng = np.random.default_rng(2)
    n = 0
    for scene in _scenes(150):
        for lang in ("en", "zh"):
            for q in scene_questions(scene, lang, rng, "seen"):
                if q.type != "absent":
                    continue
                n += 1
                if lang == "en":
                    name = q.key.removeprefix("no ")
                    if name in SHAPES:
                        assert all(s.shape != name for s in scene.shapes) and name in q.q.lower()
                    else:
                        colour = name.removesuffix(" object")
                        assert all(s.colour != colour for s in scene.shapes) and colour in q.q.lower()
                else:
                    name = q.key.removeprefix("没有")
                    shapes = {v: k for k, v in SHAPES.items()}
                    colours = {v[0]: k for k, v in COLOURS.items()}
                    if name in shapes:
                        assert all(s.shape != shapes[name] for s in scene.shapes)
                    else:
                        assert all(s.colour != colours[name.removesuffix("的物体")] for s in scene.shapes)
    assert n == 300


def _relation_truth(scene: Scene, q: str) -> str | None:
    """The right answer to a canonical English relation question, computed from the coordinates."""
    by = {f"the {s.shape}": s for s in scene.shapes}
    m = re.fullmatch(r"Is (the \w+) (left of|right of|above|below) (the \w+)\?", q)
    if m:
        a, rel, b = by[m.group(1)], m.group(2), by[m.group(3)]
        true = {"left of": a.x < b.x, "right of": a.x > b.x, "above": a.y < b.y, "below": a.y > b.y}[rel]
        return "Yes" if true else "No"
    m = re.fullmatch(r"Which shape is (left of|right of|above|below) (the \w+)\?", q)
    if m:
        b = by[m.group(2)]
        test = {"left of": lambda s: s.x < b.x - 0.15, "right of": lambda s: s.x > b.x + 0.15,
                "above": lambda s: s.y < b.y - 0.15, "below": lambda s: s.y > b.y + 0.15}[m.group(1)]
        (hit,) = [s for s in scene.shapes if s is not b and test(s)]
        return f"It is the {hit.colour} {hit.shape}."
    m = re.fullmatch(r"Which is (bigger|smaller), (the \w+) or (the \w+)\?", q)
    a, b = by[m.group(2)], by[m.group(3)]
    big = a if a.size == "large" else b
    win = big if m.group(1) == "bigger" else (b if big is a else a)
    return f"It is the {win.colour} {win.shape}."


def test_relations_are_right_on_constructed_scenes():
    scene = Scene([_shape("circle", "red", "large", "left", 0.15, 0.5), _shape("square", "blue", "small", "top right", 0.8, 0.2),
                   _shape("triangle", "green", "small", "bottom", 0.5, 0.85)])
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        qa = relation_question(scene, "en", rng, "canonical")
        truth = _relation_truth(scene, qa.q)
        assert qa.a.startswith(truth) if truth in ("Yes", "No") else qa.a == truth, (qa.q, qa.a)
        seen.add(qa.q.split()[0] + qa.q.split()[1])
    assert seen == {"Isthe", "Whichshape", "Whichis"}
    # Two shapes level with each other and close in x: nothing to ask about left/right/above/below or size.
    level = Scene([_shape("circle", "red", "large", "left", 0.3, 0.5), _shape("square", "blue", "large", "centre", 0.4, 0.52)])
    assert relation_question(level, "en", rng, "seen") is None
    # Classic scenes carry only a cell: relations read the cell's centre.
    classic = Scene([Shape("circle", "red", "small", "top left"), Shape("star", "red", "small", "bottom left")])
    qa = relation_question(classic, "en", None, "canonical")
    assert (qa.q, qa.a) == ("Is the circle above the star?", "Yes, it is above the red star.")
    zh = relation_question(classic, "zh", None, "canonical")
    assert (zh.q, zh.a) == ("圆形在星形的上面吗？", "是的，它在红色星形的上面。")


def test_filtered_counts_including_zero():
    scene = Scene([Shape("circle", "red", "large", "top left"), Shape("square", "red", "small", "centre"),
                   Shape("circle", "blue", "large", "bottom")])
    cases = {("red", None): ("How many red shapes are there?", "There are two red shapes.", "two"),
             ("green", None): ("How many green shapes are there?", "There are no green shapes.", "no"),
             (None, "circle"): ("How many circles are there?", "There are two circles.", "two"),
             (None, "square"): ("How many squares are there?", "There is one square.", "one"),
             ("blue", "circle"): ("How many blue circles are there?", "There is one blue circle.", "one"),
             (None, "star"): ("How many stars are there?", "There are no stars.", "no")}
    for (colour, shape), want in cases.items():
        qa = filtered_count(scene, "en", colour, shape, None, "canonical")
        assert (qa.q, qa.a, qa.key) == want
    zh = filtered_count(scene, "zh", "red", None, None, "canonical")
    assert (zh.q, zh.a, zh.key) == ("图中有几个红色的形状？", "有两个红色的形状。", "两")
    assert filtered_count(scene, "zh", None, "star", None, "canonical").a == "没有星形。"
    zeros = sum(q.key in ("no", "没有") for sc in _scenes(150) for lang in ("en", "zh")
                for q in scene_questions(sc, lang, np.random.default_rng(len(sc.shapes)), "seen") if q.type == "filtered_count")
    assert 50 < zeros < 250


def test_follow_ups_refer_to_it_or_to_the_other_one():
    a, b = Shape("circle", "red", "large", "top left"), Shape("square", "blue", "small", "bottom right")
    scene = Scene([a, b])
    owner = {answer(k, s, lang)[0]: s for s in (a, b) for k in ("colour", "shape", "position", "size") for lang in ("en", "zh")}
    lengths, others = Counter(), 0
    for seed in range(200):
        for lang in ("en", "zh"):
            turns = scene_followups(scene, lang, np.random.default_rng(seed), "seen")
            lengths[len(turns)] += 1
            assert not turns[0].followup and all(t.followup for t in turns[1:])
            first = owner[turns[0].a]
            for t in turns[1:]:
                other = ("other one" in t.q) if lang == "en" else ("另一个" in t.q)
                others += other
                assert owner[t.a] is ((b if first is a else a) if other else first), [x.q for x in turns]
                assert other or re.search(r"\b(it|its)\b", t.q.lower()) or "它" in t.q
    assert set(lengths) == {2, 3} and others > 20
    one = Scene([a])
    for seed in range(50):
        assert all("other" not in t.q and "另一个" not in t.q for t in scene_followups(one, "en", np.random.default_rng(seed), "seen"))


def _caption_objects(text: str) -> list[tuple[str, str, str, str]]:
    pos = "|".join(sorted(POSITIONS, key=len, reverse=True))
    return re.findall(rf"a (small|large) (\w+) (\w+) at the ({pos})(?=,| and|\.)", text)


def test_captions_name_exactly_what_is_there():
    for scene in _scenes(60):
        en = caption_scene(scene, "en")
        assert sorted(_caption_objects(en[0].lower() + en[1:])) == sorted((s.size, s.colour, s.shape, s.position)
                                                                          for s in scene.shapes)
        assert ("The digit" in en) == (scene.digit is not None)
        zh = caption_scene(scene, "zh")
        assert zh.count("有一个") == len(scene.shapes) and ("图中有数字" in zh) == (scene.digit is not None)
    assert caption_scene(Scene([Shape("circle", "red", "large", "centre")]), "en") == "A large red circle at the centre."


def test_typos_never_touch_the_words_that_carry_the_question(monkeypatch):
    for seed in range(300):
        family = list(TEMPLATES["en"])[seed % len(TEMPLATES["en"])]
        monkeypatch.setattr(grammar, "P_TYPO", 0.0)
        clean = ask(family, "en", np.random.default_rng(seed), "seen", **SLOTS["en"])
        monkeypatch.setattr(grammar, "P_TYPO", 1.0)
        typo = ask(family, "en", np.random.default_rng(seed), "seen", **SLOTS["en"])
        a, b = clean.split(), typo.split()
        assert len(a) == len(b)
        changed = [(x, y) for x, y in zip(a, b) if x != y]
        assert len(changed) <= 1
        for x, _ in changed:
            assert re.sub(r"\W", "", x).lower() not in grammar.PROTECTED
        for value in ("the circle", "the square", "red", "left of", "a star", "red shapes", "bigger"):
            assert (value in clean.lower()) == (value in typo.lower())


def test_same_seed_same_questions():
    scene, sound, clip = _scenes(1)[0], sample_sound(np.random.default_rng(1)), sample_clip(np.random.default_rng(1))
    b = variant(clip, "speed", np.random.default_rng(2))

    def run(seed: int) -> list:
        rng = np.random.default_rng(seed)
        out = []
        for phrasing in ("canonical", "seen", "unseen"):
            for lang in ("en", "zh"):
                out += scene_questions(scene, lang, rng, phrasing) + sound_questions(sound, lang, rng, phrasing)
                out += clip_questions(clip, lang, rng, phrasing) + (scene_followups(scene, lang, rng, phrasing) or [])
                out.append(compare_answer(clip, b, "speed", lang, rng, phrasing))
        return [q.to_dict() for q in out]

    assert run(4) == run(4) and run(4) != run(5)
    assert scene_questions(scene, "en") == scene_questions(scene, "en")
    with pytest.raises(ValueError, match="needs an rng"):
        scene_questions(scene, "en", None, "seen")
    with pytest.raises(ValueError, match="unknown phrasing"):
        sound_questions(sound, "en", np.random.default_rng(0), "unheard")
