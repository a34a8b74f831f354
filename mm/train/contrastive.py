"""Stage 0 for the tiny encoders: CLIP / CLAP-style contrastive pretraining on caption pairs.

Shape letters: B pairs, N encoder tokens, D encoder width, L caption tokens, E joint embedding width.

The media tower is the encoder that is frozen afterwards; the text tower is a small transformer that is
thrown away. Media embeddings are the mean of the encoder's tokens, so every token (not only a CLS)
learns to carry what the captions talk about: the Q-Former later reads those tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torch import nn
from transformers import PreTrainedTokenizerBase

from mm.errors import InputError
from mm.modality import Modality
from mm.train.sources import Record


class TextTower(nn.Module):
    def __init__(self, vocab: int, width: int = 128, layers: int = 2, heads: int = 4, max_len: int = 96,
                 out_dim: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.randn(max_len, width) * 0.01)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, out_dim)
        self.max_len = max_len

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids, (B, L) mask -> (B, E) unnormalised."""
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        x = self.blocks(x, src_key_padding_mask=~mask)
        x = self.norm(x)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.proj(pooled)


class ContrastiveHead(nn.Module):
    """The contrastive objectives' common part: a CLIP loss between media and a text tower, both thrown away.

    Holds the text tower, the media projection into the joint space (`media_width` -> E), the learnt
    temperature and open_clip's loss (gathered across processes). Stage 0 (`ContrastiveObjective`) and
    stage 1a (`mm.train.bridge_contrastive.BridgeContrastive`) subclass it, passing the module each trains
    as `trained` (name -> module): those are registered first, so that parameters keep the names and the
    order that trainer checkpoints (weights and optimizer state) hold.
    """

    def __init__(self, media_width: int, text: TextTower, embed_dim: int = 128, rank: int = 0, world_size: int = 1,
                 **trained: nn.Module) -> None:
        super().__init__()
        for name, module in trained.items():
            self.add_module(name, module)
        self.text = text
        self.media_proj = nn.Linear(media_width, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.loss = ClipLoss(gather_with_grad=world_size > 1, rank=rank, world_size=world_size)

    def contrast(self, media: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                 text: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of (B, E) projected media against the captions' (B, L) ids and mask (or their (B, E)
        text-tower embeddings `text`, where the caller has them already)."""
        text = self.text(ids, mask) if text is None else text
        return self.loss(F.normalize(media, dim=-1), F.normalize(text, dim=-1), self.scale())

    def scale(self) -> torch.Tensor:
        """The learnt logit scale, capped at 100 (CLIP's)."""
        return self.logit_scale.clamp(max=math.log(100)).exp()


class ContrastiveObjective(ContrastiveHead):
    """CLIP loss between the mean of `modality`'s encoder tokens and the text tower; trains that encoder."""

    def __init__(self, modality: Modality, text: TextTower, embed_dim: int = 128, rank: int = 0,
                 world_size: int = 1) -> None:
        # The encoder is a submodule here, so that its weights are trained.
        super().__init__(modality.encoder.width, text, embed_dim, rank, world_size, encoder=modality.encoder)
        self.modality = modality  # not a module: it reads its encoder from the model
        self.encoder.requires_grad_(True)

    def media_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.modality.pretrain_tokens(x)  # (B, N, D), with grad: this is the tower being trained

    def forward(self, batch: ContrastiveBatch) -> torch.Tensor:
        return self.contrast(self.media_proj(self.media_tokens(batch.media).mean(dim=1)), batch.ids, batch.mask)


@dataclass
class ContrastiveBatch:
    media: torch.Tensor  # image (B, 3, H, W) or log-mel (B, M, T)
    ids: torch.Tensor  # (B, L)
    mask: torch.Tensor  # (B, L) bool

    def to(self, device: torch.device) -> ContrastiveBatch:
        return ContrastiveBatch(self.media.to(device), self.ids.to(device), self.mask.to(device))

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())


class PairDataset:
    """(media tensor, caption) pairs; the caption language is drawn per epoch. Unreadable media -> None."""

    def __init__(self, records: list[Record], modality: Modality, seed: int = 0) -> None:
        self.records = [r for r in records if r.captions and r.media and r.media[0][0] == modality.name]
        self.modality = modality
        self.seed = seed
        self.epoch = 0
        self.skipped = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str] | None:
        rec = self.records[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        caption = rec.captions[int(rng.integers(len(rec.captions)))]
        try:
            x = self.modality.pretrain_input(rec.media[0][1])
        except InputError:
            self.skipped += 1
            return None
        return x, caption


class PairCollator:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_len: int = 96) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len

    def __call__(self, items: list[tuple[torch.Tensor, str] | None]) -> ContrastiveBatch:
        items = [x for x in items if x is not None]
        enc = self.tokenizer([c for _, c in items], padding=True, truncation=True, max_length=self.max_len,
                             return_tensors="pt", add_special_tokens=False)
        return ContrastiveBatch(torch.stack([x for x, _ in items]), enc["input_ids"], enc["attention_mask"].bool())
