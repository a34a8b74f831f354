"""Benchmarks behind `mm bench`: figures measured side by side in one run, reported as ratios.

- `bench_caption`: images/s captioning one item at a time vs in batches, and whether the captions match
  (they must under greedy decoding).
- `bench_compare`: `compare_clips` wall time on synthetic clips of several lengths (30 fps, with sound),
  seconds per clip-second (flat when cost grows linearly), and one timed pair (60 s by default).
- `bench_qformer`: our `bridge.qformer.QFormer` against transformers' `Blip2QFormerModel` holding the same
  weights, at BLIP-2 size, in fp32 and bf16, with the machine's GEMM rate measured in the same loop so the
  Q-Former's FLOP rate reads as a fraction of what the machine's matmul reaches.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from mm.chat import MMChat


def machine() -> dict[str, Any]:
    import os

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}


def bench_caption(chat: MMChat, n: int = 64, batch_size: int = 16, seed: int = 5, max_new_tokens: int = 48) -> dict[str, Any]:
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


def bench_compare(chat: MMChat, lengths: tuple[float, ...] = (10, 20, 40), pair_seconds: float = 60,
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


def qformer_flops(cfg: Any, batch: int, tokens: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of one Q-Former forward: projections, attention and feed-forward.

    Per item and layer, Q queries of width D: self-attention 8QD^2 + 4Q^2D, feed-forward 4QDI; a
    cross-attention layer adds 4QD^2 (query, output) + 4NDeD (keys and values of N encoder tokens of
    width De) + 4QND (scores and weighted sum).
    """
    q, d, i, de, n = cfg.num_queries, cfg.hidden_size, cfg.intermediate_size, cfg.encoder_width, tokens
    cross = sum(cfg.has_cross_attention(k) for k in range(cfg.num_layers))
    per_item = (cfg.num_layers * (8 * q * d * d + 4 * q * q * d + 4 * q * d * i)
                + cross * (4 * q * d * d + 4 * n * de * d + 4 * q * n * d))
    return batch * per_item


def bench_qformer(batch: int = 8, tokens: int = 257, repeats: int = 7, tiny: bool = False,
                  gemm_size: int = 2048, seed: int = 0) -> dict[str, Any]:
    """Time our Q-Former and transformers' Blip2QFormerModel (same weights) on (batch, tokens, 1408) encoder
    states, fp32 and bf16, interleaved: each repeat runs ours, theirs and a square GEMM once per dtype.
    Medians are reported; `ours_over_transformers` < 1 means ours is faster."""
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    from bridge.qformer import qformer_from_blip2

    if tiny:  # for tests: the same code path at toy size
        shape = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
                 "cross_attention_frequency": 2, "encoder_hidden_size": 48}
        queries, gemm_size = 8, min(gemm_size, 256)
    else:  # BLIP-2 / VisualGLM-6B
        shape = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                 "cross_attention_frequency": 2, "encoder_hidden_size": 1408}
        queries = 32
    torch.manual_seed(seed)
    hf = Blip2QFormerModel(Blip2QFormerConfig(**shape)).eval().requires_grad_(False)
    query_tokens = torch.randn(1, queries, shape["hidden_size"]) * 0.02
    ours = qformer_from_blip2(hf, query_tokens).eval().requires_grad_(False)
    x32 = torch.randn(batch, tokens, shape["encoder_hidden_size"])
    flops = qformer_flops(ours.config, batch, tokens)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    models = {name: (_copy_to(ours, dt), _copy_to(hf, dt), x32.to(dt), query_tokens.to(dt),
                     torch.randn(gemm_size, gemm_size, dtype=dt), torch.randn(gemm_size, gemm_size, dtype=dt))
              for name, dt in dtypes.items()}

    def run_ours(m: Any) -> torch.Tensor:
        return m[0](m[2])

    def run_hf(m: Any) -> torch.Tensor:
        return m[1](query_embeds=m[3].expand(batch, -1, -1), encoder_hidden_states=m[2]).last_hidden_state

    def run_gemm(m: Any) -> torch.Tensor:
        return m[4] @ m[5]

    times: dict[str, dict[str, list[float]]] = {n: {"ours": [], "transformers": [], "gemm": []} for n in dtypes}
    diffs = {}
    with torch.inference_mode():
        for name, m in models.items():  # warm-up, and the two outputs must agree
            a, b = run_ours(m).float(), run_hf(m).float()
            diffs[name] = {"max_abs_diff": (a - b).abs().max().item(),
                           "rel_diff": ((a - b).norm() / b.norm()).item()}
            run_gemm(m)
        for _ in range(repeats):
            for name, m in models.items():
                for kind, fn in (("ours", run_ours), ("transformers", run_hf), ("gemm", run_gemm)):
                    t = time.perf_counter()
                    fn(m)
                    times[name][kind].append(time.perf_counter() - t)
    out: dict[str, Any] = {
        "qformer": {**shape, "num_queries": queries}, "batch": batch, "encoder_tokens": tokens, "repeats": repeats,
        "gflop_per_forward": flops / 1e9, "gemm_size": gemm_size,
    }
    for name in dtypes:
        med = {k: statistics.median(v) for k, v in times[name].items()}
        gemm_rate = 2 * gemm_size**3 / med["gemm"] / 1e9
        ours_rate = flops / med["ours"] / 1e9
        out[name] = {
            "ours_s": med["ours"], "transformers_s": med["transformers"],
            "ours_over_transformers": med["ours"] / med["transformers"],
            "ours_gflops": ours_rate, "transformers_gflops": flops / med["transformers"] / 1e9,
            "gemm_gflops": gemm_rate, "ours_fraction_of_gemm": ours_rate / gemm_rate, **diffs[name],
        }
    return out


def _copy_to(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module).to(dtype)
