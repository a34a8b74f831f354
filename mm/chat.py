"""`MMChat`: what users call. A thin facade over the processor (`mm.processor`: media, prompts, the
embedding cache) and the generation engine (`mm.engine`: one path for chat, streaming and batches).

Shape letters: B batch, T tokens, Q slots of one item, E LLM width, D Q-Former width.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from encoders.media_types import MEDIA_EXTENSIONS
from mm.checkpoint import save_model
from mm.config import MMConfig
from mm.engine import Engine, Reply
from mm.limits import DEFAULT_LIMITS, Limits
from mm.media import EmbeddingCache, MediaInput, Prepared, as_list
from mm.model import MMModel
from mm.processor import History, Processor, check_batch_size, check_limits, infer_modality
from mm.processor import check_text as _text
from mm.prompt import get_template
from mm.tokenizer import add_media_tokens

logger = logging.getLogger(__name__)

# Names older code imports from here.
__all__ = ["MEDIA_EXTENSIONS", "History", "MMChat", "Reply", "_text", "check_batch_size", "infer_modality"]


class MMChat:
    """A loaded model with its tokenizer, ready to chat. Build with `mm.load(...)`.

    `limits` bounds the work one call may cause (file sizes, pixels, seconds of sound and video, history,
    the deadline); every call may pass its own `limits=` instead (a server passes its own). `cache_size`
    bridge outputs are kept by content; the keys and values of the last `prefix_cache_size` conversations
    are kept so that a follow-up prefills only its new tokens (0: off).
    """

    def __init__(self, model: MMModel, tokenizer: PreTrainedTokenizerBase, *, cache_size: int = 64,
                 limits: Limits | None = None, prefix_cache_size: int = 4) -> None:
        limits = check_limits(limits, DEFAULT_LIMITS)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = get_template(model.config.llm.template)
        model.set_media_token_ids(add_media_tokens(tokenizer))
        self.processor = Processor(model, tokenizer, self.template, limits=limits, cache_size=cache_size)
        self.engine = Engine(model, tokenizer, self.processor, prefix_cache_size=prefix_cache_size)

    @property
    def config(self) -> MMConfig:
        return self.model.config

    @property
    def limits(self) -> Limits:
        return self.processor.limits

    @property
    def cache(self) -> EmbeddingCache:
        """Bridge outputs by content hash (`hits` / `misses` count lookups)."""
        return self.processor.cache

    @property
    def stop_ids(self) -> set[int]:
        return self.engine.stop_ids

    @property
    def device(self) -> torch.device:
        return next(self.model.llm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.llm.parameters()).dtype

    # -- the processor's steps, by their older names ----------------------------------------------

    def _collect(self, image: MediaInput, audio: MediaInput, video: MediaInput = None, *,
                 limits: Limits | None = None, deadline: float | None = None) -> list[Prepared]:
        return self.processor.collect((("image", image), ("audio", audio), ("video", video)), limits=limits,
                                      deadline=deadline)

    def _embed(self, items: Sequence[Prepared]) -> list[torch.Tensor]:
        return self.processor.embed(items)

    def _prompt(self, query: str, history: History, items: Sequence[Prepared],
                embeds: Sequence[torch.Tensor], max_new_tokens: int) -> list[int]:
        return self.processor.prompt(query, history, items, embeds, max_new_tokens)

    def _history(self, history: Any, limits: Limits | None = None) -> History:
        return self.processor.history(history, limits)

    # -- chat -------------------------------------------------------------------------------------

    def respond(
        self, query: str, *, image: MediaInput = None, audio: MediaInput = None, video: MediaInput = None,
        history: Sequence[tuple[str, str]] | None = None, max_new_tokens: int = 256, temperature: float = 0.0,
        top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0, seed: int | None = None,
        limits: Limits | None = None, deadline: float | None = None,
    ) -> Iterator[Reply]:
        """The generation behind `stream_chat`, with token counts and why it stopped (for servers).

        `deadline` is a `time.monotonic()` value (default: now + `limits.deadline_seconds`): media decoding
        past it raises InputError, generation past it stops with `finish_reason="deadline"`.
        """
        return self.engine.respond(query, image=image, audio=audio, video=video, history=history,
                                   max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                   repetition_penalty=repetition_penalty, seed=seed, limits=limits, deadline=deadline)

    def stream_chat(self, query: str, **kwargs: Any) -> Iterator[tuple[str, History]]:
        """Yields (partial response, history including it) as tokens arrive; same arguments as `chat`."""
        for reply in self.engine.respond(query, **kwargs):
            yield reply.text, reply.history

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
        return self.engine.answer_batch(requests, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                        temperature=temperature, top_p=top_p, top_k=top_k,
                                        repetition_penalty=repetition_penalty, seed=seed, limits=limits,
                                        deadline=deadline)

    def chat(
        self, query: str, *, image: MediaInput = None, audio: MediaInput = None, video: MediaInput = None,
        history: Sequence[tuple[str, str]] | None = None, max_new_tokens: int = 256, temperature: float = 0.0,
        top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0, seed: int | None = None,
        limits: Limits | None = None,
    ) -> tuple[str, History]:
        """Answer `query` about `image` / `audio` / `video` (a path, bytes, PIL image, (wave, sr) pair, or a
        list). A video's frames and its sound track are both given to the model.

        Returns (response, history); pass the history (and the same media) back for a follow-up. The media
        is encoded once and cached by content, and the conversation's earlier turns are not prefilled
        again. When the history does not fit the model's context, its oldest turns are left out of the
        prompt (the returned history still holds them). `limits` replaces the model's limits for this call;
        see `respond` for the deadline.
        """
        reply = self.engine.answer(query, image=image, audio=audio, video=video, history=history,
                                   max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                   repetition_penalty=repetition_penalty, seed=seed, limits=limits)
        return reply.text, reply.history

    def caption(
        self, items: MediaInput, *, batch_size: int = 8, prompt: str | Sequence[str] | None = None,
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

        results = caption_items(self.engine, as_list(items), batch_size=batch_size, prompt=prompt, lang=lang,
                                on_error=on_error, limits=limits, **gen)
        return [r.caption for r in results]

    # -- embeddings -------------------------------------------------------------------------------

    def embed(self, items: MediaInput, modality: str | None = None, *, limits: Limits | None = None) -> torch.Tensor:
        """(B, D) mean-pooled Q-Former outputs, L2-normalised, for retrieval and clip comparison.

        Each item is decoded within `limits` (default: the model's), its deadline counted per item."""
        return self.processor.pooled(as_list(items), modality, limits=limits)

    # -- saving -----------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, *, bridge_only: bool = False) -> Path:
        """config.json + model.safetensors (+ tokenizer files), the format `mm.load(directory)` reads
        (`mm.checkpoint`). `bridge_only` keeps the trained bridge only (bridge.safetensors), for full-scale
        models whose encoders and LLM are loaded from their own checkpoints. LoRA adapters on the LLM are
        merged into its weights first (`mm.checkpoint.save_model(..., lora="apart")` keeps them apart)."""
        return save_model(directory, self.model, self.tokenizer, bridge_only=bridge_only)
