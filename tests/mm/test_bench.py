"""`mm bench` prints one JSON object with the measured figures (tiny sizes here; the real runs are in
BENCHMARKS.md)."""

import json
import subprocess

from tests.mm.test_cli import MM


def test_bench_caption_batched_matches_one_by_one():
    r = subprocess.run([MM, "bench", "caption", "--items", "6", "--batch-size", "3", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["bench"] == "caption" and out["items"] == 6 and out["all_identical"] is True
    assert out["speedup"] > 0 and out["machine"]["cores"] >= 1


def test_bench_compare_reports_cost_per_clip_second():
    r = subprocess.run([MM, "bench", "compare", "--lengths", "2", "4", "--pair-seconds", "4", "--no-describe",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert set(out["lengths"]) == {"2", "4"} and out["lengths"]["4"]["segments"] == 2
    assert out["pair"]["clip_seconds"] == 4 and out["pair"]["seconds"] > 0 and out["linearity"] >= 1.0
    bad = subprocess.run([MM, "bench", "compare", "--lengths", "0", "--json"], capture_output=True, text=True)
    assert bad.returncode == 2 and "positive" in bad.stderr


def test_bench_qformer_reports_ratio_and_gemm_fraction():
    r = subprocess.run([MM, "bench", "qformer", "--tiny", "--batch", "2", "--tokens", "17", "--repeats", "2", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["bench"] == "qformer" and out["batch"] == 2 and out["encoder_tokens"] == 17
    for dtype, tol in (("fp32", 1e-4), ("bf16", 0.05)):
        fig = out[dtype]
        assert fig["ours_s"] > 0 and fig["transformers_s"] > 0 and fig["gemm_gflops"] > 0
        assert fig["ours_over_transformers"] == fig["ours_s"] / fig["transformers_s"]
        assert 0 < fig["ours_fraction_of_gemm"] and fig["rel_diff"] < tol  # same weights, same outputs
