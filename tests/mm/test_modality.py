"""Modality objects: one per input kind, looped over by the model; the one pad-and-mask helper."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from encoders.media_types import MEDIA_EXTENSIONS
from mm.collate import pad_and_mask
from mm.errors import InputError
from mm.loading import shipped_weights
from mm.media import _prepared, prepare_media
from mm.modality import MODALITY_TYPES, AudioModality, VideoModality
from tests.conftest import make_image, tone


def test_every_input_kind_is_one_object_with_its_own_extensions(video_model):
    model = video_model.model
    assert list(model.modalities) == model.config.modalities == ["image", "audio", "video"]
    for name, modality in model.modalities.items():
        assert type(modality) is MODALITY_TYPES[name] and modality.name == name
        assert modality.extensions == MEDIA_EXTENSIONS[name]
    assert model.modalities["video"].encoder is model.encoders["image"]  # frames go through the image tower


def test_the_state_dict_keys_are_the_shipped_ones(tiny):
    with safe_open(str(shipped_weights("mm-tiny") / "model.safetensors"), "pt") as f:
        shipped = set(f.keys())
    assert set(tiny.model.state_dict()) == shipped
    assert not any(k.startswith("modalities") for k in shipped)


def test_a_model_without_a_modality_has_neither_its_object_nor_its_weights():
    import dataclasses

    from mm.config import preset
    from mm.model import MMModel

    config = dataclasses.replace(preset("mm-tiny"), audio_encoder=None, audio_qformer=None)
    with torch.device("meta"):
        model = MMModel(config)
    assert list(model.modalities) == ["image", "video"]
    assert not any(".audio." in k for k in model.state_dict())
    with pytest.raises(InputError, match=r"does not take audio input \(it takes: image, video\)"):
        model.modality("audio")
    assert model.modalities["video"].audio is None  # a clip's sound track is then left out


def test_preparing_goes_through_the_modality_and_keeps_the_fingerprints(tiny):
    image = tiny.model.modalities["image"]
    (item,) = image.prepare(make_image("blue"))
    assert item.modality == "image" and item.data.shape[0] == 3
    assert item.key == _prepared("image", item.data).key == image.fingerprint(item.data)
    (sound,) = prepare_media(tiny.model, "audio", (tone(), 16000))
    assert sound.modality == "audio" and sound.data.ndim == 1
    assert image.prepare(make_image("blue"))[0].key == item.key != image.prepare(make_image("red"))[0].key


def test_slots_collation_and_embedding_per_modality(video_model):
    model = video_model.model
    audio: AudioModality = model.modalities["audio"]
    short, long = audio.item(torch.from_numpy(tone(seconds=0.5))), audio.item(torch.from_numpy(tone(seconds=2.0)))
    states, mask, valid = audio.encode(audio.collate([short, long]))
    embeds = audio.embed(audio.collate([short, long]))
    assert [e.shape[0] for e in embeds] == [audio.num_slots(v) for v in valid]
    assert mask is not None and mask.sum(1).tolist() == valid
    video: VideoModality = model.modalities["video"]
    side = model.encoders["image"].image_size
    clips = [video.item(torch.randn(n, 3, side, side)) for n in (3, 5)]
    batch = video.collate(clips)
    assert batch.pixels.shape[:2] == (2, 5) and batch.frames == [3, 5]
    assert batch.pixels[0, 3:].abs().sum() == 0  # frames beyond a clip are zero
    assert [e.shape[0] for e in video.embed(batch)] == [video.num_slots(0)] * 2


def test_pad_and_mask_pads_either_side():
    a, b = torch.tensor([1, 2, 3]), torch.tensor([4])
    right, mask = pad_and_mask([a, b], value=-1)
    assert right.tolist() == [[1, 2, 3], [4, -1, -1]] and mask.tolist() == [[True] * 3, [True, False, False]]
    left, mask = pad_and_mask([a, b], side="left", value=0)
    assert left.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[True] * 3, [False, False, True]]
    with pytest.raises(ValueError):
        pad_and_mask([])
