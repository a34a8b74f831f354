"""ChatGLM-6B (v1), the LLM of VisualGLM-6B, written from the published architecture.

Shape letters: B batch, T new tokens, S cached + new tokens, H heads, D head dim, R = D / 2 rotary width,
E model width, V vocabulary.

What the published code does (THUDM's `modeling_chatglm.py`, SAT's `chatglm_model.py`), as built here:
- Pre-LayerNorm blocks with GLM's residual: the *normed* input, scaled by alpha = sqrt(2 * num_layers), is
  what the sublayer output is added to: `h = ln(x); x = h * alpha + attn(h)`, and the same for the MLP.
- `query_key_value` (with bias) is packed per head: its output is viewed (..., H, 3D) and split q | k | v.
- 2-D rotary positions: q and k of each head are cut into two halves of R; the first half is rotated by
  the position id, the second by the block position id (rotate-half style, base 10000, frequencies over R).
  Context tokens have positions 0..c-1 and block 0; <sop> and every generated token keep the position of
  the [gMASK] (c - 1) and count blocks 1, 2, 3, ...
- Prefix attention: context tokens (block 0) see each other in both directions; everything else is causal.
- Scores: the published code divides q by sqrt(D) * (layer + 1) and multiplies the scores by (layer + 1)
  again, in fp32, before the softmax. That is an fp16 overflow guard and cancels exactly, so this computes
  softmax(q k^T / sqrt(D)) with SDPA (whose fused kernels keep the softmax in fp32).
- GELU is the tanh approximation; a final LayerNorm; `lm_head` has no bias.

Left padding: positions count real tokens only (SAT's `get_position_ids` subtracts the pad length), so a
padded row computes exactly what it computes alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from transformers import DynamicCache, GenerationConfig
from transformers.modeling_outputs import CausalLMOutputWithPast

from mm.chatglm_v1.config import ChatGLMv1Config

Rope = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # cos/sin by position, by block


def rotary_tables(positions: torch.Tensor, dim: int, base: float = 10000.0,
                  fp16_angles: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (B, 1, T, dim) for integer positions (B, T), in the rotate-half layout.

    With `fp16_angles`, inverse frequencies, positions and angles are rounded to fp16 as THUDM's HF code
    computes them (an fp16 product of two fp16 numbers is their exact fp32 product, rounded).
    """
    inv_freq = 1.0 / base ** (torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    pos = positions.float()
    if fp16_angles:
        inv_freq, pos = inv_freq.half().float(), pos.half().float()
    angles = pos[..., None] * inv_freq  # (B, T, dim/2)
    if fp16_angles:
        angles = angles.half().float()
    angles = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, T, dim)
    cos, sin = angles.cos(), angles.sin()
    if fp16_angles:
        cos, sin = cos.half().float(), sin.half().float()
    return cos, sin


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def apply_2d_rotary(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """(B, H, T, D): first half rotated by positions, second half by block positions."""
    cos_p, sin_p, cos_b, sin_b = rope
    first, second = x.chunk(2, dim=-1)  # (B, H, T, R) each
    return torch.cat([_rotate(first, cos_p, sin_p), _rotate(second, cos_b, sin_b)], dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, config: ChatGLMv1Config, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=True)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, bias=True)

    def forward(self, x: torch.Tensor, rope: Rope, mask: torch.Tensor, cache: DynamicCache | None) -> torch.Tensor:
        b, t, e = x.shape
        qkv = self.query_key_value(x).view(b, t, self.num_heads, 3 * self.head_dim)  # packed per head
        q, k, v = (z.transpose(1, 2) for z in qkv.split(self.head_dim, dim=-1))  # (B, H, T, D) each
        q, k = apply_2d_rotary(q, rope), apply_2d_rotary(k, rope)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (B, H, S, D)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.head_dim ** -0.5)  # (B, H, T, D)
        return self.dense(out.transpose(1, 2).reshape(b, t, e))


class MLP(nn.Module):
    def __init__(self, config: ChatGLMv1Config) -> None:
        super().__init__()
        self.dense_h_to_4h = nn.Linear(config.hidden_size, config.inner_hidden_size, bias=True)
        self.dense_4h_to_h = nn.Linear(config.inner_hidden_size, config.hidden_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x), approximate="tanh"))


class GLMBlock(nn.Module):
    def __init__(self, config: ChatGLMv1Config, layer_idx: int) -> None:
        super().__init__()
        self.alpha = (2 * config.num_layers) ** 0.5
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.attention = SelfAttention(config, layer_idx)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, rope: Rope, mask: torch.Tensor, cache: DynamicCache | None) -> torch.Tensor:
        h = self.input_layernorm(x)
        x = h * self.alpha + self.attention(h, rope, mask, cache)
        h = self.post_attention_layernorm(x)
        return h * self.alpha + self.mlp(h)


class ChatGLMv1Model(nn.Module):
    """Embeddings, blocks and the final LayerNorm (the `transformer.*` tensors of both layouts)."""

    def __init__(self, config: ChatGLMv1Config) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(GLMBlock(config, i) for i in range(config.num_layers))
        self.final_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)

    def forward(self, x: torch.Tensor, rope: Rope, mask: torch.Tensor, cache: DynamicCache | None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, rope, mask, cache)
        return self.final_layernorm(x)


class ChatGLMv1ForCausalLM(nn.Module):
    """ChatGLM-6B with its output layer; tensor names follow THUDM's transformers checkpoints."""

    def __init__(self, config: ChatGLMv1Config) -> None:
        super().__init__()
        self.config = config
        self.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id)
        self.transformer = ChatGLMv1Model(config)
        self.lm_head = (None if config.tie_word_embeddings
                        else nn.Linear(config.hidden_size, config.vocab_size, bias=False))

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.word_embeddings.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.transformer.word_embeddings.weight.device

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.word_embeddings

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head if self.lm_head is not None else self.transformer.word_embeddings

    # -- positions ---------------------------------------------------------------------------------

    @staticmethod
    def _positions(real: torch.Tensor, ctx: torch.Tensor, mask_pos: torch.Tensor) -> torch.Tensor:
        """(B, 2, T) from real-token flags (B, T), context lengths and [gMASK] positions (B,), both
        counted over real tokens. Padding gets zeros."""
        idx = real.long().cumsum(-1) - 1  # (B, T) index among real tokens
        in_ctx = idx < ctx[:, None]
        pos = torch.where(in_ctx, idx, mask_pos[:, None])
        block = torch.where(in_ctx, torch.zeros_like(idx), idx - ctx[:, None] + 1)
        return torch.stack([pos, block], dim=1).masked_fill(~real[:, None], 0)

    def prefill_position_ids(self, attention_mask: torch.Tensor,
                             context_lengths: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """2-D position ids (B, 2, T) for a (left-)padded prompt; `attention_mask` (B, T) is 1 for real tokens.

        `context_lengths` counts each row's real tokens before <sop>; by default the prompt ends with
        <sop>, so the context is every real token but the last. The [gMASK] is taken to be the last
        context token (where ChatGLM's formats put it).
        """
        real = attention_mask.bool()
        n = real.sum(-1)
        if context_lengths is None:
            ctx = n - 1
        else:
            ctx = torch.as_tensor(context_lengths, dtype=torch.long, device=real.device).reshape(-1)
            if ctx.shape != n.shape or bool((ctx < 0).any()) or bool((ctx > n).any()):
                raise ValueError(f"context_lengths {ctx.tolist()} must give 0..n for rows of {n.tolist()} real tokens")
        return self._positions(real, ctx, (ctx - 1).clamp(min=0))

    def next_position_ids(self, prev: torch.Tensor) -> torch.Tensor:
        """Position ids (B, 2, 1) of the token after `prev` (B, 2, 1): same position, next block position."""
        out = prev.clone()
        out[:, 1] += 1
        return out

    def position_ids_from_input_ids(self, input_ids: torch.Tensor,
                                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """2-D position ids as the published code derives them from token ids: the context ends at the first
        <sop> (a row without one is all context), the mask position is that of [gMASK], else [MASK], else
        the last context token. Indices count real tokens only."""
        real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        idx = real.long().cumsum(-1) - 1
        far = input_ids.shape[1]

        def first(token_id: int) -> torch.Tensor:  # (B,) real-token index of the first occurrence, or `far`
            return torch.where((input_ids == token_id) & real, idx, far).min(-1).values

        ctx = torch.minimum(first(self.config.bos_token_id), real.sum(-1))
        g, m = first(self.config.gmask_token_id), first(self.config.mask_token_id)
        mask_pos = torch.where(g < far, g, torch.where(m < far, m, (ctx - 1).clamp(min=0)))
        return self._positions(real, ctx, mask_pos)

    @staticmethod
    def _attention_mask(real: torch.Tensor, block: torch.Tensor, past: int) -> torch.Tensor:
        """Allowed (query, key) pairs (B, 1, T, S): real keys, causally or both in the context (block 0)."""
        b, s = real.shape
        t = block.shape[1]
        causal = torch.arange(s, device=real.device)[None, :] <= torch.arange(past, past + t, device=real.device)[:, None]
        q_ctx = block == 0  # (B, T)
        # Cached keys precede every query, so causality already decides them.
        k_ctx = torch.cat([q_ctx.new_zeros(b, past), q_ctx], dim=1)  # (B, S)
        allowed = real[:, None, :] & (causal | (q_ctx[:, :, None] & k_ctx[:, None, :]))  # (B, T, S)
        # Padding queries may look anywhere: their outputs are never used, and an empty row would be NaN.
        allowed |= ~real[:, past:, None]
        return allowed[:, None]

    # -- forward -----------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: DynamicCache | None = None,
        use_cache: bool = False,
        labels: torch.Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> CausalLMOutputWithPast:
        """Logits (B, T, V) (the last `logits_to_keep` positions when > 0), the cache, and with `labels`
        (B, T) the next-token loss (labels shifted inside, -100 ignored).

        `attention_mask` (B, S) is 1 for real tokens, 0 for left padding, over cached + new tokens.
        `position_ids` (B, 2, T): positions and block positions; when absent on a prefill they come from
        `input_ids` (`position_ids_from_input_ids`) or, for embeddings, `prefill_position_ids`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.transformer.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, E)
        b, t = x.shape[:2]
        cache = past_key_values if past_key_values is not None else (DynamicCache() if use_cache else None)
        past = cache.get_seq_length() if cache is not None else 0
        if attention_mask is None:
            attention_mask = torch.ones(b, past + t, dtype=torch.bool, device=x.device)
        real = attention_mask.to(x.device).bool()
        if real.shape != (b, past + t):
            raise ValueError(f"attention_mask {tuple(real.shape)} must cover cached + new tokens ({b}, {past + t})")
        if position_ids is None:
            if past:
                raise ValueError("decoding from a cache needs position_ids (see next_position_ids)")
            position_ids = (self.prefill_position_ids(real) if input_ids is None
                            else self.position_ids_from_input_ids(input_ids, real))
        if position_ids.dim() != 3 or position_ids.shape[1] != 2 or position_ids.shape[2] != t:
            raise ValueError(f"ChatGLM-6B takes 2-D position ids of shape (B, 2, T) = ({b}, 2, {t}), got "
                             f"{tuple(position_ids.shape)}; build them with prefill_position_ids / next_position_ids")
        position_ids = position_ids.to(x.device)
        cfg = self.config
        rope = (*rotary_tables(position_ids[:, 0], cfg.rotary_dim, cfg.rotary_base, cfg.rope_fp16_angles),
                *rotary_tables(position_ids[:, 1], cfg.rotary_dim, cfg.rotary_base, cfg.rope_fp16_angles))
        rope = tuple(r.to(x.dtype) for r in rope)
        hidden = self.transformer(x, rope, self._attention_mask(real, position_ids[:, 1], past), cache)
        if logits_to_keep:
            if labels is not None:
                raise ValueError("labels need the logits of every position (logits_to_keep=0)")
            hidden = hidden[:, -logits_to_keep:]
        logits = F.linear(hidden, self.get_output_embeddings().weight)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                   labels[:, 1:].to(logits.device).reshape(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=cache)

    # -- saving ------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> None:
        """`config.json` + `model.safetensors` in THUDM's tensor names (what `load_chatglm_v1` reads)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.config.to_hf_dict(), indent=2))
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()},
                  str(directory / "model.safetensors"), metadata={"format": "pt"})
