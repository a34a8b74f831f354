"""The training loop shared by every stage: Accelerate, AdamW, cosine schedule, exact resume.

- Runs as one process or under `accelerate launch` / `torchrun` (DDP; gloo on CPU). Each rank takes a
  disjoint slice of every epoch's permutation, so the data order is a pure function of the seed.
- Checkpoints hold the trainable parameters, optimizer, scheduler, RNG state and the data position;
  they are written to a temporary file and renamed, so a crash never leaves a half-written one.
- A non-finite loss skips the step (no update) and is reported; many in a row stop training.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from torch import nn
from tqdm import tqdm

from mm.train.buckets import bucketed
from mm.train.precision import MODES, resolve_precision

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # examples per process per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    warmup: int = 50  # linear warm-up steps
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    clip: float = 1.0  # max global grad norm (0 = off)
    # Autocast: "auto" is bf16 where the hardware computes it natively (CUDA, CPUs with AVX512-BF16 or AMX),
    # fp32 elsewhere (mm.train.precision); "bf16" forces it, emulated or not.
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "no"
    log_every: int = 10  # steps between metric lines
    ckpt_every: int = 200  # steps between checkpoints
    seed: int = 0  # data order and dropout
    max_nonfinite: int = 20  # consecutive non-finite losses before giving up
    # Length buckets: each window of this many batches is sorted by example length before it is cut into
    # batches (mm.train.buckets); 0 = plain shuffled batches. Only for stages that give `train` a length.
    bucket: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError(f"steps, batch_size, grad_accum must be >= 1: {self.steps}, {self.batch_size}, {self.grad_accum}")
        if self.bucket < 0:
            raise ValueError(f"bucket must be >= 0 (0 = plain batches): {self.bucket}")
        if self.mixed_precision not in MODES:
            raise ValueError(f"mixed_precision must be one of {', '.join(MODES)}: {self.mixed_precision!r}")


class NonFiniteLoss(RuntimeError):
    pass


def cosine(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def batches(dataset: Any, collate: Callable, cfg: TrainConfig, rank: int, world: int,
            epoch: int, offset: int, length: Callable[[Any], int] | None = None) -> Iterator[tuple[int, int, Any]]:
    """(epoch, offset after this batch, batch) forever, from a position; with `length` (an example's size)
    and `cfg.bucket`, batches of similar lengths (mm.train.buckets)."""
    n = len(dataset)
    per_step = cfg.batch_size * world
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        if length is not None and cfg.bucket > 1:
            steps: Iterator[np.ndarray] = bucketed(order, offset, per_step, cfg.bucket,
                                                   lambda i: length(dataset[i]), cfg.seed, epoch)
        else:
            steps = (order[k: k + per_step] for k in range(offset, n - per_step + 1, per_step))
        for group in steps:
            idx = group[rank * cfg.batch_size: (rank + 1) * cfg.batch_size]
            offset += per_step
            yield epoch, offset, collate([dataset[int(i)] for i in idx])
        epoch, offset = epoch + 1, 0


def make_accelerator(mixed_precision: str = "no") -> Accelerator:
    """The Accelerator every stage uses. A batch may hold images only or sounds only, leaving one bridge
    without gradients on some rank, so DDP must look for unused parameters. "auto" needs no loss scaler
    (it is bf16 or nothing): `train` resolves it and enters its autocast itself."""
    return Accelerator(mixed_precision="no" if mixed_precision == "auto" else mixed_precision,
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def train(objective: nn.Module, dataset: Any, collate: Callable, cfg: TrainConfig, out_dir: str | Path,
          *, resume: bool = False, desc: str = "train", count_tokens: Callable[[Any], int] | None = None,
          accelerator: Accelerator | None = None, length: Callable[[Any], int] | None = None) -> dict[str, Any]:
    """Train `objective(batch) -> loss` on its trainable parameters; returns a summary.

    `length(example)`: an example's size in tokens, for `cfg.bucket` (batches of similar lengths)."""
    out_dir = Path(out_dir)
    acc = accelerator or make_accelerator(cfg.mixed_precision)
    if acc.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed + acc.process_index)
    names = [n for n, p in objective.named_parameters() if p.requires_grad]
    params = [p for p in objective.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires grad")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine(s, cfg))
    step, epoch, offset, nonfinite_total = 0, 0, 0, 0
    ckpt = out_dir / CHECKPOINT
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        own = dict(objective.named_parameters())
        with torch.no_grad():
            for n, t in state["trainable"].items():
                own[n].copy_(t)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, epoch, offset = state["step"], state["epoch"], state["offset"]
        nonfinite_total = state.get("nonfinite", 0)
        logger.info("resumed %s at step %d (epoch %d, offset %d)", desc, step, epoch, offset)
    model, optimizer = acc.prepare(objective, optimizer)
    device = acc.device
    if cfg.mixed_precision == "fp16" and acc.mixed_precision != "fp16":
        raise ValueError("fp16 needs a loss scaler: create the Accelerator with mixed_precision='fp16'")
    precision = resolve_precision(cfg.mixed_precision, device)
    if cfg.mixed_precision == "auto":
        logger.info("%s: mixed_precision auto -> %s on %s", desc, precision, device)

    def autocast():
        if precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return acc.autocast()

    data = batches(dataset, collate, cfg, acc.process_index, acc.num_processes, epoch, offset, length)
    log_file = out_dir / "metrics.jsonl"
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, disable=not acc.is_main_process, dynamic_ncols=True)
    t0, tokens, losses, consecutive = time.perf_counter(), 0, [], 0
    model.train()
    while step < cfg.steps:
        total = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            epoch, offset, batch = next(data)
            batch = batch.to(device)
            tokens += count_tokens(batch) if count_tokens else 0
            ctx = acc.no_sync(model) if micro < cfg.grad_accum - 1 else nullcontext()
            with ctx, autocast():
                loss = model(batch) / cfg.grad_accum
                acc.backward(loss)
            total += loss.detach()
        bad = acc.reduce((~torch.isfinite(total)).float(), reduction="sum")
        if bad.item() > 0:
            optimizer.zero_grad(set_to_none=True)
            consecutive += 1
            nonfinite_total += 1
            logger.warning("%s step %d: non-finite loss; update skipped", desc, step)
            if consecutive >= cfg.max_nonfinite:
                raise NonFiniteLoss(f"{desc}: {consecutive} non-finite losses in a row at step {step}; "
                                    "lower the learning rate or check the data")
            continue
        consecutive = 0
        grad_norm = acc.clip_grad_norm_(params, cfg.clip) if cfg.clip else torch.zeros(())
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(acc.reduce(total, reduction="mean").item())
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            dt = time.perf_counter() - t0
            rec = {"stage": desc, "step": step, "loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0],
                   "grad_norm": float(grad_norm), "tokens_per_s": tokens * acc.num_processes / max(dt, 1e-9),
                   "epoch": epoch, "nonfinite": nonfinite_total}
            bar.set_postfix(loss=f"{rec['loss']:.4f}", tok_s=f"{rec['tokens_per_s']:.0f}")
            if acc.is_main_process:
                with log_file.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
            losses, tokens, t0 = [], 0, time.perf_counter()
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            _save(acc, objective, names, optimizer, scheduler, step, epoch, offset, nonfinite_total, ckpt)
    bar.close()
    acc.wait_for_everyone()
    return {"steps": step, "nonfinite": nonfinite_total, "config": asdict(cfg), "precision": precision}


def _save(acc: Accelerator, objective: nn.Module, names: list[str], optimizer: Any, scheduler: Any,
          step: int, epoch: int, offset: int, nonfinite: int, path: Path) -> None:
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return
    own = dict(objective.named_parameters())
    state = {
        "trainable": {n: own[n].detach().cpu() for n in names},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "step": step, "epoch": epoch, "offset": offset, "nonfinite": nonfinite,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
