"""The server's decoding child: results, InputErrors, a deadline that kills, a crash that restarts."""

from __future__ import annotations

import io
import os
import signal

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from encoders.video_io import VideoClip, write_video
from mm.decode_process import DecodeProcess
from mm.errors import InputError
from mm.limits import Limits


def _clip(path, frames=24, corrupt=False):
    rng = np.random.default_rng(0)
    images = [np.clip(np.full((64, 64, 3), 10 * k) + rng.integers(0, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
              for k in range(frames)]
    write_video(path, images, 12, audio=(0.1 * np.sin(np.arange(16000 * frames // 12) / 5)).astype(np.float32))
    data = bytearray(path.read_bytes())
    if corrupt:  # the mdat payload randomised, NAL length fields kept (see tests/encoders/media_faults.py)
        with av.open(str(path)) as c:
            for p in c.demux():
                if p.pos is None or not p.size:
                    continue
                if p.stream.type == "video":
                    i, end = p.pos, p.pos + p.size
                    while i + 4 < end and (n := int.from_bytes(data[i:i + 4], "big")) > 1:
                        data[i + 5:i + 4 + n] = rng.integers(0, 256, n - 1, np.uint8).tobytes()
                        i += 4 + n
                else:
                    data[p.pos:p.pos + p.size] = rng.integers(0, 256, p.size, np.uint8).tobytes()
    return bytes(data)


def _sound(fmt: str) -> bytes:
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    if fmt == "wav":
        buf = io.BytesIO()
        sf.write(buf, wave, 16000, format="WAV")
        return buf.getvalue()
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as c:
        s = c.add_stream("libmp3lame", rate=16000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(wave[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for r in av.AudioResampler(format=s.codec_context.format.name, layout="mono", rate=16000).resample(frame):
            c.mux(s.encode(r))
        c.mux(s.encode(None))
    return buf.getvalue()


@pytest.fixture(scope="module")
def decoder():
    with DecodeProcess() as d:
        yield d


@pytest.mark.timeout(300)
def test_results_and_errors(decoder, tmp_path):
    clip = decoder.decode("video", _clip(tmp_path / "ok.mp4"), frames=4)
    assert isinstance(clip, VideoClip) and len(clip.frames) == 4 and isinstance(clip.audio, torch.Tensor)
    for fmt in ("wav", "mp3"):
        wave = decoder.decode("audio", _sound(fmt))
        assert isinstance(wave, torch.Tensor) and abs(wave.numel() - 16000) < 2000
    png = io.BytesIO()
    Image.new("RGB", (20, 10), "red").save(png, format="PNG")
    assert decoder.decode("image", png.getvalue()).size == (20, 10)
    for kind in ("image", "audio", "video"):
        with pytest.raises(InputError, match="not a readable"):
            decoder.decode(kind, b"\x00garbage" * 50)
    for _ in range(3):  # the clip that hung a whole process: an InputError each time, same child
        pid = decoder.pid
        with pytest.raises(InputError, match="not a readable video file"):
            decoder.decode("video", _clip(tmp_path / "bad.mp4", corrupt=True))
        assert decoder.pid == pid
    with pytest.raises(InputError, match="max_image_pixels"):
        decoder.decode("image", png.getvalue(), limits=Limits(max_image_pixels=100))


@pytest.mark.timeout(300)
def test_a_slow_call_is_cut_and_the_child_restarted(decoder, tmp_path):
    data = _clip(tmp_path / "long.mp4", frames=24)
    decoder.decode("video", data, frames=2)  # make sure a child is running
    conn, restarts, pid = decoder._conn, decoder.restarts, decoder.pid
    send = conn.send
    # A hung codec: the child is stopped as soon as it has the request, so only the parent's deadline can
    # answer (the child's own cooperative check would otherwise race it).
    conn.send = lambda msg: (send(msg), os.kill(pid, signal.SIGSTOP))
    with pytest.raises(InputError, match=r"decoding took longer than 0.5 s"):
        decoder.decode("video", data, timeout=0.5)
    assert decoder.restarts == restarts + 1
    clip = decoder.decode("video", data, frames=2)  # a fresh child answers
    assert clip.frames and decoder.pid not in (None, pid)


@pytest.mark.timeout(300)
def test_the_childs_own_deadline_is_a_clear_input_error(decoder, tmp_path):
    data = _clip(tmp_path / "long.mp4", frames=240)
    # Far less than decoding takes: whichever deadline answers first (the child's check between frames, or
    # the parent's kill), the caller gets the same clear error, and the decoder still works afterwards.
    with pytest.raises(InputError, match="decoding took longer than"):
        decoder.decode("video", data, timeout=0.001)
    assert decoder.decode("video", data, frames=2).frames


@pytest.mark.timeout(300)
def test_a_crashed_child_is_an_input_error_and_restarted(decoder, tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    decoder.decode("image", png.getvalue())  # make sure a child is running
    conn, restarts = decoder._conn, decoder.restarts
    send = conn.send
    conn.send = lambda msg: (send(msg), os.kill(decoder.pid, signal.SIGSEGV))  # dies mid-request
    with pytest.raises(InputError, match="decoder crashed on this input"):
        decoder.decode("video", _clip(tmp_path / "c.mp4"))
    assert decoder.restarts == restarts + 1
    assert decoder.decode("image", png.getvalue()).size == (8, 8)
