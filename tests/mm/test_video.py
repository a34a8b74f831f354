"""Video as a modality: synthetic clips, frames + sound track in the prompt, the temporal Q-Former."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bridge.qformer import QFormerConfig
from bridge.temporal import TemporalQFormer
from encoders.video_io import load_video, write_video
from mm.errors import InputError
from mm.media import prepare_media
from mm.synth.clip_text import caption_clip, compare_answer
from mm.synth.video import sample_clip, variant
from tests.conftest import history_tokens, prompt_tokens, tone


def _records(manifest):
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def test_synthetic_clips_are_real_h264_aac_files_with_known_answers(clips):
    recs = _records(clips)
    videos = [r for r in recs if "video" in r]
    pairs = [r for r in recs if "videos" in r]
    assert len(videos) == 4 and len(pairs) == 4
    clip = load_video(clips.parent / videos[0]["video"], frames=8)
    assert clip.info["video_codec"] == "h264" and clip.info["audio_codec"] == "aac" and len(clip.frames) == 8
    meta = videos[0]["meta"]
    assert meta["motion"] in videos[0]["captions"]["en"].replace("upwards", "up").replace("downwards", "down")
    types = {q["type"] for q in videos[0]["qa"]}
    assert types == {"motion", "speed", "object", "beep", "when"}
    for p in pairs:
        assert p["qa"][0]["type"] == "difference" and len(p["videos"]) == 2


def test_clip_pairs_differ_in_exactly_the_named_attribute():
    rng = np.random.default_rng(4)
    a = sample_clip(rng)
    for attr in ("motion", "speed", "colour", "shape", "pitch", "when"):
        b = variant(a, attr, rng)
        assert getattr(b, attr) != getattr(a, attr)
        same = [k for k in ("motion", "speed", "colour", "shape", "pitch", "when") if k != attr]
        assert all(getattr(a, k) == getattr(b, k) for k in same)
    b = variant(a, "motion", rng)
    en = compare_answer(a, b, "motion", "en").a
    assert en.startswith("In the first clip the shape moves") and caption_clip(a, "zh").endswith("哔声。")
    with pytest.raises(ValueError, match="unknown clip attribute"):
        variant(a, "weight", rng)


def test_a_video_with_sound_becomes_frames_then_its_sound_track(video_model, clips):
    path = clips.parent / _records(clips)[0]["video"]
    items = prepare_media(video_model.model, "video", path)
    side = video_model.model.encoders["image"].image_size
    assert [p.modality for p in items] == ["video", "audio"] and items[0].data.shape == (8, 3, side, side)
    video_slots, audio_slots = (len(e) for e in video_model._embed(items))
    assert video_slots == 8 and audio_slots > 0
    base = next(video_model.respond("What happens?", max_new_tokens=1)).prompt_tokens
    with_video = next(video_model.respond("What happens?", video=path, max_new_tokens=1)).prompt_tokens
    assert with_video - base == video_slots + audio_slots
    answer, history = video_model.chat("What happens?", video=path, max_new_tokens=4)
    assert history == [("What happens?", answer)]
    # The follow-up reads the clip and the first turn: longer by exactly that turn's tokens.
    again = prompt_tokens(video_model, "And then?", video=path, history=history)
    turn = history_tokens(video_model, history, "And then?")
    assert again - prompt_tokens(video_model, "And then?", video=path) == turn > 0


def test_silent_video_and_audio_only_file(video_model, tmp_path):
    frames = [np.full((48, 64, 3), 20 * k, np.uint8) for k in range(12)]
    silent = write_video(tmp_path / "silent.webm", frames, 12, codec="libvpx-vp9")
    assert [p.modality for p in prepare_media(video_model.model, "video", silent)] == ["video"]
    import soundfile as sf

    wav = tmp_path / "x.wav"
    sf.write(wav, tone(seconds=0.5), 16000)
    assert [p.modality for p in prepare_media(video_model.model, "video", wav)] == ["audio"]


def test_temporal_qformer_ignores_padded_frames():
    cfg = QFormerConfig(num_queries=4, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                        cross_attention_every=1, encoder_width=32)
    t = TemporalQFormer(cfg, max_frames=8).eval()
    x = torch.randn(1, 3, 5, 32)  # 3 frames of 5 tokens
    alone = t(x, torch.ones(1, 3, dtype=torch.bool))
    padded = torch.cat([x, torch.randn(1, 2, 5, 32)], dim=1)
    mask = torch.tensor([[True, True, True, False, False]])
    torch.testing.assert_close(t(padded, mask), alone, atol=1e-5, rtol=1e-5)
    # Frame order matters (frame-position embedding): reversing the frames changes the output.
    assert not torch.allclose(t(x.flip(1)), alone, atol=1e-4)
    with pytest.raises(ValueError, match="frame-position table"):
        t(torch.randn(1, 9, 5, 32))


def test_batched_clips_of_different_lengths_match_one_by_one(video_model):
    from mm.media import _prepared, batch_inputs

    m = video_model.model
    side = m.encoders["image"].image_size
    short = _prepared("video", torch.randn(3, 3, side, side))
    long = _prepared("video", torch.randn(8, 3, side, side))
    with torch.no_grad():
        both = m.bridge_tokens("video", batch_inputs(m, "video", [short, long]))
        alone = m.bridge_tokens("video", batch_inputs(m, "video", [short]))
    torch.testing.assert_close(both[0], alone[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("item,message", [
    (b"not a video", "not a readable video"),
    ("missing.mp4", "no such file"),
])
def test_bad_video_is_an_input_error(video_model, item, message):
    with pytest.raises(InputError, match=message):
        video_model.chat("What happens?", video=item)


def test_video_counts_twice_against_max_media(video_model, clips):
    path = clips.parent / _records(clips)[0]["video"]
    with pytest.raises(InputError, match="a video with sound counts as two"):
        video_model.chat("?", video=[path] * 5)


def test_model_without_video_says_so(video_model):
    from mm.chat import MMChat
    from mm.config import apply_overrides, preset
    from mm.model import MMModel

    still = MMChat(MMModel(apply_overrides(preset("mm-tiny"), {"video": None})), video_model.tokenizer)
    assert "video" not in still.config.modalities
    with pytest.raises(InputError, match="does not take video"):
        still.chat("?", video="x.mp4")
