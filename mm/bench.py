"""Benchmarks behind `mm bench`: figures measured side by side in one run, reported as ratios.

- `bench_caption`: images/s captioning one item at a time vs in batches, and whether the captions match
  (they must under greedy decoding).
- `bench_compare`: `compare_clips` wall time on synthetic clips of several lengths (30 fps, with sound),
  seconds per clip-second (flat when cost grows linearly), and one timed pair (60 s by default).
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def machine() -> dict[str, Any]:
    import os

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}


def bench_caption(chat: Any, n: int = 64, batch_size: int = 16, seed: int = 5, max_new_tokens: int = 48) -> dict[str, Any]:
    from mm.synth.scene import render, sample_scene

    rng = np.random.default_rng(seed)
    images = [render(sample_scene(rng)) for _ in range(n)]
    gen = {"max_new_tokens": max_new_tokens}
    chat.caption(images[:2], batch_size=2, **gen)  # warm-up
    t = time.perf_counter()
    single = [chat.caption([im], batch_size=1, **gen)[0] for im in images]
    t_single = time.perf_counter() - t
    t = time.perf_counter()
    batched = chat.caption(images, batch_size=batch_size, **gen)
    t_batch = time.perf_counter() - t
    same = sum(a == b for a, b in zip(single, batched))
    return {"items": n, "batch_size": batch_size, "one_by_one_items_per_s": n / t_single,
            "batched_items_per_s": n / t_batch, "speedup": t_single / t_batch, "identical_outputs": same,
            "all_identical": same == n}


def synthetic_long_clip(path: Path, seconds: float, fps: int = 30, size: tuple[int, int] = (320, 240),
                        seed: int = 0) -> Path:
    """Back-to-back synthetic clips (a moving shape and a beep every 2 s) at `fps`, H.264 + AAC."""
    from PIL import Image

    from encoders.video_io import write_video
    from mm.synth.video import SECONDS, render_frames, sample_clip, soundtrack

    rng = np.random.default_rng(seed)
    frames, audio = [], []
    for _ in range(int(np.ceil(seconds / SECONDS))):
        clip = sample_clip(rng)
        frames += [np.asarray(Image.fromarray(f).resize(size)) for f in render_frames(clip, fps)]
        audio.append(soundtrack(clip, rng))
    n = int(seconds * fps)
    wave = np.concatenate(audio)[: int(seconds * 16000)]
    return write_video(path, frames[:n], fps, audio=wave)


def bench_compare(chat: Any, lengths: tuple[float, ...] = (10, 20, 40), pair_seconds: float = 60,
                  describe: bool = True) -> dict[str, Any]:
    from mm.compare import compare_clips

    out: dict[str, Any] = {"lengths": {}, "describe": describe}
    with tempfile.TemporaryDirectory() as tmp:
        def run(seconds: float) -> dict[str, Any]:
            a = synthetic_long_clip(Path(tmp) / f"a{seconds}.mp4", seconds, seed=1)
            b = synthetic_long_clip(Path(tmp) / f"b{seconds}.mp4", seconds, seed=2)
            t = time.perf_counter()
            r = compare_clips(a, b, model=chat, describe=describe)
            wall = time.perf_counter() - t
            return {"clip_seconds": seconds, "seconds": wall, "per_clip_second": wall / seconds,
                    "segments": len(r.segments_a), "phases": r.seconds}

        for seconds in lengths:
            out["lengths"][f"{seconds:g}"] = run(seconds)
        out["pair"] = run(pair_seconds)
    per = [v["per_clip_second"] for v in out["lengths"].values()]
    out["linearity"] = max(per) / min(per)  # 1.0 = perfectly linear
    return out
