"""`mm bench` prints one JSON object with the measured figures (tiny sizes here; the real runs are in
BENCHMARKS.md). Speeds on two shared cores are too noisy to bound, so these check what a broken bench would
get wrong: the figures are the ratios of its own timings, the counts are what was asked, the outputs agree."""

import json
import os
import subprocess

import pytest

from tests.mm.test_cli import MM


def bench(*args: str, timeout: int = 300) -> dict:
    r = subprocess.run([MM, "bench", *args, "--json"], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_bench_caption_batched_matches_one_by_one():
    out = bench("caption", "--items", "6", "--batch-size", "3")
    assert (out["bench"], out["model"], out["items"], out["batch_size"]) == ("caption", "mm-tiny", 6, 3)
    assert out["identical_outputs"] == 6 and out["all_identical"] is True
    one, batched = out["one_by_one_items_per_s"], out["batched_items_per_s"]
    assert one > 0 and batched > 0
    # The speed-up is batched over one-by-one (not the inverse, not a constant): the ratio of the two rates.
    assert out["speedup"] == pytest.approx(batched / one, rel=1e-9)
    assert out["machine"]["cores"] == os.cpu_count()


def test_bench_compare_reports_cost_per_clip_second():
    out = bench("compare", "--lengths", "2", "4", "--pair-seconds", "4", "--no-describe")
    assert out["bench"] == "compare" and out["describe"] is False and set(out["lengths"]) == {"2", "4"}
    rows = [*out["lengths"].values(), out["pair"]]
    for row in rows:
        assert row["segments"] == row["clip_seconds"] / 2  # the default 2 s segments
        assert row["per_clip_second"] == pytest.approx(row["seconds"] / row["clip_seconds"], rel=1e-9)
        # The phases are timed inside the wall time; without descriptions there are exactly three.
        assert set(row["phases"]) == {"decode", "embed", "align"}
        assert 0 < sum(row["phases"].values()) <= row["seconds"]
    assert [r["clip_seconds"] for r in rows] == [2, 4, 4]
    per = [r["per_clip_second"] for r in out["lengths"].values()]
    assert out["linearity"] == pytest.approx(max(per) / min(per), rel=1e-9)  # 1.0 = cost grows linearly
    bad = subprocess.run([MM, "bench", "compare", "--lengths", "0", "--json"], capture_output=True, text=True)
    assert bad.returncode == 2 and "positive" in bad.stderr


def test_bench_qformer_reports_ratio_and_gemm_fraction():
    out = bench("qformer", "--tiny", "--batch", "2", "--tokens", "17", "--repeats", "2", timeout=120)
    assert (out["bench"], out["batch"], out["encoder_tokens"], out["repeats"]) == ("qformer", 2, 17, 2)
    # FLOPs by the formula of mm.bench.qformer_flops, written out for the tiny shape: Q=8 queries, D=64,
    # I=128, 2 layers with cross-attention in layer 0 only, N=17 encoder tokens of width 48, batch 2.
    q, d, i, n, de = 8, 64, 128, 17, 48
    per_item = 2 * (8 * q * d * d + 4 * q * q * d + 4 * q * d * i) + (4 * q * d * d + 4 * n * de * d + 4 * q * n * d)
    assert out["gflop_per_forward"] == pytest.approx(2 * per_item / 1e9, rel=1e-12)
    assert out["gemm_size"] == 256  # the toy size's GEMM
    for dtype, tol in (("fp32", 1e-4), ("bf16", 0.05)):
        fig = out[dtype]
        assert fig["rel_diff"] < tol  # same weights, same outputs
        assert fig["ours_s"] > 0 and fig["transformers_s"] > 0
        # Every rate and ratio is the one its timings give.
        assert fig["ours_over_transformers"] == pytest.approx(fig["ours_s"] / fig["transformers_s"], rel=1e-9)
        assert fig["ours_gflops"] == pytest.approx(out["gflop_per_forward"] / fig["ours_s"], rel=1e-9)
        assert fig["transformers_gflops"] == pytest.approx(out["gflop_per_forward"] / fig["transformers_s"], rel=1e-9)
        assert fig["ours_fraction_of_gemm"] == pytest.approx(fig["ours_gflops"] / fig["gemm_gflops"], rel=1e-9)
