"""Questions from a grammar: templates with alternatives, slots, surface variation and a light typo channel.

A template is a string with alternative groups `[a|b|c]` (nestable; an empty alternative is allowed) and
slots `{name}` filled by the caller. A leading `!` marks a *held-out* template or alternative: it is never
produced with `phrasing="seen"`, so an evaluation split with `phrasing="unseen"` asks questions the model
was never trained on. The three phrasing sets:

- "canonical": the first template with the first alternative everywhere and no surface variation: the
  world's original question text (the shipped model was trained on exactly this).
- "seen": any template and alternative not marked `!` (the canonical one included), plus surface variation:
  politeness, lower case, missing final punctuation, a rare typo (English only).
- "unseen": only `!` templates (whole templates held out), where held-out synonyms are preferred; seen and
  unseen never share a template, and held-out synonyms (`HELD_OUT_WORDS`) appear in no seen question.

Slot values are protected: the typo channel never touches them, nor the words that carry the question
(`PROTECTED`), so a typo never changes what is asked. The tables of templates live in `grammar_en` and
`grammar_zh`; the answer grammar does not vary (one canonical answer per question type, in `text`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass
from typing import Literal, Union

import numpy as np

from mm.synth.grammar_en import EN, HELD_OUT_EN, PROTECTED_EN
from mm.synth.grammar_zh import HELD_OUT_ZH, ZH

Phrasing = Literal["canonical", "seen", "unseen"]
PHRASINGS: tuple[str, ...] = ("canonical", "seen", "unseen")
TEMPLATES: dict[str, dict[str, list[str]]] = {"en": EN, "zh": ZH}
HELD_OUT_WORDS: dict[str, tuple[str, ...]] = {"en": HELD_OUT_EN, "zh": HELD_OUT_ZH}
PROTECTED = PROTECTED_EN

# Surface variation (probabilities per question) and the politeness wrappers of each phrasing set.
P_POLITE, P_LOWER, P_NO_PUNCT, P_TYPO = 0.15, 0.12, 0.2, 0.06
_POLITE = {
    ("en", "seen"): ("Please, {q}", "{q}, please", "Tell me, {q}"),
    ("en", "unseen"): ("Hey, {q}", "Quick question: {q}"),
    ("zh", "seen"): ("请问{q}",),
    ("zh", "unseen"): ("麻烦问一下，{q}",),
}


@dataclass
class QA:
    type: str  # one of vocab.QUESTION_TYPES
    lang: str  # "en" or "zh"
    q: str
    a: str
    key: str  # the answer word (in `lang`) a correct response must contain
    followup: bool = False
    phrasing: str = "canonical"  # the phrasing set the question came from (see PHRASINGS)

    def to_dict(self) -> dict:
        return asdict(self)


_OPEN, _CLOSE = "\x01", "\x02"  # around slot values while a question is built: those words are protected

# A parsed template: a sequence of text pieces and groups; a group is a list of (held_out, sequence).
Seq = list[Union[str, "Group"]]
Group = list[tuple[bool, Seq]]


def _parse(text: str, i: int = 0, depth: int = 0) -> tuple[Seq, int]:
    seq: Seq = []
    buf = ""
    while i < len(text):
        ch = text[i]
        if ch == "[":
            if buf:
                seq.append(buf)
                buf = ""
            group: Group = []
            i += 1
            while True:
                held = text.startswith("!", i)
                alt, i = _parse(text, i + held, depth + 1)
                group.append((held, alt))
                if i >= len(text):
                    raise ValueError(f"unclosed '[' in template {text!r}")
                i += 1
                if text[i - 1] == "]":
                    break
            seq.append(group)
            continue
        if ch in "|]":
            if depth == 0:
                raise ValueError(f"unbalanced {ch!r} in template {text!r}")
            break
        buf += ch
        i += 1
    if buf:
        seq.append(buf)
    return seq, i


def _split(templates: list[str]) -> tuple[list[str], list[str]]:
    """(seen templates, held-out templates), without the `!` marks."""
    seen = [t for t in templates if not t.startswith("!")]
    held = [t[1:] for t in templates if t.startswith("!")]
    return seen, held


def _fill(template: str, slots: dict[str, str]) -> str:
    return template.format(**{k: f"{_OPEN}{v}{_CLOSE}" for k, v in slots.items()})


def _all(seq: Seq, held_ok: bool) -> list[str]:
    parts: list[list[str]] = []
    for piece in seq:
        if isinstance(piece, str):
            parts.append([piece])
        else:
            parts.append([s for held, alt in piece if held_ok or not held for s in _all(alt, held_ok)])
    return ["".join(p) for p in itertools.product(*parts)]


def _pick(seq: Seq, rng: np.random.Generator | None, held_ok: bool) -> str:
    out = ""
    for piece in seq:
        if isinstance(piece, str):
            out += piece
            continue
        if rng is None:
            alt = piece[0][1]
        else:
            choices = [(held, alt) for held, alt in piece if held_ok or not held]
            held_only = [c for c in choices if c[0]]
            if held_ok and held_only and rng.random() < 0.5:
                choices = held_only  # unseen: prefer the held-out synonym where there is one
            alt = choices[int(rng.integers(len(choices)))][1]
        out += _pick(alt, rng, held_ok)
    return out


def _clean(text: str) -> str:
    text = re.sub(r" +", " ", text.replace(_OPEN, "").replace(_CLOSE, "")).strip()
    return text[:1].upper() + text[1:]


def expansions(key: str, lang: str, phrasing: Phrasing = "seen", **slots: str) -> set[str]:
    """Every question text of template family `key` in `phrasing`, without surface variation."""
    seen, held = _split(TEMPLATES[lang][key])
    if phrasing == "canonical":
        return {ask(key, lang, None, "canonical", **slots)}
    pool, held_ok = (seen, False) if phrasing == "seen" else (held, True)
    out: set[str] = set()
    for t in pool:
        out.update(_clean(s) for s in _all(_parse(_fill(t, slots))[0], held_ok))
    return out


def ask(key: str, lang: str, rng: np.random.Generator | None, phrasing: Phrasing = "canonical",
        **slots: str) -> str:
    """One question of template family `key` (e.g. "colour", "yesno.exists") with `slots` filled."""
    if phrasing not in PHRASINGS:
        raise ValueError(f"unknown phrasing {phrasing!r}; one of {', '.join(PHRASINGS)}")
    seen, held = _split(TEMPLATES[lang][key])
    if phrasing == "canonical":
        return _clean(_pick(_parse(_fill(seen[0], slots))[0], None, False))
    if rng is None:
        raise ValueError(f"phrasing={phrasing!r} needs an rng")
    pool = seen if phrasing == "seen" else (held or seen)
    text = _pick(_parse(_fill(pool[int(rng.integers(len(pool)))], slots))[0], rng, phrasing == "unseen")
    return _surface(text, lang, rng, phrasing)


def _surface(text: str, lang: str, rng: np.random.Generator, phrasing: Phrasing) -> str:
    """Politeness, lower case, missing final punctuation and (English) a typo outside the protected words."""
    polite = rng.random() < P_POLITE
    lower, no_punct, typo = (rng.random() < p for p in (P_LOWER, P_NO_PUNCT, P_TYPO))
    if polite:
        wrappers = _POLITE[(lang, phrasing)]
        wrapper = wrappers[int(rng.integers(len(wrappers)))]
        if text.lstrip(_OPEN).startswith(("请问", "能告诉我", "麻烦", "And", "Could", "Can you", "Tell", "Please")):
            wrapper = "{q}"  # already polite, or a follow-up that must start with "And"
        if wrapper.startswith("{q}"):
            end = re.search(r"[?？.。]$", text)
            text = wrapper.format(q=text[: end.start()] if end else text) + (end.group() if end else "")
        else:
            m = re.search(r"[A-Za-z]", text)
            if lang == "en" and m and not re.match(r"I\b", text[m.start():]):
                text = text[: m.start()] + text[m.start()].lower() + text[m.start() + 1:]
            text = wrapper.format(q=text)
    if typo and lang == "en":
        text = _typo(text, rng)
    text = _clean(text)
    if lower:
        text = text.lower()
    if no_punct:
        text = text.rstrip("?？.。")
    return text


def _typo(text: str, rng: np.random.Generator) -> str:
    """Drop, double or swap one letter of one unprotected word of four or more letters."""
    pieces = re.split(f"({_OPEN}[^{_CLOSE}]*{_CLOSE})", text)
    spots = [(i, m.start(), m.group()) for i, p in enumerate(pieces) if not p.startswith(_OPEN)
             for m in re.finditer(r"[A-Za-z]{4,}", p) if m.group().lower() not in PROTECTED]
    if not spots:
        return text
    i, start, word = spots[int(rng.integers(len(spots)))]
    k = int(rng.integers(1, len(word) - 1))
    op = int(rng.integers(3))
    new = (word[:k] + word[k + 1:], word[:k] + word[k] + word[k:], word[:k] + word[k + 1] + word[k] + word[k + 2:])[op]
    pieces[i] = pieces[i][:start] + new + pieces[i][start + len(word):]
    return "".join(pieces)
