"""Stage 0 for the tiny image encoder, with the world's known truth: per-region attribute prediction.

Shape letters: B scenes, N encoder tokens (a CLS, then a G x G grid), D encoder width, R regions (the
3x3 grid, 9), A attributes (shape, colour, size, digit), L caption tokens.

Captions name every object's shape, colour, size and place, but a contrastive loss over a batch only asks
the pooled image to be closer to its caption than to the others': with 4 shapes x 6 colours x 2 sizes x 9
places, colour and place already separate most captions, and the 64 px tiny ViT trained that way read
shape at 72% from its frozen tokens (a probe here: about 30%). Here two throw-away heads use the truth:
a linear layer over the whole token grid predicts, for each of the R regions, what is there (its shape,
colour, size or "nothing", and digit), and one classifier shared by all grid tokens predicts what covers
each token (shape, colour, size or background). The heads are dropped afterwards; the encoder is then a pretrained backbone, frozen as a downloaded one would be. The caption contrastive loss can be added (`objective="both"`) or used alone
(`"contrastive"`, today's stage 0) to compare.

Scenes are drawn fresh every epoch from `(seed, epoch, index)`, so data order and content are a pure
function of the seed and training resumes exactly (the shared trainer, `mm.train.trainer.train`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from transformers import PreTrainedTokenizerBase

from mm.probe import Renderer, scene_source
from mm.synth.vocab import COLOURS, POSITIONS, SHAPES, SIZES
from mm.train.contrastive import ContrastiveHead, TextTower
from mm.train.trainer import TrainConfig, make_accelerator, train

logger = logging.getLogger(__name__)

Objective = Literal["attributes", "contrastive", "both"]
REGIONS = tuple(POSITIONS)
# Attribute -> its classes; index 0 of every target is "nothing of this kind in the region".
TARGETS: dict[str, tuple[str, ...]] = {
    "shape": tuple(SHAPES), "colour": tuple(COLOURS), "size": tuple(SIZES), "digit": tuple(str(d) for d in range(10)),
}


def scene_targets(scene: Any) -> torch.Tensor:
    """(R, A) class indices: per region, 0 for nothing, else 1 + the index of what is there."""
    t = torch.zeros(len(REGIONS), len(TARGETS), dtype=torch.long)
    for s in scene.shapes:
        r = REGIONS.index(s.position)
        for a, (k, classes) in enumerate(TARGETS.items()):
            if k != "digit":
                t[r, a] = 1 + classes.index(getattr(s, k))
    if scene.digit is not None and scene.digit_position is not None:
        t[REGIONS.index(scene.digit_position), list(TARGETS).index("digit")] = 1 + scene.digit
    return t


DENSE = ("shape", "colour", "size")  # what each grid token is told about the shape covering it


def _centre_radius(scene: Any, k: int) -> tuple[float, float, float]:
    """Centre (x, y) and radius of shape `k` as fractions of the canvas (scenes with or without x/y)."""
    s = scene.shapes[k]
    if hasattr(s, "x") and hasattr(s, "radius"):
        return float(s.x), float(s.y), float(s.radius)
    row, col = divmod(REGIONS.index(s.position), 3)
    jx, jy = scene.jitter[k] if getattr(scene, "jitter", None) else (0.0, 0.0)
    return (col + 0.5 + jx) / 3, (row + 0.5 + jy) / 3, (0.45 if s.size == "large" else 0.24) / 3


def token_targets(scene: Any, grid: int) -> torch.Tensor:
    """(grid * grid, len(DENSE)) class indices: per cell of the token grid, 0 for background, else 1 + the
    index of the covering shape's attribute (a cell counts as covered when its centre lies well inside)."""
    t = torch.zeros(grid * grid, len(DENSE), dtype=torch.long)
    centres = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    for k, s in enumerate(scene.shapes):
        x, y, r = _centre_radius(scene, k)
        inside = ((xx - x) ** 2 + (yy - y) ** 2).flatten() < (0.8 * r) ** 2
        inside[int(min(y, 0.999) * grid) * grid + int(min(x, 0.999) * grid)] = True  # the centre's cell always
        for a, name in enumerate(DENSE):
            t[inside, a] = 1 + TARGETS[name].index(getattr(s, name))
    return t


@dataclass
class SceneBatch:
    pixels: torch.Tensor  # (B, 3, H, W)
    targets: torch.Tensor  # (B, R, A)
    dense: torch.Tensor  # (B, G*G, 3) per grid token: shape, colour, size of what covers it
    ids: torch.Tensor | None = None  # (B, L) caption tokens, for the contrastive term
    mask: torch.Tensor | None = None  # (B, L) bool

    def to(self, device: torch.device) -> SceneBatch:
        ids = None if self.ids is None else self.ids.to(device)
        mask = None if self.mask is None else self.mask.to(device)
        return SceneBatch(self.pixels.to(device), self.targets.to(device), self.dense.to(device), ids, mask)

    @property
    def num_tokens(self) -> int:  # the trainer's throughput counter: scenes per second
        return int(self.pixels.shape[0])


class SceneDataset:
    """`size` scenes per epoch, each drawn from `(seed, epoch, index)`: (pixels, targets, caption | None)."""

    def __init__(self, encoder: Any, size: int, seed: int = 0, renderer: Renderer = "train",
                 captions: bool = False) -> None:
        self.encoder = encoder
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.captions = captions
        self._sample, self._draw = scene_source(renderer, single=False)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str | None]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        scene = self._sample(rng)
        pixels = self.encoder.preprocess(self._draw(scene, rng))
        caption = None
        if self.captions:
            from mm.synth.text import caption_scene

            caption = caption_scene(scene, "en" if rng.random() < 0.5 else "zh")
        grid = math.isqrt(self.encoder.num_tokens - 1)  # tokens after the CLS form a square grid
        return pixels, scene_targets(scene), token_targets(scene, grid), caption


class SceneCollator:
    def __init__(self, tokenizer: PreTrainedTokenizerBase | None = None, max_len: int = 96) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len

    def __call__(self, items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, str | None]]) -> SceneBatch:
        pixels, targets, dense = (torch.stack([it[j] for it in items]) for j in range(3))
        if self.tokenizer is None or items[0][3] is None:
            return SceneBatch(pixels, targets, dense)
        enc = self.tokenizer([it[3] for it in items], padding=True, truncation=True, max_length=self.max_len,
                             return_tensors="pt", add_special_tokens=False)
        return SceneBatch(pixels, targets, dense, enc["input_ids"], enc["attention_mask"].bool())


class RegionHeads(nn.Module):
    """Linear heads over the whole token grid: every token is projected to a few features, and one linear
    layer reads all of them into per-region logits, so what is where must be written into the tokens of
    that place (a one-query attention pool here trained too slowly: it first has to learn where to look)."""

    def __init__(self, width: int, num_tokens: int, rank: int = 32) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.reduce = nn.Linear(width, rank)
        self.sizes = [1 + len(c) for c in TARGETS.values()]
        self.out = nn.Linear(num_tokens * rank, len(REGIONS) * sum(self.sizes))

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, N, D) tokens, (B, R, A) targets -> mean cross-entropy over regions and attributes."""
        x = self.reduce(self.norm(tokens)).flatten(1)  # (B, N * rank)
        logits = self.out(x).float().view(x.shape[0], len(REGIONS), -1)  # (B, R, sum of classes)
        losses = [F.cross_entropy(part.flatten(0, 1), targets[..., a].flatten())
                  for a, part in enumerate(logits.split(self.sizes, dim=-1))]
        return torch.stack(losses).mean()


class TokenHeads(nn.Module):
    """Classifiers shared by every grid token: is this token on a shape, and if so, which shape, colour, size?

    Shared across places, so every shape in every scene teaches the same weights (the region heads learn
    each place separately): this is what makes shape readable from any token. The attribute losses count
    only the tokens a shape covers: averaged over the whole grid, the few covered tokens of small shapes
    were drowned by the background and shape stayed near chance (probe 33%); counted alone, each covered
    token is an object-centred crop, and shape is weighted up (`shape_weight`) as the hardest attribute."""

    def __init__(self, width: int, shape_weight: float = 2.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.foreground = nn.Linear(width, 2)
        self.heads = nn.ModuleList(nn.Linear(width, len(TARGETS[k])) for k in DENSE)
        self.weights = [shape_weight if k == "shape" else 1.0 for k in DENSE]

    def forward(self, tokens: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """(B, N, D) tokens (CLS first), (B, N - 1, 3) targets (0 background, else 1 + class) -> loss."""
        x = self.norm(tokens[:, 1:]).float()  # (B, N - 1, D)
        covered = dense[..., 0] > 0  # (B, N - 1)
        loss = F.cross_entropy(self.foreground(x).flatten(0, 1), covered.long().flatten())
        if covered.any():
            on = x[covered]  # (C, D) the covered tokens of the whole batch
            for a, (head, w) in enumerate(zip(self.heads, self.weights)):
                loss = loss + w * F.cross_entropy(head(on), dense[..., a][covered] - 1)
        return loss


class EncoderPretrainObjective(nn.Module):
    """The image tower (trained) plus throw-away heads: region attributes and/or a caption text tower."""

    def __init__(self, encoder: nn.Module, objective: Objective = "attributes", vocab: int | None = None,
                 embed_dim: int = 128, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        if objective not in ("attributes", "contrastive", "both"):
            raise ValueError(f"objective={objective!r}: expected 'attributes', 'contrastive' or 'both'")
        if objective != "attributes" and vocab is None:
            raise ValueError(f"objective={objective!r} needs the tokenizer's vocabulary size for its text tower")
        self.encoder = encoder
        self.objective = objective
        self.regions = RegionHeads(encoder.width, encoder.num_tokens) if objective != "contrastive" else None
        self.token_heads = TokenHeads(encoder.width) if objective != "contrastive" else None
        self.captions = (ContrastiveHead(encoder.width, TextTower(vocab), embed_dim, rank, world_size)
                         if objective != "attributes" else None)
        encoder.requires_grad_(True)

    def forward(self, batch: SceneBatch) -> torch.Tensor:
        tokens = self.encoder.tokens(batch.pixels)  # (B, N, D), with grad: the tower being trained
        loss = tokens.new_zeros((), dtype=torch.float32)
        if self.regions is not None:
            loss = loss + 0.5 * self.regions(tokens, batch.targets) + self.token_heads(tokens, batch.dense)
        if self.captions is not None:
            media = self.captions.media_proj(tokens.mean(dim=1)).float()  # (B, E)
            loss = loss + self.captions.contrast(media, batch.ids, batch.mask)
        return loss


def pretrain_image_encoder(encoder: nn.Module, cfg: TrainConfig, out: str | Path, *,
                           objective: Objective = "attributes", tokenizer: PreTrainedTokenizerBase | None = None,
                           scenes_per_epoch: int = 20000, renderer: Renderer = "train", resume: bool = True,
                           accelerator: Accelerator | None = None) -> dict:
    """Pretrain `encoder` (an image encoder, e.g. `tiny-convvit`) on fresh scenes of the world; leaves it frozen.

    `objective="attributes"` needs no tokenizer; "contrastive" / "both" add the caption loss and need one.
    Checkpoints and metrics go under `out` (resumable); returns the trainer's summary.
    """
    if objective != "attributes" and tokenizer is None:
        raise ValueError(f"objective={objective!r} needs a tokenizer for the captions")
    acc = accelerator or make_accelerator(cfg.mixed_precision)
    vocab = len(tokenizer) if tokenizer is not None else None
    model = EncoderPretrainObjective(encoder, objective, vocab, rank=acc.process_index, world_size=acc.num_processes)
    data = SceneDataset(encoder, scenes_per_epoch, cfg.seed, renderer, captions=objective != "attributes")
    summary = train(model, data, SceneCollator(tokenizer), cfg, out, resume=resume, desc="stage0-image",
                    count_tokens=lambda b: b.num_tokens, accelerator=acc)
    encoder.freeze()
    summary["objective"] = objective
    return summary
