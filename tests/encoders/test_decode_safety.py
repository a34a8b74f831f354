"""Decoding cannot hang: the corrupt clip in fresh processes, closing abandoned walks, the deadline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import av.logging
import pytest
from media_faults import corrupt_payload, noisy_clip

from encoders import av_guard
from encoders.audio_io import load_audio
from encoders.video_io import iter_frames, load_video, probe_duration
from encoders.video_segments import iter_segments
from mm.errors import InputError

# What `mm chat --video` did: torchvision (imported by timm/open_clip) installs PyAV's Python log
# callback; then every decoder entry point meets the corrupt clip.
_SCRIPT = textwrap.dedent("""
    import sys
    import torchvision  # noqa: F401 - installs av's Python log callback, as importing mm does
    import av.logging
    assert av.logging.get_level() is not None
    from encoders.audio_io import load_audio
    from encoders.video_io import has_video, iter_frames, load_video, probe_duration
    from encoders.video_segments import iter_segments
    from mm.errors import InputError

    path = sys.argv[1]
    for call in (lambda: load_video(path), lambda: list(iter_frames(path)), lambda: list(iter_segments(path)),
                 lambda: load_audio(path), lambda: has_video(path), lambda: probe_duration(path)):
        try:
            call()
        except InputError as e:
            print("InputError", e)
    print("done")
""")


@pytest.fixture(scope="module")
def bad_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return corrupt_payload(noisy_clip(root / "ok.mp4", audio=True), root / "bad.mp4")


@pytest.fixture(scope="module")
def good_clip(tmp_path_factory):
    return noisy_clip(tmp_path_factory.mktemp("good") / "ok.mp4", frames=24, size=64, audio=True)


@pytest.mark.timeout(300)
def test_corrupt_clip_finishes_in_fresh_processes(bad_clip):
    """It hung 3 of 3 fresh processes with frame threading; now each ends with an answer or InputError."""
    procs = [subprocess.Popen([sys.executable, "-c", _SCRIPT, str(bad_clip)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-2000:]
            assert out.strip().endswith("done")
            assert "Traceback" not in err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.mark.timeout(60)
def test_corrupt_clip_in_process_is_an_input_error(bad_clip):
    with pytest.raises(InputError, match="not a readable video"):
        load_video(bad_clip)


def test_ffmpeg_logging_is_restored_after_decoding(good_clip):
    before = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        load_video(good_clip)
        assert av.logging.get_level() == av.logging.ERROR
    finally:
        av.logging.set_level(before)


def test_abandoned_walks_close_their_container(good_clip):
    frames = iter_frames(good_clip)
    next(frames)
    assert av_guard._depth == 1  # one decode in flight
    frames.close()
    assert av_guard._depth == 0
    segments = iter_segments(good_clip, seconds=0.5)
    next(segments)
    segments.close()
    assert av_guard._depth == 0


def test_frame_threading_is_never_used():
    assert av_guard.THREAD_TYPE == "SLICE"


@pytest.mark.parametrize("call", [
    lambda p, d: load_video(p, deadline=d),
    lambda p, d: list(iter_frames(p, deadline=d)),
    lambda p, d: list(iter_segments(p, deadline=d)),
])
def test_a_passed_deadline_stops_decoding(good_clip, call):
    with pytest.raises(InputError, match="decoding took longer than the request's deadline"):
        call(good_clip, time.monotonic() - 1.0)


def test_deadline_applies_to_compressed_audio(good_clip):
    with pytest.raises(InputError, match="deadline"):
        load_audio(good_clip, deadline=time.monotonic() - 1.0)
    assert load_audio(good_clip, deadline=time.monotonic() + 60).numel() > 0
    assert probe_duration(good_clip, deadline=time.monotonic() + 60) == pytest.approx(2.0, abs=0.2)


def test_prepare_media_on_the_corrupt_clip(video_model, bad_clip):
    """The `mm chat --video` path: a clear error, no hang."""
    from mm.media import prepare_media

    with pytest.raises(InputError, match="not a readable video"):
        prepare_media(video_model.model, "video", bad_clip)
