"""Run by test_ddp under `accelerate launch` with two CPU processes: a few bridge steps, then each rank
writes its bridge weights so the test can compare them."""

import sys
from pathlib import Path

from safetensors.torch import save_file

import mm
from mm.synth import write_split
from mm.train.sources import read_jsonl
from mm.train.stages import build_caches, train_bridge
from mm.train.trainer import TrainConfig, make_accelerator

out = Path(sys.argv[1])
acc = make_accelerator()
if acc.is_main_process:
    write_split(out / "world", "train", 16, 8, seed=2, workers=1)
acc.wait_for_everyone()
records = list(read_jsonl(out / "world" / "train.jsonl"))
chat = mm.load("mm-tiny")
caches = build_caches(chat, records, out / "features", accelerator=acc)
cfg = TrainConfig(steps=3, batch_size=2, warmup=1, log_every=1, lr=3e-3)
train_bridge(chat, records, caches, cfg, out / "run", mode="caption", accelerator=acc)
save_file(chat.model.bridge_state_dict(), str(out / f"rank{acc.process_index}.safetensors"))
print(f"rank {acc.process_index} of {acc.num_processes} on {acc.device}, backend {acc.state.backend}")
