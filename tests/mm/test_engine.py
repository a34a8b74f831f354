"""The generation engine: one path for chat and batches, and the conversation prefix cache."""

from __future__ import annotations

import pytest

from mm.chat import MMChat
from tests.conftest import make_image, tone

QUESTIONS = ["Describe the image.", "What colour is it?", "Describe the sound.", "How many shapes are there?"]


@pytest.fixture(scope="module")
def pair(tiny):
    """Two chats over the shipped weights: one keeps conversations' keys and values, one does not."""
    return (MMChat(tiny.model, tiny.tokenizer, prefix_cache_size=4),
            MMChat(tiny.model, tiny.tokenizer, prefix_cache_size=0))


def _talk(chat: MMChat, questions: list[str], history=None, **media):
    """Replies of a conversation, each turn given the history so far."""
    history, replies = list(history or []), []
    for q in questions:
        *_, reply = chat.respond(q, history=history, max_new_tokens=24, **media)
        replies.append(reply)
        history = reply.history
    return replies


def test_cached_follow_ups_answer_as_a_full_prefill_does(pair):
    cached, plain = pair
    media = {"image": make_image("blue"), "audio": (tone(660.0), 16000)}
    stats = cached.engine.prefix_cache
    hits, misses, reused = stats.hits, stats.misses, stats.reused_tokens
    fast, slow = _talk(cached, QUESTIONS, **media), _talk(plain, QUESTIONS, **media)
    assert [r.text for r in fast] == [r.text for r in slow]
    assert [r.prompt_tokens for r in fast] == [r.prompt_tokens for r in slow]
    assert all(r.text for r in fast)
    # Turn 1 is a miss; every follow-up reuses at least the whole previous prompt (media slots included).
    assert (stats.hits - hits, stats.misses - misses) == (len(QUESTIONS) - 1, 1)
    assert stats.reused_tokens - reused >= sum(r.prompt_tokens for r in fast[:-1])
    assert plain.engine.prefix_cache.hits == 0 and len(plain.engine.prefix_cache) == 0


def test_an_edited_history_falls_back_to_a_full_prefill(pair):
    cached, plain = pair
    image = make_image("red")
    first = _talk(cached, QUESTIONS[:2], image=image)
    edited = [(first[0].history[0][0], "Nothing at all."), first[-1].history[-1]]  # the user changed answer 1
    stats = cached.engine.prefix_cache
    hits, reused = stats.hits, stats.reused_tokens
    (after_edit,) = _talk(cached, QUESTIONS[2:3], history=edited, image=image)
    (expected,) = _talk(plain, QUESTIONS[2:3], history=edited, image=image)
    assert after_edit.text == expected.text
    # Only turn 1's prompt is shared: the changed answer and everything after it are prefilled again.
    assert stats.hits == hits + 1
    assert 0 < stats.reused_tokens - reused <= first[0].prompt_tokens
    # Other media (same text) shares nothing: a miss, and the same answer as recomputing.
    misses = stats.misses
    (other,) = _talk(cached, QUESTIONS[:1], image=make_image("green"))
    assert stats.misses == misses + 1 and stats.hits == hits + 1
    assert other.text == _talk(plain, QUESTIONS[:1], image=make_image("green"))[0].text


def test_a_stream_stopped_early_leaves_a_usable_cache(pair):
    cached, plain = pair
    image = make_image("blue")
    stream = cached.respond("Describe the image.", image=image, max_new_tokens=24)
    next(stream)
    stream.close()  # the user stopped reading; the history they keep holds what they saw
    history = [("Describe the image.", "A")]
    (reply,) = _talk(cached, ["What colour is it?"], history=history, image=image)
    assert reply.text == _talk(plain, ["What colour is it?"], history=history, image=image)[0].text


def test_batches_and_chat_share_one_path_without_touching_the_prefix_cache(pair):
    cached, _ = pair
    items = cached._collect(make_image("red"), None)
    stats = cached.engine.prefix_cache
    before = (stats.hits, stats.misses, len(stats))
    batch = cached.answer_batch([(q, [], items) for q in QUESTIONS[:2]], max_new_tokens=24)
    assert (stats.hits, stats.misses, len(stats)) == before
    assert batch == [cached.chat(q, image=make_image("red"), max_new_tokens=24)[0] for q in QUESTIONS[:2]]


def test_the_cache_is_bounded_and_per_chat(tiny):
    chat = MMChat(tiny.model, tiny.tokenizer, prefix_cache_size=2)
    for colour in ("red", "green", "blue"):
        chat.chat("Describe the image.", image=make_image(colour), max_new_tokens=4)
    assert len(chat.engine.prefix_cache) == 2
    assert len(tiny.engine.prefix_cache) <= tiny.engine.prefix_cache.capacity
    assert chat.engine.prefix_cache is not tiny.engine.prefix_cache


def test_blank_infilling_models_never_reuse_a_prefix(tiny, monkeypatch):
    """ChatGLM-6B attends both ways within its context: appending text changes earlier keys."""
    chat = MMChat(tiny.model, tiny.tokenizer)
    assert chat.engine.reuses_prefixes
    monkeypatch.setattr(type(tiny.model.llm), "position_ids_from_input_ids", lambda *a: None, raising=False)
    assert not chat.engine.reuses_prefixes


def test_the_chat_bench_reports_identical_answers_and_a_hit_per_follow_up(tiny):
    from mm.bench_chat import QUESTIONS as TURNS
    from mm.bench_chat import bench_chat

    result = bench_chat(tiny, repeats=1, max_new_tokens=8)
    assert result["identical_answers"] and len(result["answers"]) == len(TURNS) == 5
    # A warm-up conversation and one timed one: only the very first turn finds nothing to reuse.
    assert (result["prefix_hits"], result["prefix_misses"]) == (2 * len(TURNS) - 1, 1)
    assert len(result["ttft_ms_cached"]) == len(result["ttft_ms_recomputed"]) == len(TURNS) - 1
    assert result["prompt_tokens"] == sorted(result["prompt_tokens"])  # the history grows every turn
