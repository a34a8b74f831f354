"""Stage 1a: BLIP-2's representation learning for the bridge: Q-Former outputs vs captions, contrastively.

Shape letters: B pairs, N encoder tokens, D encoder width, Q query slots, Dq Q-Former width, E joint width.

BLIP-2 trains its Q-Former with image-text contrastive learning before connecting it to an LLM, so the
queries already carry what captions talk about. Without it, a randomly initialised Q-Former fed only
through a frozen LLM's loss stays nearly image-independent (measured on mm-tiny: outputs for different
pictures had cosine similarity 0.99 after stage 1, and the LLM could not tell colours or positions
apart). Here each item's Q outputs are projected, mean-pooled and matched against a small text tower
(thrown away afterwards) with open_clip's loss; encoder features come from the feature cache.

Where the modality has hard negatives (`mm.train.hard_negatives`: for clips, the caption with the motion or
the speed changed), each item's embedding must also pick its caption out of its own K wrong ones: a second
cross-entropy over [caption, negatives], added to the CLIP loss (NegCLIP).

With object slots (`mm.train.scene_slots`, for the world's scenes), each query also predicts the object in its
own cell of the picture, so that one output carries one object whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from mm.collate import pad_and_mask
from mm.model import MMModel
from mm.train.contrastive import ContrastiveHead, TextTower
from mm.train.examples import media_key
from mm.train.features import FeatureCache
from mm.train.hard_negatives import HARD_NEGATIVES, NegativeCaptions, caption_languages
from mm.train.scene_slots import SlotHeads, SlotTargets, slot_targets, stack_targets
from mm.train.sources import Record


class BridgeContrastive(ContrastiveHead):
    """CLIP loss between the mean of `modality`'s projected Q-Former outputs and the text tower."""

    def __init__(self, model: MMModel, modality: str, text: TextTower, embed_dim: int = 128, rank: int = 0,
                 world_size: int = 1, slot_weight: float = 0.0) -> None:
        """`slot_weight` > 0 adds the object-slot loss (`mm.train.scene_slots`) for items with slot targets."""
        super().__init__(model.modality(modality).bridge_width, text, embed_dim, rank, world_size, model=model)
        self.modality = modality
        self.slot_weight = slot_weight
        self.slots = SlotHeads(model.modality(modality).bridge_width) if slot_weight > 0 else None

    def forward(self, batch: BridgePairBatch) -> torch.Tensor:
        outs = self.model.bridge(self.modality, batch.states, batch.mask, batch.valid)  # B x (Q_i, Dq)
        media = torch.stack([self.media_proj(o).mean(0) for o in outs])  # (B, E)
        text = self.text(batch.ids, batch.text_mask)  # (B, E), shared by both terms
        loss = self.contrast(media, batch.ids, batch.text_mask, text)
        if batch.negatives is not None:
            loss = loss + self.hard_negative_loss(media, batch, text)
        if self.slots is not None and batch.slots is not None:
            loss = loss + self.slot_weight * self.slots(torch.stack(list(outs)), batch.slots)
        return loss

    def hard_negative_loss(self, media: torch.Tensor, batch: BridgePairBatch,
                           text: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of each item's caption against its own K negatives (absent ones masked out);
        `text`: the captions' text-tower embeddings, if computed already."""
        assert batch.negatives is not None
        b, k = batch.negatives.valid.shape
        text = self.text(batch.ids, batch.text_mask) if text is None else text
        pos = F.normalize(text, dim=-1)  # (B, E)
        neg = F.normalize(self.text(batch.negatives.ids, batch.negatives.mask), dim=-1).reshape(b, k, -1)  # (B, K, E)
        m = F.normalize(media, dim=-1)
        logits = self.scale() * torch.cat([(m * pos).sum(-1, keepdim=True), torch.einsum("be,bke->bk", m, neg)], 1)
        logits = logits.masked_fill(~torch.cat([batch.negatives.valid.new_ones(b, 1), batch.negatives.valid], 1),
                                    float("-inf"))
        return F.cross_entropy(logits.float(), torch.zeros(b, dtype=torch.long, device=logits.device))


@dataclass
class NegativeCaptionBatch:
    ids: torch.Tensor  # (B*K, L) negative caption tokens, item-major
    mask: torch.Tensor  # (B*K, L) bool
    valid: torch.Tensor  # (B, K) bool: False where an item has fewer than K negatives

    def to(self, device: torch.device) -> NegativeCaptionBatch:
        return NegativeCaptionBatch(self.ids.to(device), self.mask.to(device), self.valid.to(device))


@dataclass
class BridgePairBatch:
    states: torch.Tensor  # (B, N, D) cached encoder features, zero-padded
    mask: torch.Tensor  # (B, N) bool
    valid: list[int]  # real tokens per item
    ids: torch.Tensor  # (B, L) caption tokens
    text_mask: torch.Tensor  # (B, L) bool
    negatives: NegativeCaptionBatch | None = None  # hard negatives, where the modality has them
    slots: SlotTargets | None = None  # object-slot targets (B, Q, ...), where items have them

    def to(self, device: torch.device) -> BridgePairBatch:
        slots = None if self.slots is None else SlotTargets(self.slots.labels.to(device), self.slots.centre.to(device),
                                                           torch.as_tensor(self.slots.digit).to(device))
        return BridgePairBatch(self.states.to(device), self.mask.to(device), self.valid, self.ids.to(device),
                               self.text_mask.to(device),
                               None if self.negatives is None else self.negatives.to(device), slots)

    @property
    def num_tokens(self) -> int:
        return int(self.text_mask.sum())


class BridgePairDataset:
    """(features, caption, hard negatives) for records whose only media item is `modality`; the caption's
    language is drawn per epoch, and its negatives (`negatives`, by default `HARD_NEGATIVES[modality]`; pass
    `lambda r, lang: []` for none) are in the same one, at most `max_negatives` of them, drawn per epoch. With
    `slot_queries` (the Q-Former's query count) each item also carries its object-slot targets
    (`mm.train.scene_slots`; None for records without the world's scene metadata)."""

    def __init__(self, records: list[Record], cache: FeatureCache, modality: str, seed: int = 0,
                 negatives: NegativeCaptions | None = None, max_negatives: int | None = None,
                 slot_queries: int = 0) -> None:
        self.items = [r for r in records if r.captions and len(r.media) == 1 and r.media[0][0] == modality
                      and media_key(r, 0) in cache]
        self.negatives = negatives if negatives is not None else HARD_NEGATIVES.get(modality)
        self.max_negatives = max_negatives
        self.slot_queries = slot_queries
        self.cache = cache
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple:
        record = self.items[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        c = int(rng.integers(len(record.captions)))
        lang = caption_languages(record)[c]
        wanted = self.negatives is not None and lang is not None and self.max_negatives != 0
        negatives = self.negatives(record, lang) if wanted else []
        if self.max_negatives is not None and len(negatives) > self.max_negatives:  # a new draw each epoch
            negatives = [negatives[j] for j in sorted(rng.choice(len(negatives), self.max_negatives, replace=False))]
        item = (self.cache.get(media_key(record, 0)), record.captions[c], negatives)
        if self.slot_queries:
            return (*item, slot_targets(record.extra.get("meta"), self.slot_queries))
        return item


class BridgePairCollator:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_len: int = 96) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_len, return_tensors="pt",
                             add_special_tokens=False)
        return enc["input_ids"], enc["attention_mask"].bool()

    def __call__(self, items: list[tuple]) -> BridgePairBatch:
        """`items`: (features, caption, negatives) or (features, caption, negatives, slot targets or None)."""
        slots = [it[3] for it in items if len(it) > 3]
        items = [it[:3] for it in items]
        states, mask = pad_and_mask([f for f, _, _ in items])  # (B, N, D), (B, N)
        ids, text_mask = self._encode([c for _, c, _ in items])
        k = max(len(n) for _, _, n in items)
        negatives = None
        if k:
            # Missing negatives are filled with the item's own caption (never empty: an all-padding row would
            # make the text tower's attention NaN) and masked out of the loss by `valid`.
            padded = [n + [c] * (k - len(n)) for _, c, n in items]
            valid = torch.tensor([[j < len(n) for j in range(k)] for _, _, n in items])
            neg_ids, neg_mask = self._encode([t for n in padded for t in n])
            negatives = NegativeCaptionBatch(neg_ids, neg_mask, valid)
        known = next((t for t in slots if t is not None), None)
        targets = stack_targets(slots, known.labels.shape[0]) if known is not None and len(slots) == len(items) else None
        return BridgePairBatch(states, mask, [f.shape[0] for f, _, _ in items], ids, text_mask, negatives, targets)
