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


@pytest.fixture(scope="session")
def video_model():
    """mm-tiny's architecture with video input, untrained bridges (for mechanics, not answers)."""
    import torch
    from transformers import AutoTokenizer

    from mm.chat import MMChat
    from mm.config import preset
    from mm.loading import shipped_weights
    from mm.model import MMModel

    tokenizer = AutoTokenizer.from_pretrained(shipped_weights("mm-tiny"), local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return MMChat(MMModel(preset("mm-tiny")), tokenizer)


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """A few synthetic clips and clip pairs on disk (the test split manifest), written once per session."""
    from mm.synth import write_split

    root = tmp_path_factory.mktemp("clips")
    return write_split(root, "test", 0, 0, seed=12, n_videos=4, n_pairs=4, workers=1)  # pairs: 3 same, 1 motion
