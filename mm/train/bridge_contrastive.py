"""Stage 1a: BLIP-2's representation learning for the bridge: Q-Former outputs vs captions, contrastively.

Shape letters: B pairs, N encoder tokens, D encoder width, Q query slots, Dq Q-Former width, E joint width.

BLIP-2 trains its Q-Former with image-text contrastive learning before connecting it to an LLM, so the
queries already carry what captions talk about. Without it, a randomly initialised Q-Former fed only
through a frozen LLM's loss stays nearly image-independent (measured on mm-tiny: outputs for different
pictures had cosine similarity 0.99 after stage 1, and the LLM could not tell colours or positions
apart). Here each item's Q outputs are projected, mean-pooled and matched against a small text tower
(thrown away afterwards) with open_clip's loss; encoder features come from the feature cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from mm.collate import pad_and_mask
from mm.model import MMModel
from mm.train.contrastive import ContrastiveHead, TextTower
from mm.train.examples import media_key
from mm.train.features import FeatureCache
from mm.train.sources import Record


class BridgeContrastive(ContrastiveHead):
    """CLIP loss between the mean of `modality`'s projected Q-Former outputs and the text tower."""

    def __init__(self, model: MMModel, modality: str, text: TextTower, embed_dim: int = 128, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__(model.modality(modality).bridge_width, text, embed_dim, rank, world_size, model=model)
        self.modality = modality

    def forward(self, batch: BridgePairBatch) -> torch.Tensor:
        outs = self.model.bridge(self.modality, batch.states, batch.mask, batch.valid)  # B x (Q_i, Dq)
        media = torch.stack([self.media_proj(o).mean(0) for o in outs])  # (B, E)
        return self.contrast(media, batch.ids, batch.text_mask)


@dataclass
class BridgePairBatch:
    states: torch.Tensor  # (B, N, D) cached encoder features, zero-padded
    mask: torch.Tensor  # (B, N) bool
    valid: list[int]  # real tokens per item
    ids: torch.Tensor  # (B, L) caption tokens
    text_mask: torch.Tensor  # (B, L) bool

    def to(self, device: torch.device) -> BridgePairBatch:
        return BridgePairBatch(self.states.to(device), self.mask.to(device), self.valid, self.ids.to(device),
                               self.text_mask.to(device))

    @property
    def num_tokens(self) -> int:
        return int(self.text_mask.sum())


class BridgePairDataset:
    """(cache key, caption) for records whose first media item is `modality`; language drawn per epoch."""

    def __init__(self, records: list[Record], cache: FeatureCache, modality: str, seed: int = 0) -> None:
        self.items = [(media_key(r, 0), r.captions) for r in records
                      if r.captions and len(r.media) == 1 and r.media[0][0] == modality]
        self.items = [(k, c) for k, c in self.items if k in cache]
        self.cache = cache
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        key, captions = self.items[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return self.cache.get(key), captions[int(rng.integers(len(captions)))]


class BridgePairCollator:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_len: int = 96) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len

    def __call__(self, items: list[tuple[torch.Tensor, str]]) -> BridgePairBatch:
        states, mask = pad_and_mask([f for f, _ in items])  # (B, N, D), (B, N)
        enc = self.tokenizer([c for _, c in items], padding=True, truncation=True, max_length=self.max_len,
                             return_tensors="pt", add_special_tokens=False)
        return BridgePairBatch(states, mask, [f.shape[0] for f, _ in items], enc["input_ids"],
                               enc["attention_mask"].bool())
