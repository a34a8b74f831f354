"""The processor: what happens to a request before generation. Media checks, modality inference, prompt
building and trimming, and the per-session cache of bridge outputs.

Shape letters: T prompt tokens, Q slots of one item, E LLM width, D Q-Former width.

It turns user input (a question, a history, images / sounds / clips) into the expanded prompt ids and
the (Q_i, E) media embeddings that `mm.engine.Engine` generates from. It never generates.
"""

from __future__ import annotations

import logging
import numbers
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from encoders.media_types import modality_of_path
from mm.errors import InputError
from mm.generation import short_repr
from mm.limits import DEFAULT_LIMITS, Limits
from mm.media import EmbeddingCache, as_list
from mm.modality import Prepared
from mm.model import MMModel
from mm.prompt import ChatTemplate, expand_placeholders, fit_history

# The trimming message has always come from "mm.chat" (users and tests filter on that name).
logger = logging.getLogger("mm.chat")

History = list[tuple[str, str]]


def check_limits(limits: Limits | None, default: Limits) -> Limits:
    """`limits`, or `default` when None; anything else than a `Limits` is an InputError."""
    if limits is None:
        return default
    if not isinstance(limits, Limits):
        raise InputError(f"limits must be an mm.limits.Limits, got {type(limits).__name__}")
    return limits


def check_text(what: str, value: Any, *, convert: bool = False) -> str:
    """`value` as a str that is well-formed (encodes as UTF-8: no lone surrogates); with `convert`, other
    values go through str() (history turns have always been converted)."""
    if not isinstance(value, str):
        if not convert:
            raise InputError(f"{what} must be text, got {type(value).__name__}")
        value = str(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} is not well-formed text (it holds a lone surrogate such as \\ud800)") from None
    return value


def check_query(query: Any) -> str:
    """The question as text; an empty one is an InputError (raised before any media is decoded)."""
    query = check_text("the question", query)
    if not query.strip():
        raise InputError("the question is empty")
    return query


def check_batch_size(batch_size: Any) -> int:
    """`batch_size` must be a whole number >= 1 (range() would fail on 0 and silently do nothing below)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InputError(f"batch_size must be a whole number >= 1, got {short_repr(batch_size)}")
    return int(batch_size)


def infer_modality(item: Any) -> str:
    """"image", "audio" or "video" from the item's type or file extension."""
    from PIL import Image

    if isinstance(item, Image.Image):
        return "image"
    if isinstance(item, tuple) and len(item) == 2:
        return "audio"
    if isinstance(item, (str, Path)):
        modality = modality_of_path(item)
        if modality is None:
            raise InputError(f"{item}: cannot tell the media type from the extension {Path(item).suffix.lower()!r}")
        return modality
    if hasattr(item, "ndim") and item.ndim == 1:
        return "audio"
    return "image"


class _Pieces:
    """The tokenizer as `mm.prompt` sees it, with the encodings of recent text pieces kept (LRU).

    A conversation's prompt is built again every turn from the same turns; encoding each piece once keeps
    building it from growing with the history. `encode` is a pure function of its arguments, and a copy
    is handed out (callers extend the lists they get)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, capacity: int = 1024) -> None:
        self._tokenizer = tokenizer
        self._capacity = capacity
        self._ids: OrderedDict[tuple[str, bool, bool], list[int]] = OrderedDict()

    def encode(self, text: str, add_special_tokens: bool = True, split_special_tokens: bool = False) -> list[int]:
        key = (text, add_special_tokens, split_special_tokens)
        ids = self._ids.get(key)
        if ids is None:
            ids = self._tokenizer.encode(text, add_special_tokens=add_special_tokens,
                                         split_special_tokens=split_special_tokens)
            self._ids[key] = ids
            if len(self._ids) > self._capacity:
                self._ids.popitem(last=False)
        else:
            self._ids.move_to_end(key)
        return list(ids)

    def __getattr__(self, name: str) -> Any:  # everything else is the tokenizer's own
        return getattr(self._tokenizer, name)


class Processor:
    """Requests -> prompt ids and media embeddings for one model and tokenizer; see the module doc.

    `limits` are the defaults of every call (a call may pass its own); `cache_size` bounds the embedding
    cache (bridge outputs by content hash).
    """

    def __init__(self, model: MMModel, tokenizer: PreTrainedTokenizerBase, template: ChatTemplate, *,
                 limits: Limits | None = None, cache_size: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.limits = check_limits(limits, DEFAULT_LIMITS)
        self.cache = EmbeddingCache(cache_size)
        self._pieces = _Pieces(tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.llm.parameters()).device

    def limits_for(self, limits: Limits | None) -> Limits:
        return check_limits(limits, self.limits)

    # -- history ----------------------------------------------------------------------------------

    def history(self, history: Any, limits: Limits | None = None) -> History:
        """(query, response) pairs as strings, within `limits.max_history_turns` and `max_history_bytes`."""
        limits = self.limits_for(limits)
        if history is None:
            return []
        if isinstance(history, (str, bytes)):
            raise InputError("history must be a list of (query, response) pairs")
        n = len(history) if hasattr(history, "__len__") else None
        pairs = []
        try:
            for q, a in history:
                pairs.append((q, a))
                if len(pairs) > limits.max_history_turns:  # stop reading a huge (or endless) history early
                    break
        except (TypeError, ValueError):
            raise InputError("history must be a list of (query, response) pairs") from None
        if len(pairs) > limits.max_history_turns:
            what = f"{n} turns, more than" if n is not None else "more turns than"  # an iterator has no length
            raise InputError(f"the history has {what} the limit of {limits.max_history_turns} "
                             "(raise it with Limits(max_history_turns=...), --max-history-turns)")
        out: History = []
        size = 0
        for i, (q, a) in enumerate(pairs):
            q, a = check_text(f"history turn {i}", q, convert=True), check_text(f"history turn {i}", a, convert=True)
            size += len(q.encode("utf-8")) + len(a.encode("utf-8"))
            if size > limits.max_history_bytes:
                raise InputError(f"the history holds more than {limits.max_history_bytes} bytes of text, the limit "
                                 "(raise it with Limits(max_history_bytes=...), --max-history-kb)")
            out.append((q, a))
        return out

    # -- media ------------------------------------------------------------------------------------

    def prepare(self, item: Any, modality: str | None = None, *, limits: Limits | None = None,
                deadline: float | None = None) -> list[Prepared]:
        """One user item -> model items (a clip with sound gives two); the modality inferred when not given."""
        reader = self.model.modality(modality or infer_modality(item))
        return reader.prepare(item, self.limits_for(limits), deadline)

    def collect(self, media: Iterable[tuple[str, Any]], *, limits: Limits | None = None,
                deadline: float | None = None) -> list[Prepared]:
        """(modality, item or list of items) pairs -> prepared items in that order, within `config.max_media`."""
        limits = self.limits_for(limits)
        items = [p for modality, given in media for x in as_list(given)
                 for p in self.model.modality(modality).prepare(x, limits, deadline)]
        if len(items) > self.model.config.max_media:
            raise InputError(f"{len(items)} media items given (a video with sound counts as two); this model "
                             f"takes at most {self.model.config.max_media}")
        return items

    @torch.no_grad()
    def embed(self, items: Sequence[Prepared]) -> list[torch.Tensor]:
        """(Q_i, E) bridge output per item, from the cache where possible; one encoder batch per modality."""
        out: dict[int, torch.Tensor] = {}
        for name, modality in self.model.modalities.items():
            missing = []
            for i, p in enumerate(items):
                if p.modality != name:
                    continue
                hit = self.cache.get(p.key)
                if hit is None:
                    missing.append((i, p))
                else:
                    out[i] = hit
            if missing:
                embeds = modality.embed(modality.collate([p for _, p in missing], self.device))
                for (i, p), e in zip(missing, embeds):
                    self.cache.put(p.key, e)
                    out[i] = e
        return [out[i] for i in range(len(items))]

    @torch.no_grad()
    def pooled(self, items: Sequence[Any], modality: str | None = None, *,
               limits: Limits | None = None) -> torch.Tensor:
        """(B, D) mean-pooled Q-Former outputs, L2-normalised (a clip: its frames); see `MMChat.embed`."""
        limits = self.limits_for(limits)
        if not items:
            raise InputError("no items to embed")
        out = []
        for item in items:
            deadline = time.monotonic() + limits.deadline_seconds
            p = self.prepare(item, modality, limits=limits, deadline=deadline)[0]
            reader = self.model.modality(p.modality)
            tokens = reader.bridge_tokens(reader.collate([p], self.device))[0]  # (Q, D)
            out.append(torch.nn.functional.normalize(tokens.float().mean(0), dim=-1))
        return torch.stack(out)

    # -- prompts ----------------------------------------------------------------------------------

    def prompt(self, query: str, history: History, items: Sequence[Prepared],
               embeds: Sequence[torch.Tensor], max_new_tokens: int) -> list[int]:
        """Expanded prompt ids; the oldest history turns are dropped first when it is too long."""
        query = check_query(query)
        context = self.model.config.llm.max_position_embeddings
        if max_new_tokens >= context:
            raise InputError(f"max_new_tokens={short_repr(max_new_tokens)} leaves no room for the prompt: the "
                             f"model's context is {context} tokens")
        limit = context - max_new_tokens
        placeholders = [self.model.media_token_ids[p.modality] for p in items]
        extra = sum(len(e) for e in embeds) - len(embeds)  # slots that expansion adds beyond one per item
        ids, dropped = fit_history(self._pieces, self.template, history, query, placeholders, limit, extra)
        if len(ids) + extra > limit:
            raise InputError(
                f"the prompt is {len(ids) + extra} tokens; with max_new_tokens={max_new_tokens} only {limit} of the "
                f"model's {context}-token context are left. Shorten the question, use fewer media items or lower "
                "max_new_tokens."
            )
        if dropped:
            logger.info("prompt too long: dropped the %d oldest of %d history turns", dropped, len(history))
        ids, _ = expand_placeholders(ids, set(self.model.media_token_ids.values()), [len(e) for e in embeds])
        return ids
