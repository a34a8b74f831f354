"""Video decoding on real files encoded here by PyAV: every container/codec pair, VFR, no audio, audio only."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from encoders.video_io import has_video, load_video, probe_duration, sample_times, write_video
from encoders.video_segments import fixed_windows, iter_segments, scene_cuts
from mm.errors import InputError

SR = 16000


def ramp_frames(n: int = 24, size: tuple[int, int] = (64, 96)) -> list[np.ndarray]:
    """Frame k is flat grey level 10*k, so a decoded frame tells which one it was."""
    return [np.full((*size, 3), 10 * (k % 25), np.uint8) for k in range(n)]


def beep(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


CASES = [
    ("mp4", "libx264", "aac"),
    ("mkv", "libx265", "libopus"),
    ("webm", "libvpx-vp9", "libopus"),
    ("mov", "mpeg4", "libmp3lame"),
    ("avi", "mpeg4", "pcm_s16le"),
]


@pytest.mark.parametrize("ext,codec,audio_codec", CASES, ids=[f"{e}-{c}-{a}" for e, c, a in CASES])
def test_each_container_and_codec_decodes_frames_in_order_and_the_sound(tmp_path, ext, codec, audio_codec):
    path = write_video(tmp_path / f"clip.{ext}", ramp_frames(), 12, audio=beep(), codec=codec, audio_codec=audio_codec)
    clip = load_video(path, frames=4)
    assert [round(t, 2) for t in clip.times] == [0.25, 0.75, 1.25, 1.75]
    levels = [np.asarray(f).mean() for f in clip.frames]
    assert levels == sorted(levels) and abs(levels[0] - 30) < 4 and abs(levels[-1] - 210) < 4
    assert clip.audio is not None and abs(clip.audio.numel() / SR - 2.0) < 0.1
    assert 0.2 < float(clip.audio.abs().max()) < 0.6  # the beep, not silence
    assert abs(clip.duration - 2.0) < 0.1 and clip.info["frames_decoded"] == 24


def test_fixed_rate_sampling_and_bytes_input(tmp_path):
    path = write_video(tmp_path / "c.mp4", ramp_frames(), 12)
    clip = load_video(path.read_bytes(), fps=2)
    assert len(clip.frames) == 4 and clip.audio is None  # no audio track
    assert sample_times(10.0, fps=4, max_frames=8) == [(k + 0.5) / 4 for k in range(8)]


def test_variable_frame_rate_uses_each_frames_own_timestamp(tmp_path):
    path = tmp_path / "vfr.mkv"
    times_ms = [0, 40, 80, 500, 1500, 1540, 1900]  # bursts and gaps
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for k, ms in enumerate(times_ms):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * k, np.uint8), format="rgb24")
            f.pts, f.time_base = ms, Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    clip = load_video(path, frames=2)  # targets ~0.5 s and ~1.5 s of a ~1.9-2 s clip
    assert [round(t, 2) for t in clip.times] == [0.5, 1.5]
    assert [round(np.asarray(f).mean() / 30) for f in clip.frames] == [3, 4]


def test_audio_only_container_is_not_a_video_but_its_sound_is_usable(tmp_path):
    from encoders.audio_io import load_audio

    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=SR)
        s.layout = "mono"
        samples = beep(1.0)
        for start in range(0, len(samples), 1024):
            f = av.AudioFrame.from_ndarray(samples[None, start:start + 1024].copy(), format="flt", layout="mono")
            f.sample_rate, f.pts = SR, start
            resampled = av.AudioResampler(format="fltp", layout="mono", rate=SR).resample(f)
            for r in resampled:
                c.mux(s.encode(r))
        c.mux(s.encode(None))
    assert not has_video(path)
    with pytest.raises(InputError, match="no video track.*audio only"):
        load_video(path)
    assert abs(load_audio(path).numel() / SR - 1.0) < 0.1


def test_only_the_sampled_frames_are_converted(tmp_path, monkeypatch):
    """Decoding streams: of 240 decoded frames only the 8 sampled ones become images."""
    path = write_video(tmp_path / "long.mp4", ramp_frames(240, (48, 64)), 24)
    calls = []
    original = av.VideoFrame.to_image
    monkeypatch.setattr(av.VideoFrame, "to_image", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    clip = load_video(path, frames=8)
    assert clip.info["frames_decoded"] == 240 and len(calls) == 8


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"\x00garbage" * 100, "not a readable video"),
])
def test_bad_video_input_is_a_clear_error(data, message):
    with pytest.raises(InputError, match=message):
        load_video(data)


def test_missing_file_and_truncated_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_video(tmp_path / "nope.mp4")
    path = write_video(tmp_path / "c.mp4", ramp_frames(48), 12, audio=beep(4.0))
    half = path.read_bytes()[: path.stat().st_size // 2]
    try:
        clip = load_video(half, frames=4)  # decodes what is there, or says it cannot
        assert clip.frames
    except InputError as e:
        assert "video" in str(e)


def test_segments_fixed_windows_and_scene_cuts(tmp_path):
    assert fixed_windows(4.5, 2.0) == [(0.0, 2.0), (2.0, 4.5)]  # a short tail joins the last window
    assert fixed_windows(6.0, 2.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    # Three 1-second shots: black, white, grey.
    frames = [np.full((48, 64, 3), v, np.uint8) for v in (0, 255, 128) for _ in range(12)]
    path = write_video(tmp_path / "shots.mp4", frames, 12, audio=beep(3.0))
    cuts = scene_cuts(path)
    assert len(cuts) == 3 and [round(a, 1) for a, _ in cuts] == [0.0, 1.0, 2.0]
    segs = list(iter_segments(path, cuts=True, frames=3))
    assert [round(np.asarray(s.key_frame).mean()) for s in segs] == pytest.approx([0, 255, 128], abs=6)
    assert all(abs(s.audio.numel() / SR - 1.0) < 0.05 for s in segs)
    fixed = list(iter_segments(path, seconds=1.5, frames=2))
    assert [(s.start, s.end) for s in fixed] == [(0.0, 1.5), (1.5, 3.0)]
    assert probe_duration(path) == pytest.approx(3.0, abs=0.05)
