"""Broken media made in the test: the corrupt clip that used to hang the process, and friends."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from encoders.video_io import write_video

SUBTITLES_ONLY = b"1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n\n"


def noisy_clip(path: Path, frames: int = 48, size: int = 128, audio: bool = False, seed: int = 0) -> Path:
    """A small H.264 clip (12 fps) of noisy grey ramps, with a 440 Hz tone when `audio`."""
    rng = np.random.default_rng(seed)
    images = [np.clip(np.full((size, size, 3), k * 10 % 255) + rng.integers(0, 40, (size, size, 3)), 0, 255)
              .astype(np.uint8) for k in range(frames)]
    sound = (0.1 * np.sin(2 * np.pi * 440 * np.arange(16000 * frames // 12) / 16000)).astype(np.float32)
    return write_video(path, images, 12, audio=sound if audio else None)


def corrupt_payload(clip: Path, out: Path, seed: int = 1) -> Path:
    """`clip` with its `mdat` payload replaced by random bytes, the headers (and NAL length fields) intact.

    Keeping each NAL unit's length field makes FFmpeg's H.264 frame threads decode garbage and log
    errors: the input that hung `load_video` forever (see `encoders.av_guard`).
    """
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(seed)
    with av.open(str(clip)) as c:
        for packet in c.demux():
            if packet.pos is None or packet.size == 0:
                continue
            if packet.stream.type != "video":
                data[packet.pos:packet.pos + packet.size] = rng.integers(0, 256, packet.size, np.uint8).tobytes()
                continue
            i, end = packet.pos, packet.pos + packet.size
            while i + 4 < end:
                n = int.from_bytes(data[i:i + 4], "big")
                if n <= 1:
                    break
                data[i + 5:i + 4 + n] = rng.integers(0, 256, n - 1, np.uint8).tobytes()  # keep the NAL header
                i += 4 + n
    out.write_bytes(bytes(data))
    return out
