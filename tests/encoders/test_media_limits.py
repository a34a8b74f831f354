"""Size caps and clear messages: regular files only, bytes, pixels, seconds, segments, sample values."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import soundfile as sf
from media_faults import SUBTITLES_ONLY, corrupt_payload, noisy_clip
from PIL import Image, ImageFile

from encoders.audio_io import load_audio
from encoders.image_io import load_image
from encoders.source_bytes import read_source
from encoders.video_io import has_video, iter_frames, load_video, probe_duration
from encoders.video_segments import iter_segments
from mm.errors import InputError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return noisy_clip(tmp_path_factory.mktemp("clip") / "c.mp4", frames=48, size=64, audio=True)  # 4 s


def _wav(wave: np.ndarray, sr: int = 16000, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("load", [load_image, load_audio, load_video, has_video, probe_duration,
                                  lambda p: list(iter_segments(p))])
def test_dev_zero_is_refused_at_once(load):
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):
        load("/dev/zero")


@pytest.mark.timeout(20)
def test_fifo_and_directory_are_refused(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    with pytest.raises(InputError, match="not a regular file"):
        load_audio(fifo)
    with pytest.raises(InputError, match="is a directory"):
        load_video(tmp_path)


def test_byte_cap_on_files_and_bytes(tmp_path, clip):
    with pytest.raises(InputError, match=r"the limit is 1000 bytes \(Limits.max_file_bytes"):
        load_video(clip, max_bytes=1000)
    with pytest.raises(InputError, match="the limit is 1000 bytes"):
        load_audio(clip.read_bytes(), max_bytes=1000)
    png = tmp_path / "a.png"
    Image.new("RGB", (64, 64), "red").save(png)
    with pytest.raises(InputError, match="the limit is 10 bytes"):
        load_image(png, max_bytes=10)
    assert read_source(png, png.stat().st_size, "a.png") == png.read_bytes()


def test_big_png_is_refused_from_its_header(monkeypatch):
    buf = io.BytesIO()
    Image.new("L", (6000, 4000)).save(buf, format="PNG")  # 24 Mpx, a few kB compressed
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    with pytest.raises(InputError, match=r"6000x4000 = 24000000 pixels; the limit is 1000000"):
        load_image(buf.getvalue(), max_pixels=1_000_000)


def test_long_sound_is_refused_from_its_header(monkeypatch):
    data = _wav(np.zeros(8000 * 10, np.int16), 8000)  # 10 s
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("samples were decoded"))
    with pytest.raises(InputError, match=r"10.0 s long; the limit is 5 s \(Limits.max_audio_seconds"):
        load_audio(data, max_seconds=5)


def test_long_sound_in_a_compressed_file_and_a_pair_is_refused(clip):
    with pytest.raises(InputError, match="max_audio_seconds"):
        load_audio(clip, max_seconds=1.0)
    with pytest.raises(InputError, match="max_audio_seconds"):
        load_audio((np.zeros(32000, np.float32), 16000), max_seconds=1.0)


def test_clip_limits_before_decoding(clip):
    with pytest.raises(InputError, match=r"the clip is 4.0 s long; the limit is 1 s \(Limits.max_video_seconds"):
        load_video(clip, max_seconds=1)
    with pytest.raises(InputError, match=r"each video frame is 64x64 = 4096 pixels; the limit is 1000"):
        load_video(clip, max_pixels=1000)
    with pytest.raises(InputError, match="max_image_pixels"):
        list(iter_frames(clip, max_pixels=1000))
    with pytest.raises(InputError, match="max_video_seconds"):
        list(iter_segments(clip, max_seconds=1))


def test_too_many_segments_is_refused(clip):
    with pytest.raises(InputError, match=r"would give 400 segments; the limit is 100 .*use a longer --segment"):
        next(iter_segments(clip, seconds=0.01, max_segments=100))
    assert len(list(iter_segments(clip, seconds=1.0, max_segments=4))) == 4


def test_huge_float_samples_are_an_error_not_silence():
    with pytest.raises(InputError, match=r"samples must be in \[-1, 1\] \(peak 1e\+30\)"):
        load_audio((16000, np.full(16000, 1e30, np.float32)))
    with pytest.raises(InputError, match="peak 1e\\+30"):
        load_audio(_wav(np.full(16000, 1e30, np.float32), subtype="FLOAT"))
    wave = load_audio((16000, np.full(16000, 1.2, np.float32)))  # a codec's overshoot is fine
    assert float(wave.max()) == pytest.approx(1.2)


def test_zero_sample_wav_says_it_has_no_samples():
    with pytest.raises(InputError, match="the audio has no samples") as e:
        load_audio(_wav(np.zeros((0, 1), np.float32)))
    assert "NaN" not in str(e.value)


def test_misleading_no_audio_track_messages(tmp_path):
    silent = noisy_clip(tmp_path / "silent.mp4", frames=12, size=32)
    with pytest.raises(InputError, match="no audio track \\(it holds only video"):
        load_audio(silent)
    with pytest.raises(InputError, match="no audio or video stream \\(only subtitle\\)"):
        load_audio(SUBTITLES_ONLY)
    with pytest.raises(InputError, match="no audio or video stream \\(only subtitle\\)"):
        load_video(SUBTITLES_ONLY)
    assert has_video(SUBTITLES_ONLY) is False
    bad = corrupt_payload(noisy_clip(tmp_path / "a.mp4", frames=12, size=32, audio=True), tmp_path / "bad.mp4")
    with pytest.raises(InputError, match="not a readable audio file"):
        load_audio(bad)
    with pytest.raises(InputError, match="not a readable video file"):
        has_video(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
