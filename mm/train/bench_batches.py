"""`mm bench batches`: stage-2 training steps on plain shuffled batches against length-bucketed ones.

Both kinds of batch are drawn from the same records and timed alternately in one process (forward and
backward of the whole LLM and the bridges, under the autocast the recipe's "auto" picks here), so a busy machine slows
both alike; reported: the share of LLM positions that are padding, positions per step, collation and step
seconds, and the step-time ratio.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mm.train.batch import BridgeObjective, Collator
from mm.train.examples import ExampleDataset
from mm.train.precision import resolve_precision
from mm.train.stages import build_caches
from mm.train.trainer import TrainConfig, batches

if TYPE_CHECKING:
    from mm.chat import MMChat
    from mm.records import Record


def bench_batches(chat: MMChat, records: list[Record], features: Path, *, window: int = 50, batch_size: int = 64,
                  steps: int = 10, warmup: int = 2) -> dict[str, Any]:
    """Time `steps` training steps of each kind (after `warmup` untimed ones) on `records` (`features`: where
    their encoder features are cached)."""
    if window < 2:
        raise ValueError(f"window must be >= 2 batches, got {window}")
    if len(records) < batch_size * window:
        raise ValueError(f"{len(records)} records do not fill one window of {window} batches of {batch_size}")
    model = chat.model
    caches = build_caches(chat, records, features)
    collate = Collator(model, chat.tokenizer, chat.template, caches, max_len=512)
    kinds = {"plain": 0, "bucketed": window}
    draws = {k: batches(ExampleDataset(records, "dialogue"), collate, TrainConfig(batch_size=batch_size, bucket=b),
                         0, 1, 0, 0, collate.length) for k, b in kinds.items()}
    model.requires_grad_(False)
    model.llm.requires_grad_(True)
    for part in (*model.qformers.values(), *model.projectors.values()):
        part.requires_grad_(True)
    objective = BridgeObjective(model).train()
    bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
    seen: dict[str, dict[str, list[float]]] = {k: {"collate": [], "step": [], "positions": [], "real": []} for k in kinds}
    try:
        for i in range(warmup + steps):
            for kind in kinds:
                t = time.perf_counter()
                _, _, batch = next(draws[kind])
                collated = time.perf_counter() - t
                t = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = objective(batch)
                loss.backward()
                model.zero_grad(set_to_none=True)
                if i >= warmup:
                    row = seen[kind]
                    row["collate"].append(collated)
                    row["step"].append(time.perf_counter() - t)
                    row["positions"].append(batch.attention_mask.numel())
                    row["real"].append(batch.num_tokens)
    finally:
        model.requires_grad_(False)
        model.eval()
    out: dict[str, Any] = {"records": len(records), "batch_size": batch_size, "window": window, "steps": steps,
                           "precision": "bf16" if bf16 else "no"}
    for kind, row in seen.items():
        out[kind] = {"padding": 1 - sum(row["real"]) / sum(row["positions"]),
                     "positions_per_step": statistics.mean(row["positions"]),
                     "collate_s": statistics.median(row["collate"]), "step_s": statistics.median(row["step"])}
    out["step_time_ratio"] = out["bucketed"]["step_s"] / out["plain"]["step_s"]
    return out
