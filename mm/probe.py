"""Frozen-feature probes: what an image encoder's tokens say about a scene before any bridge reads them.

Shape letters: B scenes, N encoder tokens, D encoder width, K probed attributes.

Single-shape scenes of the synthetic world are rendered, encoded once by the frozen encoder, and a small
probe (by default a low-rank linear layer over the whole token grid; or one learned query per attribute
attending over the tokens, or a linear layer on their mean) is trained on those features to predict the shape's attributes. Held-out
accuracy per attribute says what a Q-Former could read from the encoder at best: an attribute the probe
cannot read, the bridge cannot either.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from mm.synth.vocab import COLOURS, POSITIONS, SHAPES, SIZES

logger = logging.getLogger(__name__)

Renderer = Literal["train", "alt", "classic"]
Pool = Literal["linear", "attention", "mean"]
# Attribute -> its classes, in label order.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": tuple(SHAPES), "position": tuple(POSITIONS), "colour": tuple(COLOURS), "size": tuple(SIZES),
}


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(fn).parameters


def scene_source(renderer: Renderer = "train", single: bool = True,
                 ) -> tuple[Callable[[np.random.Generator], Any], Callable[[Any, np.random.Generator], Image.Image]]:
    """(sample, draw) for scenes drawn by the named renderer of the synthetic world; `single`: one shape,
    no digit (the probe's scenes), else the world's own (1-3 shapes, sometimes a digit).

    "train" is the training renderer, "alt" the independently written one kept for evaluation, "classic"
    the original grid look (the shipped model's world). Raises ValueError for a renderer the world lacks.
    """
    from mm.synth import scene as world

    classic = renderer == "classic"
    if renderer == "alt":
        try:
            from mm.synth.render_alt import render_alt as draw_fn
        except ImportError:
            raise ValueError("renderer 'alt': mm.synth.render_alt is not available in this checkout") from None
    elif classic:
        draw_fn = getattr(world, "render_classic", world.render)
    else:
        draw_fn = world.render
    sample_kw = {"classic": True} if classic and _accepts(world.sample_scene, "classic") else {}
    draw_rng = _accepts(draw_fn, "rng")

    def sample(rng: np.random.Generator) -> Any:
        s = world.sample_scene(rng, **sample_kw)
        return dataclasses.replace(s, shapes=s.shapes[:1], digit=None, digit_position=None) if single else s

    def draw(s: Any, rng: np.random.Generator) -> Image.Image:
        return draw_fn(s, rng) if draw_rng else draw_fn(s)

    return sample, draw


@dataclass
class ProbeData:
    features: torch.Tensor  # (B, N, D) float32, frozen encoder tokens
    labels: dict[str, torch.Tensor]  # attribute -> (B,) class indices
    classes: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: dict(ATTRIBUTES))


def encode_scenes(encoder: nn.Module, n: int, seed: int, renderer: Renderer = "train", batch_size: int = 64,
                  ) -> ProbeData:
    """`n` single-shape scenes from seed stream `seed`, encoded by the frozen `encoder` (any image encoder)."""
    sample, draw = scene_source(renderer)
    rng = np.random.default_rng(seed)
    feats: list[torch.Tensor] = []
    labels: dict[str, list[int]] = {k: [] for k in ATTRIBUTES}
    device = next(encoder.parameters()).device
    pixels: list[torch.Tensor] = []

    def flush() -> None:
        if pixels:
            with torch.no_grad():
                feats.append(encoder(torch.stack(pixels).to(device)).float().cpu())  # (b, N, D)
            pixels.clear()

    for _ in range(n):
        s = sample(rng)
        shape = s.shapes[0]
        for k, classes in ATTRIBUTES.items():
            labels[k].append(classes.index(getattr(shape, k)))
        pixels.append(encoder.preprocess(draw(s, rng)))
        if len(pixels) == batch_size:
            flush()
    flush()
    return ProbeData(torch.cat(feats), {k: torch.tensor(v) for k, v in labels.items()})


class AttributeProbe(nn.Module):
    """K attribute heads over frozen tokens.

    "linear": each token is projected to `rank` features and one linear layer per attribute reads all of
    them (a low-rank linear probe on the whole grid: which token holds what is visible to it). "attention":
    one learned query per attribute attends over the tokens plus learned position embeddings (as the
    Q-Former reads them), then a linear layer. "mean": a linear layer on the mean token.
    """

    def __init__(self, width: int, num_tokens: int, classes: dict[str, int], pool: Pool = "linear",
                 heads: int = 4, rank: int = 32) -> None:
        super().__init__()
        if pool not in ("linear", "attention", "mean"):
            raise ValueError(f"pool={pool!r}: expected 'linear', 'attention' or 'mean'")
        self.pool = pool
        self.names = list(classes)
        self.norm = nn.LayerNorm(width)
        if pool == "linear":
            self.reduce = nn.Linear(width, rank)
            self.heads = nn.ModuleList(nn.Linear(num_tokens * rank, n) for n in classes.values())
            return
        if pool == "attention":
            self.pos = nn.Parameter(torch.zeros(num_tokens, width))  # (N, D)
            self.queries = nn.Parameter(torch.randn(len(classes), width) * 0.02)  # (K, D)
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.heads = nn.ModuleList(nn.Linear(width, n) for n in classes.values())

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, N, D) -> attribute -> (B, classes) logits."""
        x = self.norm(tokens)
        if self.pool == "linear":
            flat = self.reduce(x).flatten(1)  # (B, N * rank)
            return {k: head(flat) for k, head in zip(self.names, self.heads)}
        if self.pool == "attention":
            x = x + self.pos
            q = self.queries.expand(x.shape[0], -1, -1)  # (B, K, D)
            pooled, _ = self.attn(q, x, x, need_weights=False)  # (B, K, D)
        else:
            pooled = x.mean(dim=1, keepdim=True).expand(-1, len(self.names), -1)  # (B, K, D)
        return {k: head(pooled[:, i]) for i, (k, head) in enumerate(zip(self.names, self.heads))}


def fit_probe(train: ProbeData, pool: Pool = "linear", steps: int = 600, batch_size: int = 256, lr: float = 2e-3,
              seed: int = 0) -> AttributeProbe:
    """Train a probe on frozen features (AdamW, cosine schedule); the features never change."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, n_tokens, width = train.features.shape
        probe = AttributeProbe(width, n_tokens, {k: len(c) for k, c in train.classes.items()}, pool)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    n = train.features.shape[0]
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        logits = probe(train.features[idx])
        loss = sum(F.cross_entropy(logits[k], train.labels[k][idx]) for k in logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return probe.eval()


@torch.no_grad()
def probe_accuracy(probe: AttributeProbe, data: ProbeData, batch_size: int = 512) -> dict[str, float]:
    """Attribute -> held-out accuracy in [0, 1]."""
    hits = {k: 0 for k in probe.names}
    for i in range(0, data.features.shape[0], batch_size):
        logits = probe(data.features[i:i + batch_size])
        for k, v in logits.items():
            hits[k] += int((v.argmax(-1) == data.labels[k][i:i + batch_size]).sum())
    return {k: h / data.features.shape[0] for k, h in hits.items()}


def probe_encoder(encoder: nn.Module, *, n_train: int = 3000, n_test: int = 1000, seed: int = 0,
                  renderers: tuple[Renderer, ...] = ("train",), pool: Pool = "linear", steps: int = 600,
                  ) -> dict[str, Any]:
    """Train a probe on scenes from the training renderer and report held-out accuracy per attribute.

    Held-out scenes come from another seed stream, once per entry of `renderers` (the probe is trained on
    the first one only, so "alt" measures transfer to a renderer it never saw). Returns a JSON-able dict:
    {"accuracy": {renderer: {attribute: acc}}, "chance": {...}, "seconds": {...}, ...}.
    """
    t0 = time.perf_counter()
    train = encode_scenes(encoder, n_train, seed, renderers[0])
    t_encode = time.perf_counter() - t0
    t0 = time.perf_counter()
    probe = fit_probe(train, pool, steps, seed=seed)
    t_fit = time.perf_counter() - t0
    accuracy = {}
    for r in renderers:
        test = encode_scenes(encoder, n_test, seed + 1_000_003, r)
        accuracy[r] = {k: round(v, 4) for k, v in probe_accuracy(probe, test).items()}
    return {
        "accuracy": accuracy,
        "train_accuracy": {k: round(v, 4) for k, v in probe_accuracy(probe, train).items()},
        "chance": {k: round(1 / len(c), 4) for k, c in ATTRIBUTES.items()},
        "pool": pool, "train_scenes": n_train, "test_scenes": n_test, "steps": steps,
        "tokens": list(train.features.shape[1:]),
        "seconds": {"encode_train": round(t_encode, 2), "fit": round(t_fit, 2)},
    }
