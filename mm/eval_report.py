"""Scoring and reporting for `mm eval`: accuracy tables, absent-object rate, caption objects, confusion.

Rows are the questions asked (see `mm.evaluate`), each a dict with at least: split, modality, type,
lang, followup, phrasing, question, reference, key, answer, correct. A summary is computed per split;
`format_report` puts the splits side by side as columns.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from mm.synth.vocab import COLOURS, POSITIONS, SHAPES, SIZES, TYPES_BY_MODALITY

LANGS = ("en", "zh")
_PUNCT = " \t\n.。!！?？,，"
NONE_KEY = "(none)"  # the answer names no key of its type's vocabulary
SPLIT_LABELS = {"seen": "seen", "unseen-phrasing": "unseen phrasing", "unseen-rendering": "unseen rendering"}


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip(_PUNCT).lower())


def _share(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _gap(acc: dict[str, float | None]) -> float | None:
    """Chinese minus English, in points (negative: Chinese is behind)."""
    return None if acc["en"] is None or acc["zh"] is None else 100 * (acc["zh"] - acc["en"])


# Absent objects ---------------------------------------------------------------------------------------

_NEGATION = {"en": re.compile(r"\b(no|none|not|isn't|aren't|nothing|there's no)\b"),
             "zh": re.compile(r"没有|不存在|无")}


def says_absent(answer: str, lang: str) -> bool:
    """Does the answer say the object asked about is not there ("There is no star." / "图中没有星形。")?"""
    return _NEGATION[lang].search(answer.lower()) is not None


# Captions ---------------------------------------------------------------------------------------------

Obj = tuple[str | None, str | None, str, str | None]  # (size, colour, shape, position)


def _words(lang: str) -> list[tuple[str, str, str]]:
    """(surface form, slot, value) for every vocabulary word, longest first ("top left" before "top")."""
    if lang == "en":
        table = [(s, "size", s) for s in SIZES] + [(c, "colour", c) for c in COLOURS]
        table += [(s, "shape", s) for s in SHAPES] + [(p, "position", p) for p in POSITIONS]
    else:
        table = [(zh, "size", s) for s, zh in SIZES.items()] + [(zh, "colour", c) for c, (zh, _) in COLOURS.items()]
        table += [(zh, "shape", s) for s, zh in SHAPES.items()] + [(zh, "position", p) for p, zh in POSITIONS.items()]
    return sorted(table, key=lambda w: -len(w[0]))


_TOKENS = {lang: (re.compile("|".join(
    (rf"\b{re.escape(w)}\b" if lang == "en" else re.escape(w)) for w, _, _ in _words(lang))),
    {w: (slot, value) for w, slot, value in _words(lang)}) for lang in LANGS}


def caption_objects(text: str, lang: str) -> list[Obj]:
    """The objects a caption names, one per shape word. Size and colour come before the shape in both
    languages; the position after it in English ("a small red circle at the top left") and before it
    in Chinese ("左上方有一个小的红色圆形")."""
    pattern, slots = _TOKENS[lang]
    objects: list[list] = []
    pending: dict[str, str] = {}
    for m in pattern.finditer(text.lower() if lang == "en" else text):
        slot, value = slots[m.group(0)]
        if slot == "shape":
            objects.append([pending.pop("size", None), pending.pop("colour", None), value, pending.pop("position", None)])
        elif slot == "position" and lang == "en" and objects and objects[-1][3] is None:
            objects[-1][3] = value
        else:
            pending[slot] = value
    return [tuple(o) for o in objects]


def score_caption(text: str, meta: dict[str, Any], lang: str) -> dict[str, Any]:
    """Object counts for an image caption: named (objects the caption names), true (objects in the
    scene), matched (named objects equal to a true one in size, colour, shape and position, each true
    object matched at most once), and whether the digit is named when there is one."""
    truth = Counter((s["size"], s["colour"], s["shape"], s["position"]) for s in meta["shapes"])
    named = caption_objects(text, lang)
    matched = sum((Counter(named) & truth).values())
    digit = meta.get("digit")
    return {"named": len(named), "true": sum(truth.values()), "matched": matched,
            "digit": None if digit is None else re.search(rf"(?<!\d){digit}(?!\d)", text) is not None}


# Confusion --------------------------------------------------------------------------------------------

def predicted_key(answer: str, vocabulary: set[str], lang: str) -> str:
    """The key of `vocabulary` the answer names: the longest one found (so "top left" wins over "top"),
    the earliest of equally long ones; NONE_KEY when it names none."""
    text = answer.lower()
    best: tuple[int, int, str] | None = None
    for key in vocabulary:
        pattern = rf"(?<!\w){re.escape(key.lower())}(?!\w)" if lang == "en" else re.escape(key)
        m = re.search(pattern, text)
        if m and (best is None or (-len(key), m.start()) < best[:2]):
            best = (-len(key), m.start(), key)
    return NONE_KEY if best is None else best[2]


def add_predicted_keys(rows: list[dict[str, Any]]) -> None:
    """Set each row's "predicted" key. A type's vocabulary is every reference key of that type and
    language among the rows; a correct answer predicts its own key."""
    vocab: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows:
        vocab[r["type"], r["lang"]].add(r["key"])
    for r in rows:
        r["predicted"] = r["key"] if r["correct"] else predicted_key(r["answer"], vocab[r["type"], r["lang"]], r["lang"])


def confusion(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """type -> reference key -> predicted key -> count, over every row (follow-ups included)."""
    out: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for r in rows:
        out[r["type"]][r["key"]][r["predicted"]] += 1
    return {t: {ref: dict(preds) for ref, preds in sorted(refs.items())} for t, refs in out.items()}


# Summary ----------------------------------------------------------------------------------------------

def _by_lang(rows: list[dict[str, Any]], value: str = "correct") -> dict[str, float | None]:
    acc = {lang: _share([r[value] for r in rows if r["lang"] == lang]) for lang in LANGS}
    acc["all"] = _share([r[value] for r in rows])
    return acc


def summarise(rows: list[dict[str, Any]], captions: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per question type and language, per modality, of follow-ups; the Chinese-English gap;
    the absent-object rate; caption object recall and precision."""
    single = [r for r in rows if not r["followup"]]
    out: dict[str, Any] = {"questions": len(rows)}
    out["by_type"] = {t: _by_lang([r for r in single if r["type"] == t])
                      for types in TYPES_BY_MODALITY.values() for t in types}
    for modality in TYPES_BY_MODALITY:
        out[modality] = _by_lang([r for r in single if r["modality"] == modality])
    out["followup"] = _by_lang([r for r in rows if r["followup"]])
    out["overall"] = _by_lang(single)
    out["zh_minus_en"] = {k: _gap(out[k]) for k in (*TYPES_BY_MODALITY, "followup", "overall")}
    absent = [dict(r, absent=says_absent(r["answer"], r["lang"])) for r in single if r["type"] == "absent"]
    out["absent_rate"] = _by_lang(absent, "absent")
    caps: dict[str, Any] = {}
    for lang in (*LANGS, "all"):
        mine = [c for c in captions if lang in (c["lang"], "all")]
        if not mine:
            continue
        scored = [c for c in mine if c.get("objects")]
        named, true, matched = (sum(c["objects"][k] for c in scored) for k in ("named", "true", "matched"))
        digits = [c["objects"]["digit"] for c in scored if c["objects"]["digit"] is not None]
        caps[lang] = {"object_recall": matched / true if true else None,
                      "object_precision": matched / named if named else None,
                      "digit": _share(digits), "exact": _share([c["exact"] for c in mine]), "count": len(mine)}
    if caps:
        out["captions"] = caps
    return out


# Text -------------------------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "    -" if x is None else f"{100 * x:5.1f}"


def format_report(summaries: dict[str, dict[str, Any]]) -> str:
    """Per-split summaries side by side: one column group (en, zh, all) per split."""
    label_width, group = 18, 21  # group: "  " + three 5-wide cells joined by "  "
    width = label_width + group * len(summaries)
    head = f"{'':{label_width}s}" + "".join(f"{SPLIT_LABELS.get(n, n):>{group}s}" for n in summaries)
    lines = [head, f"{'':{label_width}s}" + f"{'en':>7s}{'zh':>7s}{'all':>7s}" * len(summaries), "-" * width]

    def row(label: str, accs: list[dict[str, float | None] | None]) -> None:
        if all(a is None or all(a.get(k) is None for k in (*LANGS, "all")) for a in accs):
            return
        cells = "".join("  " + "  ".join(_pct(None if a is None else a.get(k)) for k in (*LANGS, "all")) for a in accs)
        lines.append(f"{label:{label_width}s}{cells}")

    for t in (t for types in TYPES_BY_MODALITY.values() for t in types):
        row(t, [s["by_type"].get(t) for s in summaries.values()])
    lines.append("-" * width)
    for key, label in [(m, f"{m} overall") for m in TYPES_BY_MODALITY] + [("followup", "follow-ups"),
                                                                           ("overall", "all questions")]:
        row(label, [s.get(key) for s in summaries.values()])
    gaps = [s["zh_minus_en"].get("overall") for s in summaries.values()]
    lines.append(f"{'zh - en, points':{label_width}s}" + "".join(f"{'' if g is None else f'{g:+.1f}':>{group}s}" for g in gaps))
    row("absent: says so", [s.get("absent_rate") for s in summaries.values()])
    for metric, label in (("object_recall", "caption recall"), ("object_precision", "caption precision"),
                          ("exact", "caption exact")):
        row(label, [{k: c.get(metric) for k, c in s.get("captions", {}).items()} for s in summaries.values()])
    lines.append(", ".join(f"{s['questions']} questions ({SPLIT_LABELS.get(n, n)})" for n, s in summaries.items()))
    return "\n".join(line.rstrip() for line in lines)
