"""The whole mm-tiny recipe at smoke size, through the command line, then `mm eval` on its result."""

import json
import subprocess
from pathlib import Path

from tests.mm.test_cli import MM


def run(*args):
    return subprocess.run([MM, *args], capture_output=True, text=True, timeout=600)


def test_recipe_runs_every_stage_and_resumes_as_a_no_op(tmp_path):
    out = tmp_path / "run"
    first = run("train", "--recipe", "mm-tiny-smoke", "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads((out / "recipe.json").read_text())
    assert {"synth", "stage0-lm", "stage0-image", "stage0-audio", "features", "stage1-bridge",
            "stage2-instruct"} <= report["timings_s"].keys()
    final = out / "stage2-instruct" / "model"
    assert (final / "model.safetensors").exists() and not (final / "lora").exists()  # LoRA merged
    lines = {p: len(p.read_text().splitlines()) for p in out.glob("*/metrics.jsonl")}
    again = run("train", "--recipe", "mm-tiny-smoke", "--out", str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p: len(p.read_text().splitlines()) for p in out.glob("*/metrics.jsonl")} == lines

    ev = run("eval", "--model", str(final), "--images", "4", "--sounds", "4", "--json")
    assert ev.returncode == 0, ev.stderr[-2000:]
    summary = json.loads(ev.stdout)
    assert summary["questions"] > 20 and "colour" in summary["by_type"]


def test_train_without_a_mode_is_a_usage_error(tmp_path):
    out = run("train", "--out", str(Path(tmp_path)))
    assert out.returncode == 2 and "exactly one of --recipe or --stage" in out.stderr
