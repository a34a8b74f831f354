"""The embedded default as it ships: trained weights inside the package, right answers out of the box."""

import subprocess

import mm
from demos.app import ASSETS
from mm.evaluate import evaluate
from mm.loading import shipped_weights
from mm.synth import write_split
from tests.mm.test_cli import MM

# Held-out seed: the recipe trains on world seed 0; this split comes from another world altogether.
HELD_OUT_SEED = 20261124


def test_weights_ship_inside_the_package_and_are_small():
    d = shipped_weights("mm-tiny")
    assert d is not None
    size = sum(f.stat().st_size for f in d.iterdir())
    assert size < 30 * 2**20, size


def test_answers_questions_about_the_example_assets(tiny):
    assert tiny.chat("How many shapes are there?", image=ASSETS / "three_shapes.png")[0] == "There are three shapes."
    assert tiny.chat("图中有几个形状？", image=ASSETS / "shapes_digit.png")[0] == "有两个形状。"
    answer, history = tiny.chat("How many beeps are there?", audio=ASSETS / "three_beeps.wav")
    assert answer == "There are three beeps."
    assert tiny.chat("And is the pitch low, medium or high?", audio=ASSETS / "three_beeps.wav",
                     history=history)[0] == "The pitch is high."
    assert tiny.chat("扫频音是上升还是下降？", audio=ASSETS / "rising_sweep.wav")[0] == "是上升的。"
    assert tiny.chat("What colour is the circle?", image=ASSETS / "red_circle.png")[0] == "It is red."
    clip = ASSETS / "red_circle_left_fast.mp4"
    assert tiny.chat("Which way does the circle move?", video=clip)[0] == "It moves to the left."
    assert tiny.chat("When does the beep sound?", video=clip)[0] == "It sounds at the start."


def test_mm_chat_answers_on_the_command_line():
    out = subprocess.run([MM, "chat", "--audio", str(ASSETS / "three_beeps.wav"), "How many beeps are there?"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "There are three beeps."


def test_held_out_accuracy_meets_the_targets(tmp_path):
    manifest = write_split(tmp_path, "test", 40, 40, seed=HELD_OUT_SEED, workers=1, n_videos=20, n_pairs=10,
                           phrasing="canonical", rendering="classic")
    summary = evaluate(mm.load("mm-tiny"), manifest, captions=False, progress=False).summary()
    # Audio meets its target (>= 90%). Image and video questions do not yet meet theirs (the shipped model
    # measures about 71% and 69%, see the README): these guard against regressions.
    assert summary["audio"]["all"] >= 0.90, summary["audio"]
    assert abs(summary["audio"]["en"] - summary["audio"]["zh"]) <= 0.05, summary["audio"]
    assert summary["image"]["all"] >= 0.60, summary["image"]
    assert summary["by_type"]["count"]["all"] >= 0.90, summary["by_type"]["count"]
    assert summary["video"]["all"] >= 0.55, summary["video"]
    assert summary["by_type"]["when"]["all"] >= 0.90, summary["by_type"]["when"]
