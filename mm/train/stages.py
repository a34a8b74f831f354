"""The training stages as functions over an `MMChat` (model + tokenizer), shared by recipes and `mm train`.

0. `pretrain_lm` (tiny only): the LLM learns the chat format and to answer from a written description.
   `pretrain_encoder` (tiny only): contrastive pretraining of an encoder, which is then frozen.
1a. `pretrain_bridge` (BLIP-2's representation learning): each Q-Former against captions, contrastively.
1. `train_bridge` on captions: Q-Formers + projections; encoders and LLM frozen.
2. `train_bridge` on dialogues with `lora=True`: bridge + LoRA adapters on the LLM.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from bridge.names import BRIDGE_PREFIXES
from mm.chat import MMChat
from mm.checkpoint import LLM_PREFIX
from mm.lora import add_lora, has_lora
from mm.train.batch import BridgeObjective, Collator
from mm.train.bridge_contrastive import BridgeContrastive, BridgePairCollator, BridgePairDataset
from mm.train.contrastive import ContrastiveObjective, PairCollator, PairDataset, TextTower
from mm.train.examples import TRACK, ExampleDataset, media_key, sound_track
from mm.train.features import FeatureCache
from mm.train.sources import Record
from mm.train.trainer import TrainConfig, make_accelerator, train

logger = logging.getLogger(__name__)


def _only_trainable(model: nn.Module, prefixes: tuple[str, ...]) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(prefixes))


def pretrain_lm(chat: MMChat, records: list[Record], cfg: TrainConfig, out: Path, *, resume: bool = True,
                accelerator: Accelerator | None = None) -> dict:
    model = chat.model
    _only_trainable(model, ("llm.",))
    collate = Collator(model, chat.tokenizer, chat.template, max_len=256)
    summary = train(BridgeObjective(model), ExampleDataset(records, "text", cfg.seed), collate, cfg, out,
                    resume=resume, desc="stage0-lm", count_tokens=lambda b: b.num_tokens, accelerator=accelerator,
                    length=collate.length)
    model.requires_grad_(False)
    return summary


def pretrain_encoder(chat: MMChat, records: list[Record], modality: str, cfg: TrainConfig, out: Path, *,
                     resume: bool = True, accelerator: Accelerator | None = None) -> dict:
    model = chat.model
    reader = model.modality(modality)
    if modality not in model.encoders:  # video reads through the image encoder
        raise ValueError(f"the {modality} modality has no encoder of its own to pretrain")
    encoder = model.encoders[modality]
    model.requires_grad_(False)
    acc = accelerator or make_accelerator(cfg.mixed_precision)
    text = TextTower(len(chat.tokenizer))
    objective = ContrastiveObjective(reader, text, rank=acc.process_index, world_size=acc.num_processes)
    data = PairDataset(records, reader, cfg.seed)
    summary = train(objective, data, PairCollator(chat.tokenizer), cfg, out, resume=resume,
                    desc=f"stage0-{modality}", count_tokens=lambda b: b.num_tokens, accelerator=acc)
    encoder.freeze()
    summary["skipped"] = data.skipped
    return summary


def pretrain_bridge(chat: MMChat, records: list[Record], caches: dict[str, FeatureCache], modality: str,
                    cfg: TrainConfig, out: Path, *, hard_negatives: int = 0, slot_weight: float = 0.0,
                    resume: bool = True, accelerator: Accelerator | None = None) -> dict:
    """Stage 1a for one modality's Q-Former (for video: the temporal Q-Former over frozen frame bridges).

    `hard_negatives`: how many of the modality's hard negative captions (`mm.train.hard_negatives`) each
    item gets, drawn per epoch; 0 for none (plain CLIP). A scene has dozens: each one costs a text-tower pass.
    `slot_weight` > 0 adds the object-slot loss (`mm.train.scene_slots`) for records of the world's scenes."""
    model = chat.model
    model.requires_grad_(False)
    model.qformers[modality].requires_grad_(True)
    acc = accelerator or make_accelerator(cfg.mixed_precision)
    objective = BridgeContrastive(model, modality, TextTower(len(chat.tokenizer)), rank=acc.process_index,
                                  world_size=acc.num_processes, slot_weight=slot_weight)
    data = BridgePairDataset(records, caches[modality], modality, cfg.seed, max_negatives=hard_negatives,
                             slot_queries=model.qformers[modality].config.num_queries if slot_weight > 0 else 0)
    summary = train(objective, data, BridgePairCollator(chat.tokenizer), cfg, out, resume=resume,
                    desc=f"stage1a-{modality}", count_tokens=lambda b: b.num_tokens, accelerator=acc)
    model.requires_grad_(False)
    summary["pairs"] = len(data)
    if objective.slots is not None:  # how well the queries hold their objects, on (up to) 512 training items
        batch = BridgePairCollator(chat.tokenizer)([data[i] for i in range(min(512, len(data)))])
        batch = batch.to(next(objective.slots.parameters()).device)
        if batch.slots is not None:
            with torch.no_grad():
                outs = torch.stack(list(model.bridge(modality, batch.states, batch.mask, batch.valid)))
            summary["slot_accuracy"] = objective.slots.accuracy(outs, batch.slots)
    return summary


def build_caches(chat: MMChat, records: list[Record], root: Path, batch_size: int = 64,
                 accelerator: Accelerator | None = None) -> dict[str, FeatureCache]:
    """Encode every media item once (frozen encoders) and return the caches; bad files are counted.

    Under several processes the main one encodes and the others read what it wrote.
    """
    main = accelerator is None or accelerator.is_main_process
    caches = {}
    for modality in chat.model.config.modalities:
        items = [(media_key(r, k), src) for r in records for k, (m, src) in enumerate(r.media) if m == modality]
        # Sound tracks of clips (files only), cached by the modality that reads them: after its own items.
        items += [(media_key(r, k) + TRACK, media_key(r, k) + TRACK) for r in records
                  for k, (m, src) in enumerate(r.media) if sound_track(m) == modality and isinstance(src, str)]
        if not items:
            continue
        if main:
            cache = FeatureCache(root, chat.model, modality)
            added = cache.build(items, batch_size=batch_size, total=len(items))
            logger.info("%s features: %d new, %d cached, %d unreadable", modality, added,
                        len(cache.where) - added, len(cache.bad))
        if accelerator is not None:
            accelerator.wait_for_everyone()
        caches[modality] = cache if main else FeatureCache(root, chat.model, modality)
    return caches


def train_bridge(chat: MMChat, records: list[Record], caches: dict[str, FeatureCache], cfg: TrainConfig, out: Path,
                 *, mode: str, lora: bool = False, lora_r: int = 8, full_llm: bool = False,
                 frozen_qformers: tuple[str, ...] = (), resume: bool = True,
                 accelerator: Accelerator | None = None) -> dict:
    """Stage 1 (`mode="caption"`) or stage 2 (`mode="dialogue"`, usually with `lora=True`).

    `full_llm=True` trains every LLM weight with the bridge instead of adapters: affordable only for
    small LLMs (the tiny recipe), where adapters of a 256-wide model are too narrow to learn to read media.
    `frozen_qformers` names modalities whose Q-Former keeps its stage-1a weights (their projections still
    train): the LM loss can wash out what the contrastive stage taught, as it did motion in clips.
    """
    model = chat.model
    if lora and full_llm:
        raise ValueError("choose one of lora=True and full_llm=True")
    unknown = sorted(set(frozen_qformers) - set(model.qformers))
    if unknown:
        raise ValueError(f"frozen_qformers names no Q-Former of this model: {', '.join(unknown)} "
                         f"(it has {', '.join(sorted(model.qformers))})")
    if lora and not has_lora(model):
        add_lora(model, r=lora_r, seed=cfg.seed)
    _only_trainable(model, BRIDGE_PREFIXES + ((LLM_PREFIX,) if full_llm else ()))
    for modality in frozen_qformers:
        model.qformers[modality].requires_grad_(False)
    if lora:
        for name, p in model.llm.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
    collate = Collator(model, chat.tokenizer, chat.template, caches, max_len=512)
    summary = train(BridgeObjective(model), ExampleDataset(records, mode, cfg.seed), collate, cfg, out,
                    resume=resume, desc="stage2-instruct" if mode == "dialogue" else "stage1-bridge",
                    count_tokens=lambda b: b.num_tokens, accelerator=accelerator, length=collate.length)
    model.requires_grad_(False)
    summary["skipped_examples"] = collate.skipped
    summary["unreadable_media"] = {m: len(c.bad) for m, c in caches.items()}
    return summary
