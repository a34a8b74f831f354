import torch

from encoders import create_encoder
from encoders.image_openclip import OpenCLIPImageEncoder


def test_tiny_vit_last_layer_matches_timm_forward_features():
    enc = create_encoder("tiny-vit")
    x = torch.randn(2, 3, 64, 64)
    tokens = enc(x)
    assert tokens.shape == (2, 65, 128)
    torch.testing.assert_close(enc.model.norm(tokens), enc.model.forward_features(x))


def test_earlier_layer_is_a_different_prefix_of_the_tower():
    last = create_encoder("tiny-vit", layer=-1)
    penult = create_encoder("tiny-vit", layer=-2)
    penult.load_state_dict(last.state_dict())
    x = torch.randn(1, 3, 64, 64)
    manual = last.model.norm_pre(last.model._pos_embed(last.model.patch_embed(x)))
    for blk in last.model.blocks[:-1]:
        manual = blk(manual)
    torch.testing.assert_close(penult(x), manual)


def test_openclip_tower_matches_open_clip_tokens():
    enc = OpenCLIPImageEncoder("ViT-B-32", layer=-1, width=64, layers=2, patch_size=16, image_size=32)
    enc.model.output_tokens = True
    x = torch.randn(2, 3, 32, 32)
    tokens = enc(x)
    assert tokens.shape == (2, 5, 64) and enc.num_tokens == 5
    _, patch_tokens = enc.model(x)
    torch.testing.assert_close(enc.model.ln_post(tokens)[:, 1:], patch_tokens)


def test_weights_round_trip_through_a_checkpoint_file(tmp_path):
    from safetensors.torch import save_file

    src = create_encoder("tiny-vit")
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p))
    # An open_clip-style full checkpoint: the tower under `visual.trunk.`, plus unrelated text weights.
    state = {"visual.trunk." + k[len("model."):]: v for k, v in src.state_dict().items()}
    state["text.token_embedding.weight"] = torch.zeros(3, 3)
    save_file(state, str(tmp_path / "tower.safetensors"))
    dst = create_encoder("tiny-vit")
    dst.load_weights(tmp_path / "tower.safetensors")
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(dst(x), src(x))
    assert not dst.training and not any(p.requires_grad for p in dst.parameters())
