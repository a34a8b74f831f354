"""Conversation history: limits checked once at the boundary, and trimming to the context in linear time
(oldest turns first, the prompt equal to `build_prompt` over what is kept) for every chat template."""

from __future__ import annotations

import itertools
import logging
import random
import time

import pytest

import mm
from mm.chat import MMChat
from mm.errors import InputError
from mm.limits import DEFAULT_LIMITS, Limits
from mm.prompt import build_prompt, expand_placeholders, fit_history, get_template
from mm.tokenizer import add_media_tokens, build_tokenizer
from tests.conftest import make_image
from tests.mm.test_prompt import CHATML

WORDS = "what colour is the circle red green blue square sound beep 圆 红色 是什么 颜色 和".split()


@pytest.fixture(scope="module")
def tok():
    t = build_tokenizer([" ".join(WORDS) + " [Round 0123456789] 问： 答： <img></img>"], vocab_size=400)
    t.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]},
                         replace_additional_special_tokens=False)
    t.chat_template = CHATML
    return t, add_media_tokens(t)


def _history(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(" ".join(rng.choices(WORDS, k=rng.randint(1, 12))), " ".join(rng.choices(WORDS, k=rng.randint(0, 12))))
            for _ in range(n)]


def _reference(t, template, history, query, media, limit, extra):
    """What the old loop did: drop the oldest turn until the prompt fits."""
    for k in range(len(history) + 1):
        ids, _ = build_prompt(t, template, [*history[k:], (query, None)], media)
        if len(ids) + extra <= limit:
            return ids, k
    return ids, len(history)


@pytest.mark.parametrize("name", ["tiny", "chatglm", "chatglm3", "visualglm", "auto"])
def test_trimming_drops_the_oldest_turns_and_builds_the_same_prompt(tok, name):
    t, media = tok
    template = get_template(name)
    history = _history(14, seed=len(name))  # 14 turns: ChatGLM's "[Round 9]" becomes "[Round 10]"
    image = [media["image"]]
    full = len(build_prompt(t, template, [*history, ("red?", None)], image)[0])
    for extra in (0, 31):
        for limit in range(full + extra + 2, 0, -7):
            want = _reference(t, template, history, "red?", image, limit, extra)
            assert fit_history(t, template, history, "red?", image, limit, extra) == want, (limit, extra)


def test_a_2000_turn_history_is_trimmed_in_linear_time(tiny):
    history = [(f"question {i}: what is in the picture?", f"answer {i}: a red circle on white") for i in range(2000)]
    limits = Limits(max_history_turns=2000, max_history_bytes=2**20)
    start = time.perf_counter()
    reply = list(tiny.respond("last question", history=history, max_new_tokens=1, limits=limits))[-1]
    seconds = time.perf_counter() - start
    assert seconds < 5, f"{seconds:.1f} s"  # quadratic trimming took minutes
    context = tiny.config.llm.max_position_embeddings
    assert reply.prompt_tokens <= context - 1 and reply.history[:-1] == history
    # Exactly the most recent turns that fit are kept: one more would not fit.
    ids = tiny._prompt("last question", history, [], [], 1)
    kept = next(m for m in range(1, 2000)
                if len(build_prompt(tiny.tokenizer, tiny.template, [*history[-m - 1:], ("last question", None)])[0])
                > context - 1)
    assert ids == build_prompt(tiny.tokenizer, tiny.template, [*history[-kept:], ("last question", None)])[0]
    assert len(ids) == reply.prompt_tokens
    text = tiny.tokenizer.decode(ids)
    assert text.count("question ") == kept and text.startswith(f"<|user|>\nquestion {2000 - kept}: ")


def test_trimming_with_media_counts_the_expanded_slots(tiny, caplog):
    history = [(f"turn {i} " + "tell me more " * 40, f"reply {i} " + "more " * 40) for i in range(12)]
    items = tiny._collect(make_image(), None)
    embeds = tiny._embed(items)
    with caplog.at_level(logging.INFO, logger="mm.chat"):
        ids = tiny._prompt("last question", history, items, embeds, 64)
    assert len(ids) <= tiny.config.llm.max_position_embeddings - 64
    dropped = int(caplog.text.split("dropped the ")[1].split()[0])
    image_id = tiny.model.media_token_ids["image"]
    want, _ = build_prompt(tiny.tokenizer, tiny.template, [*history[dropped:], ("last question", None)], [image_id])
    assert ids == expand_placeholders(want, {image_id}, [len(embeds[0])])[0]
    assert f"turn {dropped} " in tiny.tokenizer.decode(ids) and f"turn {dropped - 1} " not in tiny.tokenizer.decode(ids)


@pytest.mark.parametrize("limits,history,message", [
    (Limits(max_history_turns=3), [("q", "a")] * 4, r"4 turns, more than the limit of 3 .*max_history_turns"),
    (Limits(max_history_turns=3), itertools.repeat(("q", "a")), "more turns than the limit of 3"),
    (Limits(max_history_bytes=100), [("q" * 30, "a" * 30), ("é" * 30, "")],
     r"more than 100 bytes.*max_history_bytes=.*--max-history-kb"),
])
def test_history_past_a_limit_is_refused_before_any_work(tiny, limits, history, message):
    with pytest.raises(InputError, match=message):
        tiny.chat("q", history=history, limits=limits, max_new_tokens=1)
    with pytest.raises(InputError, match=message):
        tiny.answer_batch([("q", history, [])], limits=limits, max_new_tokens=1)


def test_the_models_limits_apply_by_default_and_a_call_can_replace_them(tiny):
    strict = MMChat(tiny.model, tiny.tokenizer, limits=Limits(max_history_turns=1))
    assert tiny.limits == DEFAULT_LIMITS and strict.limits.max_history_turns == 1
    with pytest.raises(InputError, match="max_history_turns"):
        strict.chat("q", history=[("a", "b")] * 2, max_new_tokens=1)
    strict.chat("q", history=[("a", "b")] * 2, max_new_tokens=1, limits=Limits())
    with pytest.raises(InputError, match="limits must be an mm.limits.Limits"):
        tiny.chat("q", limits={"max_history_turns": 1})


def test_load_passes_limits_through():
    chat = mm.load("mm-tiny", limits=Limits(max_history_turns=2))
    assert chat.limits.max_history_turns == 2
    with pytest.raises(InputError, match="limits must be"):
        mm.load("mm-tiny", limits=5)


def test_generation_stops_at_the_deadline(tiny):
    replies = list(tiny.respond("Describe it.", max_new_tokens=50, deadline=time.monotonic() - 1))
    assert replies[-1].finish_reason == "deadline" and replies[-1].completion_tokens == 0
    tiny_deadline = Limits(deadline_seconds=1e-9)
    assert list(tiny.respond("Describe it.", max_new_tokens=50, limits=tiny_deadline))[-1].finish_reason == "deadline"
    assert list(tiny.respond("Describe it.", max_new_tokens=3))[-1].finish_reason in ("stop", "length")


def test_batched_generation_stops_at_the_deadline(tiny):
    requests = [("Describe it.", [], []), ("What is it?", [], [])]
    full = tiny.answer_batch(requests, max_new_tokens=20, temperature=1.0, seed=0)
    cut = tiny.answer_batch(requests, max_new_tokens=20, temperature=1.0, seed=0, deadline=time.monotonic() - 1)
    assert len(cut) == 2
    # One step is generated before the deadline is looked at: every answer is at most one token long.
    assert all(len(tiny.tokenizer.encode(a, add_special_tokens=False)) <= 1 for a in cut)
    assert any(len(tiny.tokenizer.encode(a, add_special_tokens=False)) > 1 for a in full)
