"""BLIP-2 Q-Former: learned queries that read a frozen encoder's tokens through cross-attention.

Shape letters: B batch, N encoder tokens, Q queries, W windows, De encoder width, D Q-Former width,
H heads, Dh head width.

The layer layout follows BLIP-2 (a BERT-style post-norm transformer): every layer has self-attention
over the queries and a feed-forward block; layers whose index is a multiple of `cross_attention_every`
also cross-attend to the encoder tokens. Only the query branch exists (no text input), so the module
holds exactly the parameters that shape the query outputs.

With `window_size > 0` the encoder tokens are cut into windows and the same queries read each window
separately (SALMONN's window-level Q-Former for long audio): the output has W * Q tokens.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from encoders.weights import rename_first


@dataclass
class QFormerConfig:
    num_queries: int = 32  # learned query vectors per item (per window when window_size > 0)
    hidden_size: int = 768  # Q-Former width D
    num_layers: int = 12  # transformer layers
    num_heads: int = 12  # attention heads (hidden_size must divide evenly)
    intermediate_size: int = 3072  # feed-forward inner width
    cross_attention_every: int = 2  # layer i cross-attends when i % cross_attention_every == 0 (BLIP-2: 2)
    encoder_width: int = 1408  # width De of the encoder tokens read by cross-attention
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm epsilon
    dropout: float = 0.0  # dropout on attention probabilities and residual branches (training only)
    input_norm: bool = True  # LayerNorm on the encoder tokens before cross-attention (BLIP-2's ln_vision)
    window_size: int = 0  # >0: window-level Q-Former over windows of this many encoder tokens
    window_stride: int = 0  # step between windows; 0 means window_size (no overlap)
    # >0: a learned position embedding over this many encoder tokens, added to them after input_norm, so
    # cross-attention reads *where* a feature is, not only what (BLIP-2: 0; its EVA tokens carry enough)
    encoder_positions: int = 0
    initializer_range: float = 0.02  # std of the normal init of queries and linear weights

    def __post_init__(self) -> None:
        for name in ("num_queries", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "cross_attention_every", "encoder_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"QFormerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"QFormerConfig.hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}"
            )
        if self.window_size < 0 or self.window_stride < 0:
            raise ValueError(f"window_size/window_stride must be >= 0, got {self.window_size}/{self.window_stride}")
        if self.window_stride and not self.window_size:
            raise ValueError("window_stride is set but window_size is 0")
        if not self.window_stride:
            self.window_stride = self.window_size

    def has_cross_attention(self, layer: int) -> bool:
        return layer % self.cross_attention_every == 0


class Attention(nn.Module):
    """Multi-head attention with BERT's post-norm residual: norm(x + out(attn(x, context)))."""

    def __init__(self, dim: int, context_dim: int, num_heads: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(context_dim, dim)
        self.value = nn.Linear(context_dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, Q, D); context (B, N, Dc) or None for self-attention; mask (B, N) bool, True = attend."""
        context = x if context is None else context
        b, q_len, d = x.shape
        h = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, t.shape[1], h, d // h).transpose(1, 2)  # (B, H, L, Dh)

        q, k, v = heads(self.query(x)), heads(self.key(context)), heads(self.value(context))
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, N)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)  # (B, H, Q, Dh)
        y = y.transpose(1, 2).reshape(b, q_len, d)  # (B, Q, D)
        y = F.dropout(self.out(y), p, self.training)
        return self.norm(y + x)


class FeedForward(nn.Module):
    """BERT's feed-forward block with post-norm residual."""

    def __init__(self, dim: int, inner: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.dropout = dropout
        self.fc1 = nn.Linear(dim, inner)
        self.fc2 = nn.Linear(inner, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc2(F.gelu(self.fc1(x)))
        y = F.dropout(y, self.dropout if self.training else 0.0, self.training)
        return self.norm(y + x)


class QFormerLayer(nn.Module):
    def __init__(self, cfg: QFormerConfig, cross: bool) -> None:
        super().__init__()
        d, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.self_attn = Attention(d, d, cfg.num_heads, eps, cfg.dropout)
        self.cross_attn = Attention(d, cfg.encoder_width, cfg.num_heads, eps, cfg.dropout) if cross else None
        self.ffn = FeedForward(d, cfg.intermediate_size, eps, cfg.dropout)

    def forward(self, x: torch.Tensor, encoder_states: torch.Tensor,
                encoder_mask: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn(x)
        if self.cross_attn is not None:
            x = self.cross_attn(x, encoder_states, encoder_mask)
        return self.ffn(x)


class QFormer(nn.Module):
    """`forward(encoder_states (B, N, De), encoder_mask (B, N) | None) -> (B, Q, D)` (or (B, W*Q, D))."""

    def __init__(self, cfg: QFormerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.query_tokens = nn.Parameter(torch.zeros(1, cfg.num_queries, cfg.hidden_size))
        self.input_norm = nn.LayerNorm(cfg.encoder_width) if cfg.input_norm else nn.Identity()
        self.encoder_position = (nn.Parameter(torch.zeros(1, cfg.encoder_positions, cfg.encoder_width))
                                 if cfg.encoder_positions else None)
        self.query_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(
            QFormerLayer(cfg, cfg.has_cross_attention(i)) for i in range(cfg.num_layers)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.initializer_range
        nn.init.normal_(self.query_tokens, std=std)
        if self.encoder_position is not None:
            nn.init.normal_(self.encoder_position, std=0.5)  # comparable to the layer-normed tokens
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def windowed(self) -> bool:
        return self.config.window_size > 0

    def num_windows(self, num_tokens: int) -> int:
        """Windows covering `num_tokens` encoder tokens (the last one padded)."""
        if not self.windowed:
            return 1
        size, stride = self.config.window_size, self.config.window_stride
        return max(1, math.ceil(max(num_tokens - size, 0) / stride) + 1)

    def num_output_tokens(self, num_tokens: int) -> int:
        """Output tokens for one item with `num_tokens` valid encoder tokens."""
        return self.num_windows(num_tokens) * self.config.num_queries

    def _windows(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, De) -> (B*W, L, De) windows and their (B*W, L) mask."""
        b, n, _ = x.shape
        size, stride = self.config.window_size, self.config.window_stride
        w = self.num_windows(n)
        total = (w - 1) * stride + size
        if mask is None:
            mask = torch.ones(b, n, dtype=torch.bool, device=x.device)
        x = F.pad(x, (0, 0, 0, total - n))
        mask = F.pad(mask, (0, total - n), value=False)
        xw = x.unfold(1, size, stride).permute(0, 1, 3, 2).reshape(b * w, size, -1)  # (B*W, L, De)
        mw = mask.unfold(1, size, stride).reshape(b * w, size)  # (B*W, L)
        return xw, mw

    def forward(self, encoder_states: torch.Tensor, encoder_mask: torch.Tensor | None = None) -> torch.Tensor:
        b = encoder_states.shape[0]
        if encoder_states.shape[-1] != self.config.encoder_width:
            raise ValueError(
                f"encoder width {encoder_states.shape[-1]} does not match QFormerConfig.encoder_width="
                f"{self.config.encoder_width}"
            )
        if encoder_mask is not None:
            encoder_mask = encoder_mask.to(torch.bool)
        if self.windowed:
            encoder_states, encoder_mask = self._windows(encoder_states, encoder_mask)
        if encoder_mask is not None:
            # A window of padding alone would give NaN attention; let it attend to everything (its output
            # is dropped downstream by num_output_tokens).
            empty = ~encoder_mask.any(dim=-1, keepdim=True)
            encoder_mask = encoder_mask | empty
        context = self.input_norm(encoder_states)
        if self.encoder_position is not None:
            n = context.shape[1]
            if n > self.config.encoder_positions:
                raise ValueError(f"{n} encoder tokens; the position table holds {self.config.encoder_positions}")
            context = context + self.encoder_position[:, :n].to(context.dtype)
        x = self.query_norm(self.query_tokens.expand(context.shape[0], -1, -1))  # (B', Q, D)
        x = F.dropout(x, self.config.dropout if self.training else 0.0, self.training)
        for layer in self.layers:
            x = layer(x, context, encoder_mask)
        return x.reshape(b, -1, self.config.hidden_size)  # (B, W*Q, D)


# transformers' Blip2QFormerModel and LAVIS's `Qformer.bert` share BERT's parameter names.
_BLIP2_RENAMES = [
    (r"^(?:Qformer\.bert\.|qformer\.)?(?:layernorm|embeddings\.LayerNorm)\.", "query_norm."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.attention\.attention\.", r"layers.\1.self_attn."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.attention\.self\.", r"layers.\1.self_attn."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.self_attn.out."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.self_attn.norm."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.crossattention\.(?:attention|self)\.", r"layers.\1.cross_attn."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.crossattention\.output\.dense\.", r"layers.\1.cross_attn.out."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.crossattention\.output\.LayerNorm\.", r"layers.\1.cross_attn.norm."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.intermediate_query\.dense\.", r"layers.\1.ffn.fc1."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.output_query\.dense\.", r"layers.\1.ffn.fc2."),
    (r"^(?:Qformer\.bert\.|qformer\.)?encoder\.layer\.(\d+)\.output_query\.LayerNorm\.", r"layers.\1.ffn.norm."),
    (r"^query_tokens$", "query_tokens"),
    # BLIP-2's ln_vision on the encoder tokens: LAVIS keeps it beside the Q-Former, transformers in the vision
    # model as `post_layernorm`; here it is the Q-Former's input_norm.
    (r"^ln_vision\.", "input_norm."),
    (r"^vision_model\.post_layernorm\.", "input_norm."),
]


# Every tensor name of our QFormer that a BLIP-2 checkpoint can fill.
_QFORMER_NAME = re.compile(
    r"^(?:query_tokens|(?:input_norm|query_norm)\.(?:weight|bias)"
    r"|layers\.\d+\.(?:(?:self_attn|cross_attn)\.(?:query|key|value|out|norm)|ffn\.(?:fc1|fc2|norm))\.(?:weight|bias))$"
)


def blip2_qformer_name(key: str) -> str | None:
    """Our QFormer name for one BLIP-2 tensor name (transformers or LAVIS), None if it has none here."""
    new = rename_first(key, _BLIP2_RENAMES)
    return new if new is not None and _QFORMER_NAME.match(new) else None


def qformer_state_from_blip2(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a BLIP-2 Q-Former state dict (transformers or LAVIS names) to ours.

    Tensors with no counterpart here (the text branch, heads, other components) are left out; use
    `bridge.layouts.bridge_state_from_checkpoint` to have each of them accounted for.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = blip2_qformer_name(key)
        if new is not None:
            out[new] = value
    return out


def qformer_from_blip2(hf_qformer: nn.Module, query_tokens: torch.Tensor) -> QFormer:
    """Build our QFormer with the weights of a transformers `Blip2QFormerModel` and its `query_tokens`.

    The result equals `hf_qformer(query_embeds=query_tokens.expand(B, -1, -1),
    encoder_hidden_states=x).last_hidden_state` (no input norm: transformers keeps BLIP-2's ln_vision
    in the vision model as `post_layernorm`).
    """
    hf = hf_qformer.config
    cfg = QFormerConfig(
        num_queries=query_tokens.shape[-2],
        hidden_size=hf.hidden_size,
        num_layers=hf.num_hidden_layers,
        num_heads=hf.num_attention_heads,
        intermediate_size=hf.intermediate_size,
        cross_attention_every=hf.cross_attention_frequency,
        encoder_width=hf.encoder_hidden_size,
        layer_norm_eps=hf.layer_norm_eps,
        input_norm=False,
    )
    if hf.hidden_act != "gelu":
        raise ValueError(f"unsupported Q-Former activation {hf.hidden_act!r} (only 'gelu')")
    if getattr(hf, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are supported (queries carry no positions)")
    model = QFormer(cfg)
    state = qformer_state_from_blip2(dict(hf_qformer.state_dict()))
    state["query_tokens"] = query_tokens.detach().reshape(1, cfg.num_queries, cfg.hidden_size)
    model.load_state_dict(state, strict=True)
    return model
