"""Image questions from the grammar: references to shapes, follow-ups, yes/no, absent objects, relations
and filtered counts. Every question of a type has one answer form (the canonical one); only the question
varies. Relations read each shape's centre (`Shape.x`, `Shape.y`) and are asked only with a clear margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from mm.synth.grammar import QA, Phrasing, ask
from mm.synth.scene import Scene, Shape
from mm.synth.vocab import COLOURS, NUMBERS_EN, NUMBERS_ZH, POSITIONS, SHAPES, SIZES

KINDS = ("colour", "shape", "position", "size")
MARGIN = 0.15  # relations: centres at least this far apart (fraction of the picture) along the axis asked
LEVEL = 0.05  # ... and "which is above X" only when every other shape is within this of level or beyond
T = TypeVar("T")
_CANONICAL_GIVES = (frozenset({"shape"}), frozenset({"colour"}), frozenset({"colour", "shape"}))

# Spelling variants of slot values (a `!` alternative is held out of the seen phrasing).
_POS_EN = {p: p.replace(" ", "[ |-]") for p in POSITIONS} | {"centre": "[centre|center|!middle]"}
_SIZE_EN = {"large": "[large|big]", "small": "small"}
_NOUN_EN = "[object|shape|thing|figure|!item]"
_NOUN_ZH = "[物体|图形|形状|东西]"
REL_EN = {"left": "[left of|to the left of|on the left of|!further left than]",
          "right": "[right of|to the right of|on the right of|!further right than]",
          "above": "[above|over|higher than|!further up than]",
          "below": "[below|under|beneath|lower than|!further down than]"}
REL_ZH = {"left": "[左边|左侧|左面|!左手边]", "right": "[右边|右侧|右面|!右手边]",
          "above": "[上面|上方|上边|!上头]", "below": "[下面|下方|下边|!底下]"}
_REL_CANON = {"en": {"left": "left of", "right": "right of", "above": "above", "below": "below"},
              "zh": {"left": "左边", "right": "右边", "above": "上面", "below": "下面"}}
_OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}
_CMP = {"en": {"bigger": "[bigger|larger|!greater]", "smaller": "[smaller|!tinier]"},
        "zh": {"bigger": "[更大|大一些|比较大]", "smaller": "[更小|小一些|比较小]"}}


def pick(items: Sequence[T], rng: np.random.Generator | None) -> T:
    """A random item, or the first without an rng (the deterministic canonical world)."""
    return items[0] if rng is None else items[int(rng.integers(len(items)))]


def centre(s: Shape) -> tuple[float, float]:
    """(x, y) as fractions of the picture; the grid cell's centre when x/y do not lie in `s.position`
    (scenes built by hand, or classic scenes whose shapes carry only a cell)."""
    x, y = getattr(s, "x", None), getattr(s, "y", None)
    names = list(POSITIONS)
    if x is not None and y is not None and 0 <= x < 1 and 0 <= y < 1:
        if names[min(int(y * 3), 2) * 3 + min(int(x * 3), 2)] == s.position:
            return float(x), float(y)
    row, col = divmod(names.index(s.position), 3)
    return (col + 0.5) / 3, (row + 0.5) / 3


def _zh(s: Shape) -> tuple[str, str]:
    return COLOURS[s.colour][0], SHAPES[s.shape]


def refs(s: Shape, scene: Scene, lang: str) -> list[tuple[str, frozenset[str]]]:
    """Unambiguous references to `s` as templates, each with the attributes it gives away. The first three
    are the canonical ones, in the canonical order (shape, colour, colour and shape)."""
    c, sh = _zh(s)
    out: list[tuple[str, frozenset[str]]] = []

    def add(ok: bool, en: str, zh: str, *gives: str) -> None:
        if ok:
            out.append((en if lang == "en" else zh, frozenset(gives)))

    add(scene.unique(shape=s.shape) is s, f"the {s.shape}", sh, "shape")
    add(scene.unique(colour=s.colour) is s, f"the {s.colour} {_NOUN_EN}", f"{c}的{_NOUN_ZH}", "colour")
    add(scene.unique(colour=s.colour, shape=s.shape) is s, f"the {s.colour} {s.shape}", f"{c}{sh}", "colour", "shape")
    add(scene.unique(size=s.size, shape=s.shape) is s, f"the {_SIZE_EN[s.size]} {s.shape}", f"{SIZES[s.size]}的{sh}",
        "size", "shape")
    add(scene.unique(position=s.position) is s, f"the {_NOUN_EN} [at|in] the {_POS_EN[s.position]}",
        f"{POSITIONS[s.position]}的[物体|图形|形状]", "position")
    add(len(scene.shapes) == 1, f"the {_NOUN_EN}", "[这个|那个|图中的][图形|形状|物体]")
    return out


def canonical_ref(s: Shape, scene: Scene, lang: str) -> tuple[str, frozenset[str]] | None:
    """Today's reference: the shape alone, else the colour alone, else colour and shape (None: none unique)."""
    first = [r for r in refs(s, scene, lang) if r[1] in _CANONICAL_GIVES][:1]
    return first[0] if first else None


def answer(kind: str, s: Shape, lang: str) -> tuple[str, str]:
    """(answer, key) of a question of `kind` about `s`: one form per kind, whatever the phrasing."""
    c, sh = _zh(s)
    if lang == "en":
        return {"colour": (f"It is {s.colour}.", s.colour), "shape": (f"It is a {s.shape}.", s.shape),
                "position": (f"It is at the {s.position}.", s.position), "size": (f"It is {s.size}.", s.size)}[kind]
    p, z = POSITIONS[s.position], SIZES[s.size]
    return {"colour": (f"{c}。", c), "shape": (f"是{sh}。", sh), "position": (f"在{p}。", p),
            "size": (f"是{z}的。", z)}[kind]


def about(kind: str, s: Shape, scene: Scene, lang: str, rng: np.random.Generator | None,
          phrasing: Phrasing) -> QA | None:
    """A question of `kind` about `s` naming it by a reference that does not give the answer away."""
    if phrasing == "canonical":
        ref = canonical_ref(s, scene, lang)
        if ref is None or kind in ref[1]:
            return None
    else:
        ok = [r for r in refs(s, scene, lang) if kind not in r[1]]
        if not ok:
            return None
        ref = pick(ok, rng)
    a, key = answer(kind, s, lang)
    return QA(kind, lang, ask(kind, lang, rng, phrasing, ref=ref[0]), a, key, False, phrasing)


def follow(kind: str, s: Shape, lang: str, rng: np.random.Generator | None, phrasing: Phrasing,
           other: bool = False) -> QA:
    """A follow-up about the previous turn's object ("it") or, in a two-shape scene, "the other one"."""
    it = ("the other one", "the other one's") if other else ("it", "its")
    if lang == "zh":
        it = ("另一个", "另一个的") if other else ("它", "它的")
    a, key = answer(kind, s, lang)
    return QA(kind, lang, ask(f"{kind}.followup", lang, rng, phrasing, it=it[0], its=it[1]), a, key, True, phrasing)


# --- yes/no ------------------------------------------------------------------------------------------


def _yesno_candidates(scene: Scene, lang: str, rng: np.random.Generator | None, yes: bool) -> list[tuple]:
    """(family, slots, answer) for yes/no questions with answer `yes`."""
    en = lang == "en"
    out: list[tuple] = []
    for s in scene.shapes:
        c, sh = _zh(s)
        for kind, family in (("colour", "yesno.colour"), ("shape", "yesno.shape"), ("size", "yesno.size"),
                             ("position", "yesno.position")):
            rs = [r for r in refs(s, scene, lang) if kind not in r[1]]
            if not rs:
                continue
            ref = rs[0][0] if rng is None else pick(rs, rng)[0]
            values = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES), "position": list(POSITIONS)}[kind]
            true = getattr(s, kind)
            asked = true if yes else pick([v for v in values if v != true], rng)
            slot = {"colour": lambda v: v if en else COLOURS[v][0], "shape": lambda v: v if en else SHAPES[v],
                    "size": lambda v: _SIZE_EN[v] if en else SIZES[v],
                    "position": lambda v: _POS_EN[v] if en else POSITIONS[v]}[kind]
            name = {"colour": "colour", "shape": "shape", "size": "size", "position": "pos"}[kind]
            if en:
                said = {"colour": true, "shape": f"a {true}", "size": true, "position": f"at the {true}"}[kind]
                text = f"{'Yes' if yes else 'No'}, it is {said}."
            else:
                said = {"colour": f"是{c}的", "shape": f"是{sh}", "size": f"是{SIZES[s.size]}的",
                        "position": f"在{POSITIONS[s.position]}"}[kind]
                text = f"{'是的' if yes else '不是'}，它{said}。"
            out.append((family, {"ref": ref, name: slot(asked)}, text))
    # Existence: a shape, a colour and shape, or a colour; present for yes, absent for no.
    things = [(sh, None) for sh in SHAPES] + [(None, c) for c in COLOURS] + [(sh, c) for c in COLOURS for sh in SHAPES]
    for sh, c in things:
        present = any((sh is None or s.shape == sh) and (c is None or s.colour == c) for s in scene.shapes)
        if present != yes:
            continue
        if en:
            canon = f"{c + ' ' if c else ''}{sh or 'shape'}"
            slot = f"a {c + ' ' if c else ''}{sh or '[shape|object|thing|figure]'}"
            text = f"Yes, there is a {canon}." if yes else f"No, there is no {canon}."
        else:
            cz, sz = COLOURS[c][0] if c else "", SHAPES[sh] if sh else ""
            canon = f"{cz}{sz}" if sh else f"{cz}的形状"
            slot = f"{cz}{sz}" if sh else f"{cz}的[形状|图形|物体]"
            text = f"是的，图中有{canon}。" if yes else f"不是，图中没有{canon}。"
        out.append(("yesno.exists", {"thing": slot}, text))
    return out


def yesno_questions(scene: Scene, lang: str, rng: np.random.Generator | None, phrasing: Phrasing) -> list[QA]:
    """One question answered yes and one answered no: balanced by construction."""
    out = []
    for yes in (True, False):
        cands = _yesno_candidates(scene, lang, rng, yes)
        families = sorted({c[0] for c in cands}, key=[c[0] for c in cands].index)
        family = pick(families, rng)
        _, slots, text = pick([c for c in cands if c[0] == family], rng)
        key = ("yes" if yes else "no") if lang == "en" else ("是" if yes else "不是")
        out.append(QA("yesno", lang, ask(family, lang, rng, phrasing, **slots), text, key, False, phrasing))
    return out


# --- absent objects ------------------------------------------------------------------------------------


def absent_question(scene: Scene, lang: str, rng: np.random.Generator | None, phrasing: Phrasing) -> QA | None:
    """A colour/shape/position/size question about a shape or colour that is not in the picture."""
    en = lang == "en"
    cands = []
    for sh in SHAPES:
        if all(s.shape != sh for s in scene.shapes):
            ref, canon = (f"the {sh}", sh) if en else (SHAPES[sh], SHAPES[sh])
            cands += [(kind, ref, canon) for kind in ("colour", "position", "size")]
    for c in COLOURS:
        if all(s.colour != c for s in scene.shapes):
            ref, canon = (f"the {c} {_NOUN_EN}", f"{c} object") if en else (f"{COLOURS[c][0]}的{_NOUN_ZH}",
                                                                            f"{COLOURS[c][0]}的物体")
            cands += [(kind, ref, canon) for kind in ("shape", "position", "size")]
    if not cands:
        return None
    kind, ref, canon = pick(cands, rng)
    text, key = (f"There is no {canon}.", f"no {canon}") if en else (f"图中没有{canon}。", f"没有{canon}")
    return QA("absent", lang, ask(kind, lang, rng, phrasing, ref=ref), text, key, False, phrasing)


# --- relations --------------------------------------------------------------------------------------------


def _holds(rel: str, a: Shape, b: Shape) -> float:
    """How far `a` is `rel` of `b` (positive: it is; negative: the opposite)."""
    (ax, ay), (bx, by) = centre(a), centre(b)
    return {"left": bx - ax, "right": ax - bx, "above": by - ay, "below": ay - by}[rel]


def _name(s: Shape, lang: str) -> tuple[str, str]:
    """(answer, key) naming `s` in answers to "which" questions."""
    c, sh = _zh(s)
    return (f"It is the {s.colour} {s.shape}.", f"{s.colour} {s.shape}") if lang == "en" else (f"是{c}{sh}。", f"{c}{sh}")


def relation_question(scene: Scene, lang: str, rng: np.random.Generator | None, phrasing: Phrasing) -> QA | None:
    """"Is A left of B?", "Which shape is above B?" or "Which is bigger, A or B?", asked only when the
    answer is clear (centres at least MARGIN apart; sizes of different classes)."""
    en = lang == "en"
    rel_slot = REL_EN if en else REL_ZH

    def ref(s: Shape) -> str | None:
        rs = [r for r in refs(s, scene, lang) if "position" not in r[1] and r[1]]
        return None if not rs else (rs[0][0] if rng is None or phrasing == "canonical" else pick(rs, rng)[0])

    def canon(s: Shape) -> str:
        """Answers name the other shape one way only: by colour and shape."""
        return f"the {s.colour} {s.shape}" if en else "".join(_zh(s))

    cands: list[tuple[str, dict[str, str], str, str]] = []
    shapes = scene.shapes
    for a in shapes:
        for b in shapes:
            if a is b or ref(a) is None or ref(b) is None:
                continue
            for rel in ("left", "above"):
                d = _holds(rel, a, b)
                if abs(d) < MARGIN:
                    continue
                true = rel if d > 0 else _OPPOSITE[rel]
                for asked in (rel, _OPPOSITE[rel]):
                    yes = asked == true
                    where = _REL_CANON[lang][true]
                    b_name = canon(b)
                    if en:
                        text = f"{'Yes' if yes else 'No'}, it is {where} {b_name}."
                        key = "yes" if yes else "no"
                    else:
                        text = f"{'是的' if yes else '不是'}，它在{b_name}的{where}。"
                        key = "是" if yes else "不是"
                    cands.append(("relation.yesno", {"a": ref(a), "b": ref(b), "rel": rel_slot[asked]}, text, key))
            if a.size != b.size:
                for cmp in ("bigger", "smaller"):
                    winner = a if (a.size == "large") == (cmp == "bigger") else b
                    cands.append(("relation.bigger", {"a": ref(a), "b": ref(b), "cmp": _CMP[lang][cmp]}, *_name(winner, lang)))
        for rel in ("left", "right", "above", "below"):
            if ref(a) is None:
                continue
            d = [(s, _holds(rel, s, a)) for s in shapes if s is not a]
            hits = [s for s, v in d if v >= MARGIN]
            if len(hits) == 1 and all(v <= LEVEL for s, v in d if s is not hits[0]):
                cands.append(("relation.which", {"b": ref(a), "rel": rel_slot[rel]}, *_name(hits[0], lang)))
    if not cands:
        return None
    families = sorted({c[0] for c in cands}, key=[c[0] for c in cands].index)
    family = pick(families, rng)
    _, slots, text, key = pick([c for c in cands if c[0] == family], rng)
    return QA("relation", lang, ask(family, lang, rng, phrasing, **slots), text, key, False, phrasing)


# --- filtered counts -------------------------------------------------------------------------------------


def filtered_count(scene: Scene, lang: str, colour: str | None, shape: str | None, rng: np.random.Generator | None,
                   phrasing: Phrasing) -> QA:
    """"How many red shapes / circles / red circles are there?", zero included."""
    n = sum((colour is None or s.colour == colour) and (shape is None or s.shape == shape) for s in scene.shapes)
    if lang == "en":
        noun = shape or "shape"
        one = f"{colour + ' ' if colour else ''}{noun}"
        many = one + "s"
        slot = f"{colour} [shapes|objects|figures|things]" if shape is None else f"{colour + ' ' if colour else ''}{shape}s"
        if n == 0:
            text, key = f"There are no {many}.", "no"
        else:
            text, key = (f"There is one {one}." if n == 1 else f"There are {NUMBERS_EN[n]} {many}."), NUMBERS_EN[n]
    else:
        cz = COLOURS[colour][0] if colour else ""
        thing = f"{cz}{SHAPES[shape]}" if shape else f"{cz}的形状"
        slot = f"{cz}{SHAPES[shape]}" if shape else f"{cz}的[形状|图形|物体]"
        text, key = (f"没有{thing}。", "没有") if n == 0 else (f"有{NUMBERS_ZH[n]}个{thing}。", NUMBERS_ZH[n])
    return QA("filtered_count", lang, ask("filtered_count", lang, rng, phrasing, things=slot), text, key, False, phrasing)


def filtered_counts(scene: Scene, lang: str, rng: np.random.Generator | None, phrasing: Phrasing) -> list[QA]:
    """Two filtered counts: one that matches something, one that matches nothing a third of the time."""
    filters = [(c, None) for c in COLOURS] + [(None, sh) for sh in SHAPES] + [(c, sh) for c in COLOURS for sh in SHAPES]

    def count(f: tuple[str | None, str | None]) -> int:
        return sum((f[0] is None or s.colour == f[0]) and (f[1] is None or s.shape == f[1]) for s in scene.shapes)

    present = [f for f in filters if count(f) > 0]
    absent = [f for f in filters if count(f) == 0]
    first = pick(present, rng)
    second = pick(absent, rng) if rng is None or rng.random() < 1 / 3 else pick(present, rng)
    return [filtered_count(scene, lang, *f, rng, phrasing) for f in (first, second)]
