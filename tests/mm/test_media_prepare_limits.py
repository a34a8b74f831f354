"""`mm.media` passes the limits down, and takes a clip already decoded elsewhere (the server's child)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from encoders.video_io import load_video, write_video
from mm.errors import InputError
from mm.limits import Limits
from mm.media import prepare, prepare_media, prepare_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = [np.full((48, 64, 3), 20 * k, np.uint8) for k in range(12)]
    sound = (0.2 * np.sin(np.arange(48000) / 5)).astype(np.float32)  # 3 s of sound on a 1 s clip
    return write_video(tmp_path_factory.mktemp("m") / "c.mp4", frames, 12, audio=sound)


def test_prepare_video_takes_a_decoded_clip(video_model, clip):
    model = video_model.model
    v = model.config.video
    decoded = load_video(clip, frames=v.frames, fps=v.fps, max_frames=v.max_frames, audio=True)
    from_path, from_clip = prepare_video(model, clip), prepare_video(model, decoded)
    assert [p.modality for p in from_clip] == [p.modality for p in from_path]
    assert [p.key for p in from_clip] == [p.key for p in from_path]


def test_limits_reach_the_loaders(video_model, clip):
    model = video_model.model
    with pytest.raises(InputError, match="max_video_seconds"):
        prepare_media(model, "video", clip, Limits(max_video_seconds=0.5))
    with pytest.raises(InputError, match="max_image_pixels"):
        prepare_media(model, "video", clip, Limits(max_image_pixels=1000))
    with pytest.raises(InputError, match="the clip's sound is 3.0 s long.*max_audio_seconds"):
        prepare_media(model, "video", clip, Limits(max_audio_seconds=2.0))
    decoded = load_video(clip)
    with pytest.raises(InputError, match="max_image_pixels"):
        prepare_video(model, decoded, Limits(max_image_pixels=1000))
    png = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(png, format="PNG")
    with pytest.raises(InputError, match="max_image_pixels"):
        prepare(model, "image", png.getvalue(), Limits(max_image_pixels=100))
    with pytest.raises(InputError, match="max_file_bytes"):
        prepare(model, "image", png.getvalue(), Limits(max_file_bytes=10))
    with pytest.raises(InputError, match="max_audio_seconds"):
        prepare(model, "audio", (np.zeros(32000, np.float32), 16000), Limits(max_audio_seconds=1.0))
    assert prepare(model, "audio", (np.zeros(32000, np.float32), 16000)).data.shape == (32000,)
