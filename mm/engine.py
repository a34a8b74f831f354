"""The generation engine: the one path from prepared requests to answers, for chat, streaming, batches,
captions, clip comparison, evaluation and the server.

Shape letters: B batch, T prompt tokens, E LLM width.

`Engine.run` prefills left-padded prompts (media slots spliced in) and decodes them together, one
forward per step for the whole batch (`mm.generation.generate`), and says for every row why it stopped:
"stop" (an end token), "length" (`max_new_tokens`) or "deadline" (the request's deadline passed: the
answer so far is kept). `respond` streams one conversation turn; `answer_batch` answers many requests.

A conversation keeps its keys and values between turns (`PrefixCache`): a follow-up's prompt starts with
the previous turn's prompt and answer, so only the new tokens are prefilled. VisualGLM-6B and its peers
prefill the whole history again every turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
from transformers import DynamicCache, PreTrainedTokenizerBase

from mm.collate import pad_and_mask
from mm.generation import GenerationConfig, generate, make_generator
from mm.limits import Limits
from mm.media import MediaInput, Prepared
from mm.model import MMModel
from mm.processor import History, Processor, check_batch_size, check_query
from mm.prompt import stop_token_ids

logger = logging.getLogger(__name__)

FinishReason = Literal["stop", "length", "deadline"]


@dataclass
class Reply:
    text: str  # the response so far
    history: History  # history including this response
    prompt_tokens: int  # prompt length, media slots included
    completion_tokens: int  # tokens generated so far
    # None while streaming; "stop" (end token), "length" (max_new_tokens) or "deadline" (the request's
    # deadline, `Limits.deadline_seconds` by default, passed: the answer so far is cut short)
    finish_reason: FinishReason | None


@dataclass
class Row:
    """One prompt's progress through `Engine.run`."""

    prompt_tokens: int
    tokens: list[int] = field(default_factory=list)  # generated so far, end token excluded
    finish_reason: FinishReason | None = None


@dataclass
class _Entry:
    ids: list[int]  # the token ids whose keys and values `kv` holds
    media: tuple[str, ...]  # content keys of the media spliced into them, in order
    kv: DynamicCache
    device: torch.device
    dtype: torch.dtype


class PrefixCache:
    """The keys and values of the last few conversations (LRU), per engine, never global.

    `take` finds the entry sharing the longest prefix with a new prompt that holds the same media (by
    content key) and hands it over cropped to that prefix; anything else (other media, another device or
    dtype, no shared token) is a miss and the caller prefills everything. An entry is removed when taken:
    the turn that takes it puts back its own, longer one. `capacity=0` turns it off.
    """

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()  # a server or a Gradio app may answer two conversations at once
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0
        self.hits = 0  # prompts that reused a prefix
        self.misses = 0  # prompts prefilled in full
        self.reused_tokens = 0  # prompt tokens not prefilled again, over all hits

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, ids: Sequence[int], media: tuple[str, ...], device: torch.device,
             dtype: torch.dtype) -> tuple[DynamicCache, int] | None:
        """(cache holding the first n positions of `ids`, n) for the best entry, or None (a miss)."""
        with self._lock:
            return self._take(ids, media, device, dtype)

    def _take(self, ids: Sequence[int], media: tuple[str, ...], device: torch.device,
              dtype: torch.dtype) -> tuple[DynamicCache, int] | None:
        best, best_n = None, 0
        for key, e in self._entries.items():
            if e.media != media or e.device != device or e.dtype != dtype:
                continue
            n = _common_prefix(e.ids, ids, len(ids) - 1)  # at least one token is left to prefill
            if n > best_n:
                best, best_n = key, n
        if best is None:
            self.misses += 1
            return None
        entry = self._entries.pop(best)
        if entry.kv.get_seq_length() != len(entry.ids):  # never expected; a full prefill is always right
            self.misses += 1
            return None
        entry.kv.crop(best_n)
        self.hits += 1
        self.reused_tokens += best_n
        return entry.kv, best_n

    def put(self, ids: list[int], media: tuple[str, ...], kv: DynamicCache, device: torch.device,
            dtype: torch.dtype) -> None:
        if self.capacity <= 0 or not ids:
            return
        with self._lock:
            self._entries[self._next] = _Entry(ids, media, kv, device, dtype)
            self._next += 1
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every conversation (call it after changing the model's weights)."""
        with self._lock:
            self._entries.clear()


def _common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y or n >= limit:
            break
        n += 1
    return n


class Engine:
    """Generates answers for prepared requests; see the module doc. Built by `MMChat`, one per chat."""

    def __init__(self, model: MMModel, tokenizer: PreTrainedTokenizerBase, processor: Processor, *,
                 prefix_cache_size: int = 4) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor
        self.stop_ids = stop_token_ids(tokenizer, processor.template)
        eos = getattr(model.llm.generation_config, "eos_token_id", None)
        self.stop_ids.update([eos] if isinstance(eos, int) else (eos or []))
        self.prefix_cache = PrefixCache(prefix_cache_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.llm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.llm.parameters()).dtype

    @property
    def reuses_prefixes(self) -> bool:
        """Whether a prompt's keys and values may be kept for the next turn: a causal LM with plain
        positions. GLM's blank infilling (ChatGLM-6B's own position hooks) attends both ways within the
        context, so its earlier keys change when text is appended."""
        llm = self.model.llm
        return (self.prefix_cache.capacity > 0 and not hasattr(llm, "prefill_position_ids")
                and not hasattr(llm, "position_ids_from_input_ids"))

    # -- the one generation loop ------------------------------------------------------------------

    @torch.no_grad()
    def run(self, prompts: Sequence[list[int]], media: Sequence[torch.Tensor], cfg: GenerationConfig, *,
            generator: torch.Generator | None = None, deadline: float | None = None,
            media_keys: tuple[str, ...] = (), conversation: bool = False) -> Iterator[list[Row]]:
        """Generate for expanded prompt ids (their media slots filled by `media`, (Q_i, E) each, in order).

        Yields the rows after every step (their `tokens` grow); the last yield has every `finish_reason`
        set. A row's end token is not kept; once `deadline` (a `time.monotonic()` value) has passed, every
        unfinished row stops with "deadline" and the token of that step is dropped. With `conversation`
        (one prompt, `media_keys` naming its media), the prompt's prefix is looked up in and its keys and
        values are stored in `prefix_cache`.
        """
        rows = [Row(len(p)) for p in prompts]
        pad = self.tokenizer.pad_token_id or 0
        ids, mask = pad_and_mask([torch.tensor(p, dtype=torch.long) for p in prompts], side="left", value=pad,
                                 device=self.device)  # (B, T)
        embeds = self.model.splice(ids, torch.cat(list(media)).to(self.dtype) if media else None)  # (B, T, E)
        keep = conversation and len(prompts) == 1 and self.reuses_prefixes
        found = self.prefix_cache.take(prompts[0], media_keys, self.device, self.dtype) if keep else None
        kv, cached = found if found is not None else (DynamicCache(), 0)
        steps = generate(self.model.llm, embeds, mask.long(), cfg, self.stop_ids, pad_id=pad,
                         vocab_limit=len(self.tokenizer), generator=generator,
                         suppress_ids=set(self.model.media_token_ids.values()), cache=kv, cached=cached)
        fed: list[int] = []  # the first row's tokens, end token included (the cache holds what was fed back)
        whole = False  # whether the cache is consistent: the loop ended, or was closed between two steps
        try:
            for step in steps:
                tokens = step.tolist()
                fed.extend(tokens[:1])
                late = deadline is not None and time.monotonic() > deadline
                for row, tok in zip(rows, tokens):
                    if row.finish_reason is not None:
                        continue
                    if tok in self.stop_ids:
                        row.finish_reason = "stop"
                    elif late:
                        row.finish_reason = "deadline"
                    else:
                        row.tokens.append(tok)
                if late and any(r.finish_reason == "deadline" for r in rows):
                    logger.warning("the request's deadline passed: %d answers cut short after %d generated "
                                   "steps", sum(r.finish_reason == "deadline" for r in rows), len(fed))
                if all(r.finish_reason is not None for r in rows):
                    break
                yield rows
            for row in rows:
                if row.finish_reason is None:
                    row.finish_reason = "length"
            whole = True
            yield rows
        except GeneratorExit:  # the caller stopped reading (a stream closed early): we were between steps
            whole = True
            raise
        finally:
            steps.close()
            if keep and whole:  # the cache holds the prompt, then the tokens fed back so far
                held = [*prompts[0], *fed][: kv.get_seq_length()]
                self.prefix_cache.put(held, media_keys, kv, self.device, self.dtype)

    # -- surfaces ---------------------------------------------------------------------------------

    def respond(
        self, query: str, *, image: MediaInput = None, audio: MediaInput = None, video: MediaInput = None,
        history: object = None, max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        top_k: int = 0, repetition_penalty: float = 1.0, seed: int | None = None, limits: Limits | None = None,
        deadline: float | None = None,
    ) -> Iterator[Reply]:
        """One conversation turn, streamed; see `MMChat.respond`."""
        limits = self.processor.limits_for(limits)
        if deadline is None:
            deadline = time.monotonic() + limits.deadline_seconds
        cfg = GenerationConfig(max_new_tokens, temperature, top_p, top_k, repetition_penalty)
        generator = make_generator(seed, self.device)
        hist = self.processor.history(history, limits)
        check_query(query)  # before any media is decoded
        items = self.processor.collect((("image", image), ("audio", audio), ("video", video)), limits=limits,
                                       deadline=deadline)
        embeds = self.processor.embed(items)
        ids = self.processor.prompt(query, hist, items, embeds, cfg.max_new_tokens)
        text = ""
        row = Row(len(ids))
        for (row,) in self.run([ids], embeds, cfg, generator=generator, deadline=deadline,
                               media_keys=tuple(p.key for p in items), conversation=True):
            if row.finish_reason is not None:
                continue  # the last yield: going on lets `run` keep this turn's cache before we answer
            new = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
            if new.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            if new != text:
                text = new
                yield Reply(text, [*hist, (query, text)], len(ids), len(row.tokens), None)
        final = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        yield Reply(final, [*hist, (query, final)], len(ids), len(row.tokens), row.finish_reason)

    def answer(self, query: str, **kwargs: object) -> Reply:
        """The last `Reply` of `respond` (the whole answer)."""
        (reply,) = deque(self.respond(query, **kwargs), maxlen=1)  # type: ignore[arg-type]
        return reply

    def answer_batch(
        self, requests: Sequence[tuple[str, History, Sequence[Prepared]]], *, batch_size: int = 16,
        max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
        repetition_penalty: float = 1.0, seed: int | None = None, limits: Limits | None = None,
        deadline: float | None = None,
    ) -> list[str]:
        """Answers for many (query, history, prepared media) requests, `batch_size` at a time; see
        `MMChat.answer_batch`."""
        cfg = GenerationConfig(max_new_tokens, temperature, top_p, top_k, repetition_penalty)
        check_batch_size(batch_size)
        generator = make_generator(seed, self.device)
        limits = self.processor.limits_for(limits)
        requests = [(q, self.processor.history(h, limits), items) for q, h, items in requests]
        answers: list[str] = []
        for start in range(0, len(requests), batch_size):
            prompts, media = [], []
            for query, history, items in requests[start:start + batch_size]:
                embeds = self.processor.embed(items)
                prompts.append(self.processor.prompt(query, history, items, embeds, cfg.max_new_tokens))
                media.extend(embeds)
            (rows,) = deque(self.run(prompts, media, cfg, generator=generator, deadline=deadline), maxlen=1)
            answers.extend(self.tokenizer.decode(r.tokens, skip_special_tokens=True) for r in rows)
        return answers


class HasEngine(Protocol):
    """What holds an engine (`MMChat`): captioning and comparison take either."""

    @property
    def engine(self) -> Engine: ...


def engine_of(source: Engine | HasEngine) -> Engine:
    return source if isinstance(source, Engine) else source.engine
