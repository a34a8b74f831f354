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


def prompt_tokens(chat, query: str = "What is it?", **kwargs) -> int:
    """The length of the prompt `chat` builds for `query` (media slots included), from its first reply."""
    return next(chat.respond(query, max_new_tokens=1, **kwargs)).prompt_tokens


def history_tokens(chat, history: list[tuple[str, str]], query: str) -> int:
    """How many tokens `history` adds to the prompt of `query`, by the template alone (`mm.prompt.build_prompt`)."""
    from mm.prompt import build_prompt, get_template

    template = get_template(chat.config.llm.template)
    return (len(build_prompt(chat.tokenizer, template, [*history, (query, None)])[0])
            - len(build_prompt(chat.tokenizer, template, [(query, None)])[0]))


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
    return write_split(root, "test", 0, 0, seed=12, n_videos=4, n_pairs=4, workers=1)  # pairs: 1 same, 3 differ
