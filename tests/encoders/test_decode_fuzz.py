"""Random and damaged bytes into every loader: a result or an InputError, nothing else, never a hang.

Video decoding runs in-process here because it cannot hang any more (see test_decode_safety.py, which
proves that in fresh processes first). Each loader gets about 100 examples: pure noise, noise behind a
real PNG / WAV / MP4 header, and truncations and bit flips of valid files.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from encoders.audio_io import load_audio
from encoders.image_io import load_image
from encoders.video_io import has_video, load_video, probe_duration, write_video
from encoders.video_segments import iter_segments
from mm.errors import InputError


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), "blue").save(buf, format="PNG")
    return buf.getvalue()


def _wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, (0.2 * np.sin(np.arange(4000) / 3)).astype(np.float32), 16000, format="WAV")
    return buf.getvalue()


def _mp4() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        frames = [np.full((32, 32, 3), 30 * k, np.uint8) for k in range(6)]
        path = write_video(Path(d) / "c.mp4", frames, 6, audio=np.zeros(16000, np.float32))
        return path.read_bytes()


VALID = {"png": _png(), "wav": _wav(), "mp4": _mp4()}


@st.composite
def damaged(draw) -> bytes:
    """Noise, noise behind a valid header, a truncated valid file, or one with flipped bytes."""
    how = draw(st.sampled_from(["noise", "header", "truncate", "flip"]))
    valid = VALID[draw(st.sampled_from(sorted(VALID)))]
    if how == "noise":
        return draw(st.binary(min_size=0, max_size=2000))
    if how == "header":
        return valid[:draw(st.integers(4, 64))] + draw(st.binary(min_size=0, max_size=2000))
    if how == "truncate":
        return valid[:draw(st.integers(0, len(valid) - 1))]
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 20))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return bytes(data)


def _consume(load, data: bytes) -> None:
    try:
        load(data)
    except InputError:
        pass


LOADERS = {
    "load_image": lambda d: load_image(d, max_pixels=4096 * 4096),
    "load_audio": lambda d: load_audio(d, max_seconds=60, deadline=time.monotonic() + 10),
    "load_video": lambda d: load_video(d, frames=2, max_seconds=60, max_pixels=4096 * 4096,
                                       deadline=time.monotonic() + 10),
    "has_video": has_video,
    "probe_duration": lambda d: probe_duration(d, deadline=time.monotonic() + 10),
    "iter_segments": lambda d: list(iter_segments(d, seconds=0.5, max_seconds=60, max_segments=200,
                                                  deadline=time.monotonic() + 10)),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_damaged_bytes_give_a_result_or_an_input_error(loader):
    load = LOADERS[loader]

    @settings(max_examples=100, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(damaged())
    def run(data: bytes) -> None:
        _consume(load, data)

    run()
