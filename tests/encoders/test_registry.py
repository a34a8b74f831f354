import pytest
import torch

from encoders import create_encoder, list_encoders


def test_lists_real_and_tiny_encoders():
    names = list_encoders()
    for n in ("eva-vit-g-14", "openai-vit-l-14", "tiny-vit", "whisper-large-v3", "whisper-small", "tiny-whisper"):
        assert n in names
    assert "tiny-whisper" in list_encoders("audio") and "tiny-whisper" not in list_encoders("image")


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="tiny-vit"):
        create_encoder("vit-huge-9000")


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-whisper"])
def test_frozen_means_frozen(name):
    enc = create_encoder(name)
    model = torch.nn.Sequential(enc, torch.nn.Linear(2, 2))
    model.train()
    assert not enc.training and all(not m.training for m in enc.modules())
    assert all(not p.requires_grad for p in enc.parameters())
    opt_params = [p for p in model.parameters() if p.requires_grad]
    assert len(opt_params) == 2  # only the Linear's weight and bias reach an optimiser


def test_full_scale_shapes_on_meta_device():
    with torch.device("meta"):
        eva = create_encoder("eva-vit-g-14")
        clip = create_encoder("openai-vit-l-14")
        whisper = create_encoder("whisper-large-v3")
    assert (eva.num_tokens, eva.width, eva.image_size) == (257, 1408, 224)
    assert eva.num_layers == 40 and eva._index == 38  # penultimate block, as BLIP-2 uses
    assert (clip.num_tokens, clip.width) == (257, 1024)
    assert (whisper.width, whisper.n_mels, whisper.window_seconds) == (1280, 128, 30.0)
    out = eva(torch.empty(1, 3, 224, 224, device="meta"))
    assert out.shape == (1, 257, 1408)
