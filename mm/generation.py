"""Token-by-token generation on spliced embeddings: greedy or sampled, batched, streaming.

Shape letters: B batch, T prompt tokens, E embedding width, V vocabulary.

The prompt is prefilled once as embeddings (media slots included) and decoding continues from the
KV cache, one forward per step for the whole batch. Left padding is handled through the attention mask
and position ids.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel

from mm.errors import InputError


@dataclass
class GenerationConfig:
    max_new_tokens: int = 256  # tokens generated at most
    temperature: float = 0.0  # 0 = greedy (deterministic); >0 samples
    top_p: float = 1.0  # nucleus sampling mass (1 = off)
    top_k: int = 0  # sample among the k most likely tokens (0 = off)
    repetition_penalty: float = 1.0  # >1 discourages tokens already generated (CTRL's penalty)

    def __post_init__(self) -> None:
        # Checked here, at the one place every surface passes through: a float or a NaN that slipped in
        # would otherwise surface as a confusing torch error (or a silently empty answer) much later.
        self.max_new_tokens = _whole("max_new_tokens", self.max_new_tokens)
        if self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        self.temperature = _finite("temperature", self.temperature)
        if self.temperature < 0:
            raise InputError(f"temperature must be >= 0, got {self.temperature}")
        self.top_p = _finite("top_p", self.top_p)
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        self.top_k = _whole("top_k", self.top_k)
        if self.top_k < 0:
            raise InputError(f"top_k must be >= 0, got {self.top_k}")
        self.repetition_penalty = _finite("repetition_penalty", self.repetition_penalty)
        if self.repetition_penalty <= 0:
            raise InputError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")


def _whole(name: str, value: Any) -> int:
    """`value` as an int; floats (even 1e9), bools and strings are refused rather than rounded."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be a whole number, got {short_repr(value)}")
    return int(value)


def _finite(name: str, value: Any) -> float:
    """`value` as a finite float; NaN, infinities and ints too large for a float are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {short_repr(value)}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise InputError(f"{name} must be a finite number, got {short_repr(value)}")
    return out


def short_repr(value: Any) -> str:
    """repr(value) for an error message, shortened (and safe for huge ints)."""
    if isinstance(value, int) and value.bit_length() > 128:  # repr of a 5000-digit int raises
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


SEED_RANGE = 2**64  # torch.Generator.manual_seed takes a 64-bit seed


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A seeded generator for sampling, or None without a seed. The seed must be an int in [0, 2**64)."""
    if seed is None:
        return None
    seed = _whole("seed", seed)
    if not 0 <= seed < SEED_RANGE:
        raise InputError(f"seed must be between 0 and 2**64 - 1, got {short_repr(seed)}")
    return torch.Generator(device=device).manual_seed(seed)


def next_token(
    logits: torch.Tensor, cfg: GenerationConfig, generated: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids."""
    logits = logits.float()
    if cfg.repetition_penalty != 1.0 and generated is not None and generated.numel():
        prev = logits.gather(1, generated)
        prev = torch.where(prev > 0, prev / cfg.repetition_penalty, prev * cfg.repetition_penalty)
        logits = logits.scatter(1, generated, prev)
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / cfg.temperature
    if cfg.top_k:
        kth = logits.topk(min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the mass before it already reaches top_p (the first token always stays).
        drop = probs.cumsum(dim=-1) - probs >= cfg.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def prefill_position_ids(llm: torch.nn.Module, attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded prompt: (B, T), or what the LLM asks for (ChatGLM-6B's 2-D (B, 2, T))."""
    own = getattr(llm, "prefill_position_ids", None)
    if own is not None:
        return own(attention_mask)
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def next_position_ids(llm: torch.nn.Module, last: torch.Tensor) -> torch.Tensor:
    """Positions of the next generated token from the last ones ((B, 1), or (B, 2, 1) for 2-D positions)."""
    own = getattr(llm, "next_position_ids", None)
    return own(last) if own is not None else last + 1


@torch.no_grad()
def generate(
    llm: PreTrainedModel,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    cfg: GenerationConfig,
    stop_ids: set[int],
    pad_id: int = 0,
    vocab_limit: int | None = None,
    generator: torch.Generator | None = None,
    suppress_ids: set[int] | None = None,
    cache: DynamicCache | None = None,
    cached: int = 0,
) -> Iterator[torch.Tensor]:
    """Yields (B,) token ids per step; a finished row yields `pad_id`. Stops when all rows finished.

    `vocab_limit` masks logits of ids the tokenizer cannot decode (embedding tables are often padded);
    `suppress_ids` are never generated (media placeholders). `cache` (default: a new one) receives the
    keys and values; when it already holds the first `cached` prompt positions (a conversation's earlier
    turns, see `mm.engine.PrefixCache`), only the rest of the prompt is prefilled.
    """
    b = inputs_embeds.shape[0]
    device = inputs_embeds.device
    attention_mask = attention_mask.to(device)
    position_ids = prefill_position_ids(llm, attention_mask)
    if cache is None:
        cache = DynamicCache()
    # Without padding the LLM needs no mask: None means "every token is real" and spares it building one
    # (the same numbers, a few ms less per forward at tiny sizes).
    padded = not bool(attention_mask.all())
    out = llm(inputs_embeds=inputs_embeds[:, cached:], attention_mask=attention_mask if padded else None,
              position_ids=position_ids[..., cached:], past_key_values=cache, use_cache=True)
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    stop = torch.tensor(sorted(stop_ids), device=device, dtype=torch.long)
    generated = torch.empty(b, 0, dtype=torch.long, device=device)
    next_pos = next_position_ids(llm, position_ids[..., -1:])
    for _ in range(cfg.max_new_tokens):
        logits = out.logits[:, -1, :]  # (B, V)
        if vocab_limit is not None and vocab_limit < logits.shape[-1]:
            logits[:, vocab_limit:] = float("-inf")
        if suppress_ids:
            logits[:, [i for i in suppress_ids if i < logits.shape[-1]]] = float("-inf")
        tok = next_token(logits, cfg, generated, generator)
        tok = torch.where(finished, torch.full_like(tok, pad_id), tok)
        finished |= torch.isin(tok, stop)
        yield tok
        if bool(finished.all()):
            return
        generated = torch.cat([generated, tok[:, None]], dim=1)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(b, 1)], dim=1)
        out = llm(input_ids=tok[:, None], attention_mask=attention_mask if padded else None, position_ids=next_pos,
                  past_key_values=out.past_key_values, use_cache=True)
        next_pos = next_position_ids(llm, next_pos)
