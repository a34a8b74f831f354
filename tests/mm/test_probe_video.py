"""`mm bench probe-video`: motion and speed read from the video path, per frame and after the temporal Q-Former."""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest

from mm.cli.main import main
from mm.probe_video import CLIP_ATTRIBUTES, clip_pixels, encode_clips
from mm.synth.video import render_frames, sample_clip


def test_clip_features_have_the_shapes_of_both_points_and_the_labels_of_the_clips_drawn(video_model):
    model = video_model.model
    data = encode_clips(model, 5, seed=3, batch_size=2)
    rng = np.random.default_rng(3)
    expected = {k: [] for k in CLIP_ATTRIBUTES}
    for _ in range(5):
        clip = sample_clip(rng)
        render_frames(clip, rng=rng, indices=range(model.config.video.frames))  # the same draws as the probe's
        for k, classes in CLIP_ATTRIBUTES.items():
            expected[k].append(classes.index(getattr(clip, k)))
    cfg = model.config
    frames, temporal = data["frames"], data["temporal"]
    assert frames.features.shape == (5, cfg.video.frames * cfg.image_qformer.num_queries,
                                     cfg.image_qformer.hidden_size)
    assert temporal.features.shape == (5, cfg.video.temporal.num_queries, cfg.video.temporal.hidden_size)
    for point in (frames, temporal):
        assert {k: v.tolist() for k, v in point.labels.items()} == expected
        assert point.classes == CLIP_ATTRIBUTES
    # Frames differ over the clip (the shape moves), and what the probe reads is what the model gets.
    pixels, _ = clip_pixels(model, 1, seed=3)
    assert pixels[0].shape[0] == cfg.video.frames and not np.allclose(pixels[0][0], pixels[0][-1])
    # The frames are those the decoder would sample (at the centres of 8 equal slices of the 24 rendered).
    clip = sample_clip(np.random.default_rng(3))
    whole = render_frames(clip)
    picked = render_frames(clip, indices=[1, 4, 7, 10, 13, 16, 19, 22])
    assert all(np.array_equal(whole[k], p) for k, p in zip([1, 4, 7, 10, 13, 16, 19, 22], picked))


def test_a_model_without_video_is_a_clear_error():
    no_video = SimpleNamespace(config=SimpleNamespace(modalities=("image", "audio")))
    with pytest.raises(ValueError, match="the model has no video input"):
        encode_clips(no_video, 2, seed=0)


@pytest.fixture(scope="module")
def shipped_probe():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "probe-video", "--json", "--clips", "320", "--test-clips", "120",
                     "--probe-steps", "300"])
    assert code == 0
    return json.loads(out.getvalue())


@pytest.mark.timeout(600)
def test_bench_probe_video_on_the_shipped_model(shipped_probe):
    result = shipped_probe
    assert result["bench"] == "probe-video" and result["chance"] == {"motion": 0.25, "speed": 0.5}
    acc = result["accuracy"]
    assert set(acc) == {"frames", "temporal"} and result["tokens"]["temporal"][0] == 8
    # The per-frame image bridge sees where the shape is in every frame, so direction and speed are there
    # to read; the temporal Q-Former, kept as stage 1a left it, has them too (measured with these settings:
    # frames 0.975 / 0.93, temporal 1.0 / 0.99; the model before, trained through stages 1 and 2 without
    # the freeze: temporal 0.36 / 0.49 on 1000 clips).
    assert acc["frames"]["motion"] >= 0.75 and acc["frames"]["speed"] >= 0.8, acc
    assert acc["temporal"]["motion"] >= 0.85 and acc["temporal"]["speed"] >= 0.85, acc
