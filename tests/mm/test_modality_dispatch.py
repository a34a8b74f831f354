"""Behaviour that used to be chosen by `if modality == "..."` in training, serving and evaluation, now asked
of the modality objects: the same tensors, options and messages as the branches gave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from encoders.audio_io import load_audio, log_mel
from encoders.video_io import load_video
from mm.decode_process import DecodeProcess
from mm.errors import InputError
from mm.limits import Limits
from mm.modality import AudioModality, ImageModality
from mm.train.examples import TRACK, example_media, sound_track
from mm.train.features import FeatureCache
from mm.train.sources import Record
from tests.conftest import make_image, tone, wav_bytes


@pytest.fixture(scope="module")
def files(tmp_path_factory, clips):
    root = tmp_path_factory.mktemp("media")
    png, wav = root / "a.png", root / "a.wav"
    make_image("green").save(png)
    wav.write_bytes(wav_bytes(tone(330.0, 0.7)))
    manifest = [json.loads(line) for line in Path(clips).read_text().splitlines()]
    clip = next(str(Path(clips).parent / r["video"]) for r in manifest if "video" in r)
    return str(png), str(wav), clip


def test_training_reads_each_kind_as_the_feature_cache_always_did(video_model, files, tmp_path):
    png, wav, clip = files
    model = video_model.model
    image, audio, video = (model.modalities[m] for m in ("image", "audio", "video"))
    enc = model.encoders["image"]
    assert torch.equal(image.prepare_training(png), enc.preprocess(png))
    assert torch.equal(audio.prepare_training(wav), load_audio(wav, audio.encoder.sample_rate))
    v = model.config.video
    frames = load_video(clip, frames=v.frames, fps=v.fps, max_frames=v.max_frames, audio=False).frames
    assert torch.equal(video.prepare_training(clip), torch.stack([enc.preprocess(f) for f in frames]))
    # A clip's sound track: the audio cache reads it from the clip's own file.
    track = FeatureCache(tmp_path, model, "audio")._prepare(clip + TRACK)
    assert torch.equal(track, load_audio(clip, audio.encoder.sample_rate))


def test_a_clip_brings_its_sound_track_into_training_examples():
    assert sound_track("video") == "audio" and sound_track("image") is None and sound_track("text") is None
    record = Record("r", [("image", "a.png"), ("video", "c.mp4"), ("audio", "s.wav")])
    assert example_media(record) == [("image", "a.png"), ("video", "c.mp4"), ("audio", "c.mp4" + TRACK),
                                     ("audio", "s.wav")]


def test_stage0_inputs_and_tokens_are_the_encoders_own(video_model, files):
    png, wav, _ = files
    model = video_model.model
    image, audio = model.modalities["image"], model.modalities["audio"]
    x = image.pretrain_input(png)
    assert torch.equal(x, model.encoders["image"].preprocess(png))
    assert torch.equal(image.pretrain_tokens(x[None]), model.encoders["image"].tokens(x[None]))
    enc = model.encoders["audio"]
    mel = audio.pretrain_input(wav)
    assert torch.equal(mel, log_mel(load_audio(wav, enc.sample_rate), enc.n_mels, enc.window_frames))
    assert torch.equal(audio.pretrain_tokens(mel[None]), enc.model(mel[None]).last_hidden_state)
    with pytest.raises(ValueError, match="video modality has no encoder of its own"):
        model.modalities["video"].pretrain_input(png)


def test_pretraining_the_video_encoder_is_a_clear_error(video_model, tmp_path):
    """Clips read through the image encoder: stage 0 is asked of `image`, and `video` says so."""
    from mm.train.stages import pretrain_encoder
    from mm.train.trainer import TrainConfig

    with pytest.raises(ValueError, match="video modality has no encoder of its own to pretrain"):
        pretrain_encoder(video_model, [], "video", TrainConfig(steps=1), tmp_path)


def test_stage0_objective_keeps_its_parameter_names(video_model):
    from mm.train.contrastive import ContrastiveObjective, TextTower

    encoder = video_model.model.encoders["image"]
    before = [p.requires_grad for p in encoder.parameters()]
    try:
        objective = ContrastiveObjective(video_model.model.modalities["image"], TextTower(100))
        names = [n for n, _ in objective.named_parameters()]
        assert objective.encoder is encoder and all(p.requires_grad for p in encoder.parameters())
        # The same names in the same order as before (optimizer state and checkpoints follow it).
        assert list(dict.fromkeys(n.split(".")[0] for n in names)) == ["logit_scale", "encoder", "text", "media_proj"]
    finally:
        for p, flag in zip(encoder.parameters(), before):
            p.requires_grad_(flag)


def test_the_server_decodes_each_kind_as_it_did(video_model):
    model = video_model.model
    image, audio, video = (model.modalities[m] for m in ("image", "audio", "video"))
    assert (image.decode_in_child, audio.decode_in_child, video.decode_in_child) == (False, True, True)
    v = model.config.video
    assert audio.child_options() == {"sample_rate": 16000}
    assert video.child_options() == {"frames": v.frames, "fps": v.fps, "max_frames": v.max_frames,
                                     "sample_rate": 16000, "with_audio": True}
    import io

    big = io.BytesIO()
    make_image(size=(40, 40)).save(big, format="PNG")
    with pytest.raises(InputError, match="image 2: .*the limit is 100"):
        ImageModality.check_header(big.getvalue(), Limits(max_image_pixels=100), "image 2")
    AudioModality.check_header(b"anything", Limits(), "audio 0")  # sound has no header check
    with pytest.raises(ValueError, match=r"kind must be 'image', 'audio' or 'video', got 'text'"):
        DecodeProcess().decode("text", b"x")  # refused before a child is started


def test_only_pictures_have_their_caption_objects_scored(tiny, tmp_path):
    from mm.evaluate import evaluate
    from mm.synth import write_split

    manifest = write_split(tmp_path, "test", 1, 1, seed=3, workers=1)
    report = evaluate(tiny, manifest, limit=1, batch_size=4, progress=False)
    scored = {c["modality"]: c["objects"] is not None for c in report.captions}
    assert scored == {"image": True, "audio": False}
