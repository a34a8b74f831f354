import numpy as np
import pytest
import torch

from encoders import create_encoder, list_encoders
from encoders.image_convstem import ConvStemImageEncoder
from mm.probe import ATTRIBUTES, ProbeData, encode_scenes, fit_probe, probe_accuracy
from mm.train.encoder_pretrain import REGIONS, TARGETS, pretrain_image_encoder, scene_targets
from mm.train.trainer import TrainConfig

TINY = {"img_size": 32, "stem_channels": (8, 16), "embed_dim": 32, "depth": 1, "num_heads": 2}


def test_registered_tower_keeps_the_old_token_layout_within_budget():
    assert "tiny-convvit" in list_encoders("image")
    enc = create_encoder("tiny-convvit")
    assert (enc.image_size, enc.num_tokens, enc.width) == (128, 65, 128)  # a Q-Former for tiny-vit fits it
    # Shipped in fp16 beside a ~12 MB model that must stay under 30 MB.
    assert sum(p.numel() for p in enc.parameters()) < 3_000_000
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())


def test_tiny_config_shapes_preprocess_and_round_trip(tmp_path):
    from PIL import Image
    from safetensors.torch import save_file

    enc = create_encoder("tiny-convvit", **TINY)
    assert isinstance(enc, ConvStemImageEncoder) and enc.num_tokens == 8 * 8 + 1
    x = enc.preprocess(Image.new("RGB", (90, 40), "red"))  # any aspect ratio -> the tower's square
    assert x.shape == (3, 32, 32)
    tokens = enc(torch.stack([x, x]))
    assert tokens.shape == (2, 65, 32)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(tmp_path / "t.safetensors"))
    other = create_encoder("tiny-convvit", **TINY)
    other.load_weights(tmp_path / "t.safetensors")
    torch.testing.assert_close(other(x[None]), enc(x[None]))


def test_bad_config_is_refused_with_the_value():
    with pytest.raises(ValueError, match="img_size=30"):
        create_encoder("tiny-convvit", img_size=30, stem_channels=(8, 16))


def test_scene_targets_mark_each_region():
    from mm.synth.scene import Scene, Shape

    scene = Scene([Shape("star", "red", "small", "top left")], digit=7, digit_position="centre")
    t = scene_targets(scene)
    assert t.shape == (len(REGIONS), len(TARGETS))
    shape, colour, size, digit = t[REGIONS.index("top left")].tolist()
    assert (shape, colour, size, digit) == (1 + list(TARGETS["shape"]).index("star"),
                                            1 + list(TARGETS["colour"]).index("red"), 1, 0)
    assert t[REGIONS.index("centre"), 3] == 8 and int(t.sum()) == shape + colour + size + 8


def test_probe_reads_planted_features_and_not_noise():
    """The probe separates attributes written into one token of the grid from ones that are absent."""
    rng = np.random.default_rng(0)
    n, tokens, width = 600, 10, 16
    labels = {k: torch.from_numpy(rng.integers(0, len(c), n)) for k, c in ATTRIBUTES.items()}
    feats = torch.from_numpy(rng.normal(size=(n, tokens, width)).astype(np.float32)) * 0.1
    feats[torch.arange(n), labels["position"], 0] += 3.0  # position: which token lights up
    feats[torch.arange(n), 0, 1 + labels["shape"]] += 3.0  # shape: a code in token 0
    data = ProbeData(feats, labels)
    train, test = (ProbeData(data.features[s], {k: v[s] for k, v in labels.items()})
                   for s in (slice(0, 400), slice(400, None)))
    acc = probe_accuracy(fit_probe(train, steps=150), test)
    assert acc["position"] > 0.9 and acc["shape"] > 0.9
    assert acc["colour"] < 0.4  # nothing planted: chance is 1/6


def test_seconds_of_pretraining_lower_the_loss_and_leave_a_readable_frozen_tower(tmp_path):
    import json

    torch.manual_seed(0)
    enc = create_encoder("tiny-convvit", **{**TINY, "img_size": 64, "stem_channels": (8, 16, 32)})
    cfg = TrainConfig(steps=20, batch_size=16, lr=3e-3, warmup=2, log_every=5, ckpt_every=20)
    summary = pretrain_image_encoder(enc, cfg, tmp_path, scenes_per_epoch=320)
    assert summary["steps"] == 20 and not enc.training and not any(p.requires_grad for p in enc.parameters())
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.9 * losses[0], losses
    acc = probe_accuracy(fit_probe(encode_scenes(enc, 200, 0), steps=100), encode_scenes(enc, 150, 1))
    assert acc["position"] > 0.3, acc  # chance is 1/9


@pytest.mark.parametrize("objective", ["contrastive", "both"])
def test_caption_objectives_train_the_tower_through_the_shared_contrastive_head(tmp_path, objective):
    import json

    from mm.tokenizer import build_tokenizer
    from mm.train.contrastive import ContrastiveHead
    from mm.train.encoder_pretrain import EncoderPretrainObjective

    tok = build_tokenizer(["a large red circle at the centre", "一个大的红色圆形在中间"], vocab_size=300)
    enc = create_encoder("tiny-convvit", **TINY)
    assert isinstance(EncoderPretrainObjective(enc, objective, len(tok)).captions, ContrastiveHead)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    cfg = TrainConfig(steps=3, batch_size=8, lr=3e-3, warmup=1, log_every=1, ckpt_every=3)
    summary = pretrain_image_encoder(enc, cfg, tmp_path, objective=objective, tokenizer=tok, scenes_per_epoch=24)
    assert summary["objective"] == objective
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert losses and all(np.isfinite(losses))
    assert any(not torch.equal(before[k], v) for k, v in enc.state_dict().items())  # the tower was trained
    with pytest.raises(ValueError, match="tokenizer"):
        pretrain_image_encoder(enc, cfg, tmp_path / "x", objective=objective)
