"""`mm bench chat`: time to first token of a conversation's follow-ups, with the engine's prefix cache and
without it, side by side in one run.

A 5-turn conversation about one picture and one sound is held twice per repeat, by two `MMChat`s over
the same model: one keeps each turn's keys and values (`mm.engine.PrefixCache`), the other
(`prefix_cache_size=0`) prefills the whole history every turn, as VisualGLM-6B does. Both have the media's
bridge outputs cached after turn 1, so the difference is the prefill alone. Turns 2-5 are timed from the
call to the first streamed reply; greedy answers must be identical. The figure is the ratio of the median
times.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from mm.chat import MMChat

# What a user types in a chat window: a sentence or two of context, then the question. (With questions of a
# few words the tiny model's prompts stay under ~100 tokens, where the fixed cost of a call, not the
# prefill, sets the time to first token.)
QUESTIONS = (
    "I am describing this picture for a friend who cannot see it, so please be careful. Describe the image.",
    "My friend asked about the biggest shape first, since it catches the eye. What colour is the largest shape?",
    "A short recording goes with the picture and I would like to describe it too. Describe the sound.",
    "Back to the picture: I want to be sure I did not miss a small shape in a corner. How many shapes are there?",
    "One last thing about the recording, so that my description is complete. Is the sound high or low?",
)


def _media(seed: int) -> tuple[Any, tuple[np.ndarray, int]]:
    """A synthetic scene and a tone with beeps (1.5 s at 16 kHz)."""
    from mm.synth.scene import render, sample_scene

    rng = np.random.default_rng(seed)
    image = render(sample_scene(rng))
    t = np.arange(int(1.5 * 16000)) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    return image, (wave, 16000)


def _conversation(chat: MMChat, image: Any, audio: Any, max_new_tokens: int) -> tuple[list[float], list[str]]:
    """(time to first reply of every turn, answers) of one conversation."""
    history: list[tuple[str, str]] = []
    ttft, answers = [], []
    for q in QUESTIONS:
        t0 = time.perf_counter()
        first = last = None
        for reply in chat.respond(q, image=image, audio=audio, history=history, max_new_tokens=max_new_tokens):
            if first is None:
                first = time.perf_counter() - t0
            last = reply
        ttft.append(first)
        answers.append(last.text)
        history = last.history
    return ttft, answers


def bench_chat(chat: MMChat, repeats: int = 5, max_new_tokens: int = 32, seed: int = 3) -> dict[str, Any]:
    cached = MMChat(chat.model, chat.tokenizer, limits=chat.limits, prefix_cache_size=4)
    plain = MMChat(chat.model, chat.tokenizer, limits=chat.limits, prefix_cache_size=0)
    image, audio = _media(seed)
    _conversation(cached, image, audio, max_new_tokens)  # warm-up (and the media's bridge outputs cached)
    _conversation(plain, image, audio, max_new_tokens)
    with_cache: list[list[float]] = []
    without: list[list[float]] = []
    same = True
    answers: list[str] = []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        t_cached, a_cached = _conversation(cached, image, audio, max_new_tokens)
        t_plain, a_plain = _conversation(plain, image, audio, max_new_tokens)
        same &= a_cached == a_plain
        answers = a_plain
        with_cache.append(t_cached[1:])
        without.append(t_plain[1:])
    med_cached = [statistics.median(t[i] for t in with_cache) for i in range(len(QUESTIONS) - 1)]
    med_plain = [statistics.median(t[i] for t in without) for i in range(len(QUESTIONS) - 1)]
    prompt_tokens = [r.prompt_tokens for r in _replies(plain, image, audio, max_new_tokens)]
    stats = cached.engine.prefix_cache
    return {
        "turns": len(QUESTIONS), "repeats": repeats, "max_new_tokens": max_new_tokens,
        "prompt_tokens": prompt_tokens,
        "ttft_ms_cached": [round(1000 * t, 2) for t in med_cached],
        "ttft_ms_recomputed": [round(1000 * t, 2) for t in med_plain],
        "speedup_per_turn": [round(p / c, 2) for p, c in zip(med_plain, med_cached)],
        "speedup": sum(med_plain) / sum(med_cached),  # turns 2-5 together
        "prefix_hits": stats.hits, "prefix_misses": stats.misses, "reused_tokens": stats.reused_tokens,
        "identical_answers": same, "answers": answers,
    }


def _replies(chat: MMChat, image: Any, audio: Any, max_new_tokens: int) -> list[Any]:
    history: list[tuple[str, str]] = []
    out = []
    for q in QUESTIONS:
        *_, reply = chat.respond(q, image=image, audio=audio, history=history, max_new_tokens=max_new_tokens)
        out.append(reply)
        history = reply.history
    return out
