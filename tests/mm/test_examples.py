"""Training examples drawn from the synthetic world's records (mm.train.examples)."""

from collections import Counter

import numpy as np

from mm.train.examples import DIALOGUE_QUESTIONS, TEXT_QUESTIONS, make_example
from mm.train.sources import Record

TYPES = {"colour": 12, "shape": 12, "absent": 2, "relation": 1}  # a question pool dominated by two types


def _record() -> Record:
    qa = [{"type": t, "lang": lang, "q": f"{t} question {i} ({lang})?", "a": f"{t} answer {i}."}
          for t, n in TYPES.items() for i in range(n) for lang in ("en", "zh")]
    return Record(id="r0", media=[("image", "r0.png")], captions=["A red circle."], extra={"qa": qa, "captions": {"en": "A red circle.", "zh": "一个红色的圆。"}})


def _kind(question: str) -> str:
    return question.split()[0]


def test_stage2_dialogues_ask_several_questions_of_different_types():
    record = _record()
    sizes, kinds = Counter(), Counter()
    for seed in range(400):
        ex = make_example(record, "dialogue", np.random.default_rng(seed))
        if len(ex.turns) == 1 and ex.turns[0][1] == "A red circle.":
            continue  # the occasional caption turn
        types = [_kind(q) for q, _ in ex.turns]
        assert len(set(types)) == len(types), types  # never two questions of one type
        sizes[len(types)] += 1
        kinds.update(types)
    assert set(sizes) == set(DIALOGUE_QUESTIONS)
    # Types are drawn uniformly, not in proportion to the pool: the rare ones are asked about as often.
    assert min(kinds.values()) > 0.8 * max(kinds.values()), kinds


def test_stage0_text_examples_keep_the_first_draw():
    """Stage 0 (text) draws questions in proportion to the pool, 1-3 at a time, as the recipe always did."""
    record = _record()
    kinds, sizes = Counter(), Counter()
    for seed in range(400):
        ex = make_example(record, "text", np.random.default_rng(seed))
        if ex.turns[0][1] == "A red circle.":
            continue
        sizes[len(ex.turns)] += 1
        kinds.update(_kind(q.splitlines()[-1]) for q, _ in ex.turns)
    assert set(sizes) <= set(TEXT_QUESTIONS)
    assert kinds["colour"] > 4 * kinds["absent"], kinds
