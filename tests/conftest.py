"""Shared fixtures: the tiny model (built once per session) and media made in the test."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageDraw


@pytest.fixture(scope="session")
def tiny():
    import mm

    return mm.load("mm-tiny")


def make_image(colour: str = "red", size: tuple[int, int] = (96, 80)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).ellipse([10, 10, 60, 60], fill=colour)
    return img


def tone(freq: float = 440.0, seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(wave: np.ndarray, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV")
    return buf.getvalue()
