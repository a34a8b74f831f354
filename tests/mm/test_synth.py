import json

import numpy as np
import pytest

from encoders import load_audio, load_image
from mm.synth import image_record, sound_record, write_split
from mm.synth.scene import CELL, _centre, render_classic, sample_scene
from mm.synth.sound import SAMPLE_RATE, Sound, synthesize
from mm.synth.vocab import COLOURS, NUMBERS_EN


def test_same_seed_same_world_and_splits_use_different_streams(tmp_path):
    a = write_split(tmp_path / "a", "test", 6, 4, seed=3)
    b = write_split(tmp_path / "b", "test", 6, 4, seed=3)
    assert a.read_text() == b.read_text()
    assert (tmp_path / "a/test/images/000002.png").read_bytes() == (tmp_path / "b/test/images/000002.png").read_bytes()
    train = [image_record(3, "train", i, None)["meta"] for i in range(20)]
    test = [image_record(3, "test", i, None)["meta"] for i in range(20)]
    assert train != test


def test_manifest_points_at_real_files_with_known_answers(tmp_path):
    manifest = write_split(tmp_path, "val", 5, 5, seed=1, workers=1)
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(records) == 10
    for r in records:
        media = r.get("image") or r.get("audio")
        (load_image if "image" in r else load_audio)(tmp_path / media)
        assert {q["lang"] for q in r["qa"]} == {"en", "zh"}
        assert r["captions"]["en"] and r["captions"]["zh"]
        if "image" in r:
            count = next(q for q in r["qa"] if q["type"] == "count" and q["lang"] == "en")
            assert count["key"] == NUMBERS_EN[len(r["meta"]["shapes"])]


def test_rendered_colours_sit_where_the_scene_says():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scene = sample_scene(rng, classic=True)
        img = render_classic(scene)
        assert len(scene.jitter) == len(scene.shapes)
        for s, jit in zip(scene.shapes, scene.jitter):
            if s.size == "large" and s.shape in ("circle", "square"):
                cx, cy = _centre(s.position, jit)
                assert img.getpixel((int(cx), int(cy))) == COLOURS[s.colour][1]
    assert CELL * 3 == img.width


@pytest.mark.parametrize("beeps", [1, 2, 3, 4])
def test_beep_count_is_audible(beeps):
    x = synthesize(Sound("beeps", pitch="medium", beeps=beeps, seconds=1.6), np.random.default_rng(0))
    env = np.abs(x).reshape(-1, SAMPLE_RATE // 100).max(axis=1) > 0.1  # 10 ms frames
    onsets = np.flatnonzero(env[1:] & ~env[:-1])
    assert len(onsets) + int(env[0]) == beeps


@pytest.mark.parametrize("direction", ["rising", "falling"])
def test_sweep_direction_is_audible(direction):
    x = synthesize(Sound("sweep", direction=direction, seconds=1.5), np.random.default_rng(0))
    half = len(x) // 2
    peak = [np.argmax(np.abs(np.fft.rfft(x[i:i + 2048]))) for i in (2000, half + 2000)]
    assert (peak[1] > peak[0]) == (direction == "rising")


def test_sound_records_have_consistent_questions():
    for i in range(30):
        r = sound_record(0, "train", i, None)
        types = {q["type"] for q in r["qa"]}
        assert "kind" in types
        assert ("beeps" in types) == (r["meta"]["kind"] == "beeps")
        assert ("sweep" in types) == (r["meta"]["kind"] == "sweep")
