"""The embedded default as it ships: trained weights inside the package, right answers out of the box."""

import subprocess

import pytest

import mm
from mm.evaluate import evaluate
from mm.loading import shipped_weights
from mm.synth import write_split
from tests.golden import GOLDEN
from tests.mm.test_cli import MM

# Held-out seed: the recipe trains on world seed 0; this split comes from another world altogether.
HELD_OUT_SEED = 20261124


def test_weights_ship_inside_the_package_and_are_small():
    d = shipped_weights("mm-tiny")
    assert d is not None
    size = sum(f.stat().st_size for f in d.iterdir())
    assert size < 30 * 2**20, size


@pytest.mark.parametrize("key", list(GOLDEN))
def test_answers_questions_about_the_example_assets(tiny, key):
    """Every answer of tests/golden.py, asked as a user would (a follow-up with the turns before it)."""
    g = GOLDEN[key]
    answer, history = tiny.chat(g.question, history=g.history(), **g.media())
    assert answer == g.answer
    assert history == [*g.history(), (g.question, g.answer)]


def test_mm_chat_answers_on_the_command_line():
    g = GOLDEN["three_beeps"]
    out = subprocess.run([MM, "chat", "--audio", str(g.path()), g.question], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == g.answer


def test_held_out_accuracy_guards_against_regressions(tmp_path):
    """A fresh world (seen phrasing, the training renderer) from a seed the recipe never uses.

    Measured on this split for the shipped model: image 71.2%, count 98.8%, absent objects answered as absent
    98.8%, audio 98.1%, video 92.7%, the beep's timing in clips 100% (the model before it: image 65.0, absent
    90.0, video 94.1). Audio and absent objects meet issue 11's targets; image and video questions do not (see
    the README): these thresholds guard against regressions.
    """
    manifest = write_split(tmp_path, "test", 40, 40, seed=HELD_OUT_SEED, workers=1, n_videos=20, n_pairs=10)
    summary = evaluate(mm.load("mm-tiny"), manifest, captions=False, progress=False).summary()
    assert summary["audio"]["all"] >= 0.95, summary["audio"]
    assert abs(summary["audio"]["en"] - summary["audio"]["zh"]) <= 0.05, summary["audio"]
    assert summary["image"]["all"] >= 0.65, summary["image"]
    assert abs(summary["image"]["en"] - summary["image"]["zh"]) <= 0.06, summary["image"]
    assert summary["by_type"]["count"]["all"] >= 0.90, summary["by_type"]["count"]
    assert summary["absent_rate"]["all"] >= 0.90, summary["absent_rate"]
    assert summary["video"]["all"] >= 0.85, summary["video"]
    assert summary["by_type"]["when"]["all"] >= 0.90, summary["by_type"]["when"]
