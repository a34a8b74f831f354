"""Examples -> padded training batches for the bridge stages (and text-only LM pretraining).

Shape letters: B examples, T tokens, N encoder tokens, D encoder width.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from mm.collate import pad_and_mask
from mm.model import MMModel
from mm.prompt import IGNORE_INDEX, ChatTemplate, build_prompt, expand_placeholders
from mm.train.examples import TRACK, Example
from mm.train.features import FeatureCache

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T) right-padded
    attention_mask: torch.Tensor  # (B, T)
    labels: torch.Tensor  # (B, T), IGNORE_INDEX outside answers
    # modality -> (states (B_m, N, D) float16, mask (B_m, N) bool, valid tokens per item)
    media: dict[str, tuple[torch.Tensor, torch.Tensor, list[int]]] = field(default_factory=dict)
    order: list[tuple[str, int]] = field(default_factory=list)  # media items in prompt order, row-major

    def to(self, device: torch.device) -> Batch:
        media = {m: (s.to(device), k.to(device), v) for m, (s, k, v) in self.media.items()}
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device),
                     media, self.order)

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


# Prompts that `Collator.length` built, kept for the batch that collates them next (length-bucketed batches
# measure a whole window of examples first): enough for a window of 50 batches of 64 on 4 processes.
PROMPT_MEMO = 16384


def _memo_key(ex: Example, media: list[tuple[str, str]], tokens: list[int]) -> tuple:
    return tuple(ex.turns), tuple(media), tuple(tokens)


class Collator:
    """Builds prompts with expanded placeholders and stacks cached encoder features per modality.

    Examples whose media are missing from the cache (unreadable files) are dropped and counted.
    """

    def __init__(self, model: MMModel, tokenizer: PreTrainedTokenizerBase, template: ChatTemplate,
                 caches: dict[str, FeatureCache] | None = None, max_len: int = 512) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.caches = caches or {}
        self.max_len = max_len
        self.skipped = 0
        self.pad_id = tokenizer.pad_token_id or 0
        # (turns, media, encoder tokens) -> _prompt's result: what `length` built, so `__call__` need not
        # tokenize the same prompt again; the oldest go first (other ranks' examples are measured, never used).
        self._memo: OrderedDict[tuple, tuple[list[int], list[int], list[int]]] = OrderedDict()

    def _silent(self, modality: str, key: str) -> bool:
        """A video's sound track that is absent (no audio track, or a model without audio): left out."""
        if not key.endswith(TRACK):
            return False
        cache = self.caches.get(modality)
        return cache is None or key in cache.bad

    def _media(self, ex: Example) -> list[tuple[str, str]] | None:
        """The example's (modality, key) pairs that go into its prompt; None when one is not in the cache."""
        media = [(m, k) for m, k in ex.media if not self._silent(m, k)]
        if any(m not in self.caches or key not in self.caches[m] for m, key in media):
            return None
        return media

    def _prompt(self, ex: Example, media: list[tuple[str, str]],
                tokens: list[int]) -> tuple[list[int], list[int], list[int]]:
        """Token ids and labels with each media placeholder expanded to its query slots, and the slots per media
        item (`tokens`: encoder tokens per media item)."""
        memo = self._memo.pop(_memo_key(ex, media, tokens), None)
        if memo is not None:
            return memo
        placeholders = [self.model.media_token_ids[m] for m, _ in media]
        ids, labels = build_prompt(self.tokenizer, self.template, ex.turns, placeholders)
        counts = [self.model.num_slots(m, n) for (m, _), n in zip(media, tokens)]
        ids, labels = expand_placeholders(ids, set(self.model.media_token_ids.values()), counts, labels)
        return ids, labels, counts

    def length(self, ex: Example | None) -> int:
        """The example's length in LLM positions (0 when it would be skipped), without loading its features:
        for length-bucketed batches (`TrainConfig.bucket`)."""
        media = None if ex is None else self._media(ex)
        if media is None:
            return 0
        tokens = [self.caches[m].tokens(k) for m, k in media]
        built = self._prompt(ex, media, tokens)
        self._memo[_memo_key(ex, media, tokens)] = built
        while len(self._memo) > PROMPT_MEMO:
            self._memo.popitem(last=False)
        return min(len(built[0]), self.max_len)

    def __call__(self, examples: list[Example | None]) -> Batch:
        rows, feats = [], {m: [] for m in self.caches}
        order: list[tuple[str, int]] = []
        for ex in examples:
            if ex is None:
                continue
            media = self._media(ex)
            if media is None:
                self.skipped += 1
                continue
            item_feats = [(m, self.caches[m].get(key)) for m, key in media]
            ids, labels, counts = self._prompt(ex, media, [f.shape[0] for _, f in item_feats])
            if len(ids) > self.max_len:
                if sum(counts) >= self.max_len:
                    self.skipped += 1
                    continue
                ids, labels = ids[: self.max_len], labels[: self.max_len]
            rows.append((ids, labels))
            for m, f in item_feats:
                order.append((m, len(feats[m])))
                feats[m].append(f)
        if not rows:
            raise ValueError("every example in this batch was skipped")
        input_ids, mask = pad_and_mask([torch.tensor(ids, dtype=torch.long) for ids, _ in rows], value=self.pad_id)
        labels_t, _ = pad_and_mask([torch.tensor(labels, dtype=torch.long) for _, labels in rows], value=IGNORE_INDEX)
        media = {}
        for m, items in feats.items():
            if items:
                states, valid = pad_and_mask(items)  # (B_m, N, D), (B_m, N)
                media[m] = (states, valid, [f.shape[0] for f in items])
        return Batch(input_ids, mask.long(), labels_t, media, order)


class BridgeObjective(nn.Module):
    """LM loss on answer tokens, with bridge outputs spliced into the media slots."""

    def __init__(self, model: MMModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> torch.Tensor:
        m = self.model
        outs = {
            mod: [m.projectors[mod](t) for t in m.bridge(mod, states, mask, valid)]
            for mod, (states, mask, valid) in batch.media.items()
        }
        media = torch.cat([outs[mod][i] for mod, i in batch.order]) if batch.order else None
        return m(batch.input_ids, batch.attention_mask, media, labels=batch.labels).loss
