"""`MMChat`: what users call. Loading, saving, chat with history, streaming, captions, embeddings.

Shape letters: B batch, T tokens, Q slots of one item, E LLM width, D Q-Former width.
"""

from __future__ import annotations

import logging
import numbers
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerBase

from encoders.video_io import VIDEO_EXTENSIONS
from mm.errors import InputError
from mm.generation import GenerationConfig, generate, make_generator, short_repr
from mm.limits import DEFAULT_LIMITS, Limits
from mm.media import EmbeddingCache, Prepared, as_list, batch_inputs, prepare, prepare_media
from mm.model import MODALITIES, MMModel
from mm.prompt import expand_placeholders, fit_history, get_template, stop_token_ids
from mm.tokenizer import add_media_tokens

logger = logging.getLogger(__name__)

History = list[tuple[str, str]]


@dataclass
class Reply:
    text: str  # the response so far
    history: History  # history including this response
    prompt_tokens: int  # prompt length, media slots included
    completion_tokens: int  # tokens generated so far
    # None while streaming; "stop" (end token), "length" (max_new_tokens) or "deadline" (the request's
    # deadline, `Limits.deadline_seconds` by default, passed: the answer so far is cut short)
    finish_reason: str | None


class MMChat:
    """A loaded model with its tokenizer, ready to chat. Build with `mm.load(...)`.

    `limits` bounds the work one call may cause (file sizes, pixels, seconds of sound and video, history,
    the deadline); every call may pass its own `limits=` instead (a server passes its own).
    """

    def __init__(self, model: MMModel, tokenizer: PreTrainedTokenizerBase, *, cache_size: int = 64,
                 limits: Limits | None = None) -> None:
        self.limits = self._limits(limits, DEFAULT_LIMITS)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = get_template(model.config.llm.template)
        model.set_media_token_ids(add_media_tokens(tokenizer))
        self.cache = EmbeddingCache(cache_size)
        self.stop_ids = stop_token_ids(tokenizer, self.template)
        eos = getattr(model.llm.generation_config, "eos_token_id", None)
        self.stop_ids.update([eos] if isinstance(eos, int) else (eos or []))

    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.llm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.llm.parameters()).dtype

    @staticmethod
    def _limits(limits: Limits | None, default: Limits) -> Limits:
        if limits is None:
            return default
        if not isinstance(limits, Limits):
            raise InputError(f"limits must be an mm.limits.Limits, got {type(limits).__name__}")
        return limits

    # -- media ------------------------------------------------------------------------------------

    def _collect(self, image: Any, audio: Any, video: Any = None, *, limits: Limits | None = None,
                 deadline: float | None = None) -> list[Prepared]:
        kw = {"limits": self._limits(limits, self.limits), "deadline": deadline}
        items = [prepare(self.model, "image", x, **kw) for x in as_list(image)]
        items += [prepare(self.model, "audio", x, **kw) for x in as_list(audio)]
        items += [p for x in as_list(video) for p in prepare_media(self.model, "video", x, **kw)]
        if len(items) > self.config.max_media:
            raise InputError(f"{len(items)} media items given (a video with sound counts as two); this model "
                             f"takes at most {self.config.max_media}")
        return items

    @torch.no_grad()
    def _embed(self, items: Sequence[Prepared]) -> list[torch.Tensor]:
        """(Q_i, E) bridge output per item, from the cache where possible; one encoder batch per modality."""
        out: dict[int, torch.Tensor] = {}
        for modality in MODALITIES:
            todo = [(i, p) for i, p in enumerate(items) if p.modality == modality]
            missing = []
            for i, p in todo:
                hit = self.cache.get(p.key)
                if hit is None:
                    missing.append((i, p))
                else:
                    out[i] = hit
            if missing:
                inputs = batch_inputs(self.model, modality, [p for _, p in missing], self.device)
                embeds = self.model.embed_media(modality, inputs)
                for (i, p), e in zip(missing, embeds):
                    self.cache.put(p.key, e)
                    out[i] = e
        return [out[i] for i in range(len(items))]

    # -- prompts ----------------------------------------------------------------------------------

    def _prompt(self, query: str, history: History, items: Sequence[Prepared],
                embeds: Sequence[torch.Tensor], max_new_tokens: int) -> list[int]:
        """Expanded prompt ids; the oldest history turns are dropped first when it is too long."""
        query = _text("the question", query)
        if not query.strip():
            raise InputError("the question is empty")
        context = self.config.llm.max_position_embeddings
        if max_new_tokens >= context:
            raise InputError(f"max_new_tokens={short_repr(max_new_tokens)} leaves no room for the prompt: the "
                             f"model's context is {context} tokens")
        limit = context - max_new_tokens
        placeholders = [self.model.media_token_ids[p.modality] for p in items]
        extra = sum(len(e) for e in embeds) - len(embeds)  # slots that expansion adds beyond one per item
        ids, dropped = fit_history(self.tokenizer, self.template, history, query, placeholders, limit, extra)
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

    def _history(self, history: Any, limits: Limits | None = None) -> History:
        """(query, response) pairs as strings, within `limits.max_history_turns` and `max_history_bytes`."""
        limits = self._limits(limits, self.limits)
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
            q, a = _text(f"history turn {i}", q, convert=True), _text(f"history turn {i}", a, convert=True)
            size += len(q.encode("utf-8")) + len(a.encode("utf-8"))
            if size > limits.max_history_bytes:
                raise InputError(f"the history holds more than {limits.max_history_bytes} bytes of text, the limit "
                                 "(raise it with Limits(max_history_bytes=...), --max-history-kb)")
            out.append((q, a))
        return out

    # -- chat -------------------------------------------------------------------------------------

    def respond(
        self, query: str, *, image: Any = None, audio: Any = None, video: Any = None, history: Any = None,
        max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
        repetition_penalty: float = 1.0, seed: int | None = None, limits: Limits | None = None,
        deadline: float | None = None,
    ) -> Iterator[Reply]:
        """The generation behind `stream_chat`, with token counts and why it stopped (for servers).

        `deadline` is a `time.monotonic()` value (default: now + `limits.deadline_seconds`): media decoding
        past it raises InputError, generation past it stops with `finish_reason="deadline"`.
        """
        limits = self._limits(limits, self.limits)
        if deadline is None:
            deadline = time.monotonic() + limits.deadline_seconds
        cfg = GenerationConfig(max_new_tokens, temperature, top_p, top_k, repetition_penalty)
        generator = make_generator(seed, self.device)
        hist = self._history(history, limits)
        if not _text("the question", query).strip():
            raise InputError("the question is empty")  # before any media is decoded
        items = self._collect(image, audio, video, limits=limits, deadline=deadline)
        embeds = self._embed(items)
        ids = self._prompt(query, hist, items, embeds, cfg.max_new_tokens)
        input_ids = torch.tensor([ids], device=self.device)
        media = torch.cat(embeds).to(self.dtype) if embeds else None
        with torch.no_grad():
            inputs_embeds = self.model.splice(input_ids, media)
        tokens: list[int] = []
        text = ""
        finish = "length"
        for tok in self._generate(inputs_embeds, torch.ones_like(input_ids), cfg, generator):
            t = int(tok[0])
            if t in self.stop_ids:
                finish = "stop"
                break
            if time.monotonic() > deadline:
                finish = "deadline"
                logger.warning("the request's deadline passed after %d generated tokens: answer cut short",
                               len(tokens))
                break
            tokens.append(t)
            new = self.tokenizer.decode(tokens, skip_special_tokens=True)
            if new.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            if new != text:
                text = new
                yield Reply(text, [*hist, (query, text)], len(ids), len(tokens), None)
        final = self.tokenizer.decode(tokens, skip_special_tokens=True)
        yield Reply(final, [*hist, (query, final)], len(ids), len(tokens), finish)

    def stream_chat(self, query: str, **kwargs: Any) -> Iterator[tuple[str, History]]:
        """Yields (partial response, history including it) as tokens arrive; same arguments as `chat`."""
        for reply in self.respond(query, **kwargs):
            yield reply.text, reply.history

    def _generate(self, embeds: torch.Tensor, mask: torch.Tensor, cfg: GenerationConfig,
                  generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        return generate(self.model.llm, embeds, mask, cfg, self.stop_ids, pad_id=self.tokenizer.pad_token_id or 0,
                        vocab_limit=len(self.tokenizer), generator=generator,
                        suppress_ids=set(self.model.media_token_ids.values()))

    @torch.no_grad()
    def answer_batch(
        self, requests: Sequence[tuple[str, History, Sequence[Prepared]]], *, batch_size: int = 16,
        max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
        repetition_penalty: float = 1.0, seed: int | None = None, limits: Limits | None = None,
        deadline: float | None = None,
    ) -> list[str]:
        """Answers for many (query, history, prepared media) requests: left-padded batches, one forward
        per step for the whole batch. Under greedy decoding each answer equals what `chat` gives.

        `deadline` (a `time.monotonic()` value, default none: the media is already decoded) cuts the
        generation short when it passes; the answers so far are returned and a warning is logged."""
        cfg = GenerationConfig(max_new_tokens, temperature, top_p, top_k, repetition_penalty)
        check_batch_size(batch_size)
        generator = make_generator(seed, self.device)
        limits = self._limits(limits, self.limits)
        requests = [(q, self._history(h, limits), items) for q, h, items in requests]
        pad = self.tokenizer.pad_token_id or 0
        answers: list[str] = []
        for start in range(0, len(requests), batch_size):
            chunk = requests[start:start + batch_size]
            rows, media = [], []
            for query, history, items in chunk:
                embeds = self._embed(items)
                rows.append(self._prompt(query, history, items, embeds, cfg.max_new_tokens))
                media.extend(embeds)
            t = max(map(len, rows))
            ids = torch.full((len(rows), t), pad, dtype=torch.long, device=self.device)
            mask = torch.zeros_like(ids)
            for i, r in enumerate(rows):
                ids[i, t - len(r):] = torch.tensor(r, device=self.device)
                mask[i, t - len(r):] = 1
            embeds = self.model.splice(ids, torch.cat(media).to(self.dtype) if media else None)
            out: list[list[int]] = [[] for _ in rows]
            done = [False] * len(rows)
            for step in self._generate(embeds, mask, cfg, generator):
                for i, tok in enumerate(step.tolist()):
                    if done[i] or tok in self.stop_ids:
                        done[i] = True
                    else:
                        out[i].append(tok)
                if deadline is not None and time.monotonic() > deadline and not all(done):
                    logger.warning("the request's deadline passed: %d answers cut short", done.count(False))
                    break
            answers.extend(self.tokenizer.decode(o, skip_special_tokens=True) for o in out)
        return answers

    def chat(
        self, query: str, *, image: Any = None, audio: Any = None, video: Any = None, history: Any = None,
        max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
        repetition_penalty: float = 1.0, seed: int | None = None, limits: Limits | None = None,
    ) -> tuple[str, History]:
        """Answer `query` about `image` / `audio` / `video` (a path, bytes, PIL image, (wave, sr) pair, or a
        list). A video's frames and its sound track are both given to the model.

        Returns (response, history); pass the history (and the same media) back for a follow-up. The media
        is encoded once and cached by content. When the history does not fit the model's context, its
        oldest turns are left out of the prompt (the returned history still holds them). `limits` replaces
        the model's limits for this call; see `respond` for the deadline.
        """
        (reply,) = deque(self.respond(query, image=image, audio=audio, video=video, history=history,
                                      max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                      top_k=top_k, repetition_penalty=repetition_penalty, seed=seed,
                                      limits=limits), maxlen=1)
        return reply.text, reply.history

    def caption(
        self, items: Any, *, batch_size: int = 8, prompt: str | Sequence[str] | None = None,
        lang: str = "en", on_error: str = "raise", limits: Limits | None = None, **gen: Any,
    ) -> list[str | None]:
        """One caption per item (images, sounds and clips may be mixed; order is kept), generated in batches.

        `prompt` is one request for every item or one per item; by default "Describe the image." /
        "Describe the sound." / "Describe the clip." in `lang` ("en" or "zh"). An unreadable item raises
        InputError (`on_error="raise"`) or gets None and a logged warning (`on_error="skip"`; use
        `mm.captioning.caption_items` for the error messages). `gen` takes the generation settings of `chat`.
        Each item is decoded within `limits` (default: the model's), its deadline counted per item.
        """
        from mm.captioning import caption_items

        results = caption_items(self, as_list(items), batch_size=batch_size, prompt=prompt, lang=lang,
                                on_error=on_error, limits=limits, **gen)
        return [r.caption for r in results]

    # -- embeddings -------------------------------------------------------------------------------

    @torch.no_grad()
    def embed(self, items: Any, modality: str | None = None, *, limits: Limits | None = None) -> torch.Tensor:
        """(B, D) mean-pooled Q-Former outputs, L2-normalised, for retrieval and clip comparison.

        Each item is decoded within `limits` (default: the model's), its deadline counted per item."""
        limits = self._limits(limits, self.limits)
        items = as_list(items)
        if not items:
            raise InputError("no items to embed")
        out = []
        for item in items:
            m = modality or infer_modality(item)
            deadline = time.monotonic() + limits.deadline_seconds
            p = prepare_media(self.model, m, item, limits=limits, deadline=deadline)[0]  # a clip: its frames
            inputs = batch_inputs(self.model, p.modality, [p], self.device)
            tokens = self.model.bridge_tokens(p.modality, inputs)[0]  # (Q, D)
            out.append(torch.nn.functional.normalize(tokens.float().mean(0), dim=-1))
        return torch.stack(out)

    # -- saving -----------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, *, bridge_only: bool = False) -> Path:
        """config.json + model.safetensors (+ tokenizer files). `bridge_only` keeps the trained bridge only,
        for full-scale models whose encoders and LLM are loaded from their own checkpoints."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory / "config.json")
        state = self.model.bridge_state_dict() if bridge_only else self.model.state_dict()
        if not bridge_only and self.config.llm.arch != "glm":
            # An LLM that LLMConfig cannot rebuild is saved in its own transformers format.
            self.model.llm.save_pretrained(directory / "llm")
            self.tokenizer.save_pretrained(directory / "llm")
            state = {k: v for k, v in state.items() if not k.startswith("llm.")}
        state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
        save_file(state, str(directory / ("bridge.safetensors" if bridge_only else "model.safetensors")))
        self.tokenizer.save_pretrained(directory)
        return directory


def _text(what: str, value: Any, *, convert: bool = False) -> str:
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


def check_batch_size(batch_size: Any) -> int:
    """`batch_size` must be a whole number >= 1 (range() would fail on 0 and silently do nothing below)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InputError(f"batch_size must be a whole number >= 1, got {short_repr(batch_size)}")
    return int(batch_size)


MEDIA_EXTENSIONS = {
    "image": {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"},
    "audio": {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac"},
    "video": VIDEO_EXTENSIONS,
}


def infer_modality(item: Any) -> str:
    """"image", "audio" or "video" from the item's type or file extension."""
    from PIL import Image

    if isinstance(item, Image.Image):
        return "image"
    if isinstance(item, tuple) and len(item) == 2:
        return "audio"
    if isinstance(item, (str, Path)):
        suffix = Path(item).suffix.lower()
        for modality, exts in MEDIA_EXTENSIONS.items():
            if suffix in exts:
                return modality
        raise InputError(f"{item}: cannot tell the media type from the extension {suffix!r}")
    if isinstance(item, torch.Tensor) and item.ndim == 1:
        return "audio"
    if hasattr(item, "ndim") and item.ndim == 1:
        return "audio"
    return "image"
