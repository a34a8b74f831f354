"""The whole mm-tiny recipe at smoke size, through the command line, then `mm eval` on its result."""

import json
import subprocess
from pathlib import Path

import torch

from tests.mm.test_cli import MM


def run(*args):
    return subprocess.run([MM, *args], capture_output=True, text=True, timeout=600)


def test_recipe_runs_every_stage_and_resumes_as_a_no_op(tmp_path):
    out = tmp_path / "run"
    first = run("train", "--recipe", "mm-tiny-smoke", "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads((out / "recipe.json").read_text())
    assert {"synth", "stage0-lm", "stage0-image", "stage0-audio", "features", "stage1a-image", "stage1a-audio",
            "stage1a-video", "stage1-bridge",
            "stage2-instruct"} <= report["timings_s"].keys()
    final = out / "stage2-instruct" / "model"
    assert (final / "model.safetensors").exists() and not (final / "lora").exists()  # LoRA merged
    lines = {p: len(p.read_text().splitlines()) for p in out.glob("*/metrics.jsonl")}
    again = run("train", "--recipe", "mm-tiny-smoke", "--out", str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p: len(p.read_text().splitlines()) for p in out.glob("*/metrics.jsonl")} == lines

    ev = run("eval", "--model", str(final), "--images", "4", "--sounds", "4", "--videos", "3", "--pairs", "2", "--json")
    assert ev.returncode == 0, ev.stderr[-2000:]
    summary = json.loads(ev.stdout)
    assert summary["questions"] > 20 and "colour" in summary["by_type"]
    # Clips: 5 questions per language each; pairs: the comparison question in each language.
    assert summary["by_type"]["motion"]["all"] is not None and summary["by_type"]["difference"]["all"] is not None
    assert summary["video"]["all"] is not None


def test_train_without_a_mode_is_a_usage_error(tmp_path):
    out = run("train", "--out", str(Path(tmp_path)))
    assert out.returncode == 2 and "exactly one of --recipe or --stage" in out.stderr


def test_stage_training_on_user_data_saves_lora_apart_or_merged(tmp_path):
    import mm
    from mm.synth import write_split

    manifest = write_split(tmp_path / "world", "train", 12, 6, seed=9, workers=1)
    common = ["--data", str(manifest), "--steps", "2", "--batch-size", "4", "--lr", "1e-3"]
    r = run("train", "--stage", "bridge", "--out", str(tmp_path / "b"), *common)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "unreadable media: {'image': 0, 'audio': 0}" in r.stdout
    r = run("train", "--stage", "instruct", "--model", str(tmp_path / "b/model"), "--out", str(tmp_path / "i"),
            "--bucket", "2", *common)
    assert r.returncode == 0, r.stderr[-2000:]
    bad = run("train", "--stage", "instruct", "--out", str(tmp_path / "x"), "--bucket", "-1", *common)
    assert bad.returncode == 2 and "--bucket: '-1' must be >= 0" in bad.stderr
    assert (tmp_path / "i/model/lora/adapter_config.json").exists()
    with_adapters = mm.load(tmp_path / "i/model")
    assert any("lora_" in n for n, _ in with_adapters.model.llm.named_parameters())
    r = run("train", "--stage", "instruct", "--model", str(tmp_path / "b/model"), "--out", str(tmp_path / "m"),
            "--merge-lora", "--bucket", "2", *common)
    assert r.returncode == 0, r.stderr[-2000:]
    merged = mm.load(tmp_path / "m/model")
    assert not (tmp_path / "m/model/lora").exists()
    img = str(manifest.parent / "train/images/000000.png")
    a = with_adapters.chat("What colour is the circle?", image=img, max_new_tokens=6)[0]
    b = merged.chat("What colour is the circle?", image=img, max_new_tokens=6)[0]
    assert a == b  # the same seed and data: merged weights answer as the adapters do


def test_full_scale_training_that_changes_the_llm_saves_it(tmp_path):
    """Merged adapters (or --full-llm) change the LLM's own weights: a bridge-only save would lose them."""
    import mm
    from mm.checkpoint import MODEL_FILE, read_model_dir
    from mm.synth import write_split

    wide = mm.load("mm-tiny", **{"llm.hidden_size": 1056, "llm.num_layers": 1})  # wider than any tiny LLM
    assert wide.config.full_scale
    wide.save_pretrained(tmp_path / "wide")
    manifest = write_split(tmp_path / "world", "train", 8, 4, seed=9, workers=1)
    r = run("train", "--stage", "instruct", "--model", str(tmp_path / "wide"), "--out", str(tmp_path / "m"),
            "--merge-lora", "--data", str(manifest), "--steps", "2", "--batch-size", "2", "--lr", "1e-2")
    assert r.returncode == 0, r.stderr[-2000:]
    saved = read_model_dir(tmp_path / "m/model")
    assert saved.weights.name == MODEL_FILE and saved.lora is None
    merged = mm.load(tmp_path / "m/model")
    before, after = wide.model.llm.state_dict(), merged.model.llm.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the merged update is kept
