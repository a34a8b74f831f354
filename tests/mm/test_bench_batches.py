"""`mm bench batches`: plain against length-bucketed stage-2 batches, timed alternately."""

from __future__ import annotations

import subprocess

import pytest

from mm.synth import write_split
from tests.mm.test_bench import bench
from tests.mm.test_cli import MM


def test_bench_batches_reports_less_padding_for_bucketed_batches(tmp_path):
    manifest = write_split(tmp_path / "w", "train", 40, 12, seed=4, workers=1)
    out = bench("batches", "--data", str(manifest), "--batch-size", "4", "--window", "6", "--repeats", "3")
    assert (out["bench"], out["records"], out["batch_size"], out["window"], out["steps"]) == ("batches", 52, 4, 6, 3)
    plain, bucketed = out["plain"], out["bucketed"]
    assert 0 <= bucketed["padding"] < plain["padding"] < 1
    assert bucketed["positions_per_step"] > 0 and plain["positions_per_step"] > 0  # over 3 steps: noisy
    assert plain["step_s"] > 0 and bucketed["step_s"] > 0
    assert out["step_time_ratio"] == pytest.approx(bucketed["step_s"] / plain["step_s"])


@pytest.mark.parametrize("args, message", [
    (["--window", "1"], "--window >= 2"),
    (["--data", "/nonexistent/data.jsonl"], "no such data file"),
    (["--batch-size", "64"], "do not fill one window of 50 batches of 64"),
])
def test_bench_batches_bad_input_is_a_usage_error(tmp_path, args, message):
    manifest = write_split(tmp_path / "w", "train", 4, 2, seed=4, workers=1)
    r = subprocess.run([MM, "bench", "batches", "--data", str(manifest), *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
