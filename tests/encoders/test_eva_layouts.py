"""EVA ViT-g checkpoints in their published layouts load strictly into the tower, at tiny size.

The tiny analog of BLIP-2's tower: a published depth of 3 read at layer -2, so 2 blocks run (BLIP-2: 40 and
39). References are written here from each layout's published semantics, reading tensors by their names
(LAVIS `eva_vit.py` blocks, SAT pre-norm layers), or are transformers' own `Blip2VisionModel`.
"""

import logging

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import Blip2VisionConfig, Blip2VisionModel

from encoders import create_encoder
from encoders.eva_layouts import eva_state_from_hf_blip2, eva_state_from_lavis, eva_state_from_sat
from mm.errors import InputError

D, HEADS, MLP, IMG, PATCH = 32, 4, 64, 28, 14
N = (IMG // PATCH) ** 2 + 1  # CLS + patches
PUBLISHED, RUN = 3, 2  # blocks of the published tower, blocks that run for layer=-2


def tiny_eva(**overrides):
    return create_encoder("eva-vit-g-14", img_size=IMG, embed_dim=D, num_heads=HEADS, mlp_ratio=MLP / D,
                          depth=PUBLISHED, **overrides)


def _randn(g, *shape, scale=0.2):
    return torch.randn(*shape, generator=g) * scale


def lavis_state(blocks=RUN, seed=0):
    """Random tensors in LAVIS `eva_vit_g.pth` names and shapes (q_bias/v_bias, no key bias, no final norm)."""
    g = torch.Generator().manual_seed(seed)
    st = {"cls_token": _randn(g, 1, 1, D, scale=1), "pos_embed": _randn(g, 1, N, D, scale=1),
          "patch_embed.proj.weight": _randn(g, D, 3, PATCH, PATCH, scale=0.05), "patch_embed.proj.bias": _randn(g, D)}
    for i in range(blocks):
        b = f"blocks.{i}."
        st |= {b + "norm1.weight": 1 + _randn(g, D), b + "norm1.bias": _randn(g, D),
               b + "attn.qkv.weight": _randn(g, 3 * D, D), b + "attn.q_bias": _randn(g, D),
               b + "attn.v_bias": _randn(g, D), b + "attn.proj.weight": _randn(g, D, D),
               b + "attn.proj.bias": _randn(g, D), b + "norm2.weight": 1 + _randn(g, D), b + "norm2.bias": _randn(g, D),
               b + "mlp.fc1.weight": _randn(g, MLP, D), b + "mlp.fc1.bias": _randn(g, MLP),
               b + "mlp.fc2.weight": _randn(g, D, MLP), b + "mlp.fc2.bias": _randn(g, D)}
    return st


def _attention(h, qkv_w, qkv_b, out_w, out_b):
    """Multi-head self-attention with rows [q|k|v] of one packed projection."""
    b, n, _ = h.shape
    q, k, v = F.linear(h, qkv_w, qkv_b).reshape(b, n, 3, HEADS, D // HEADS).permute(2, 0, 3, 1, 4)
    a = (q @ k.transpose(-1, -2) * (D // HEADS) ** -0.5).softmax(-1)
    return F.linear((a @ v).transpose(1, 2).reshape(b, n, D), out_w, out_b)


def _mlp(h, w1, b1, w2, b2):
    return F.linear(F.gelu(F.linear(h, w1, b1)), w2, b2)


def _embed(pixels, patch_w, patch_b, cls, pos):
    x = F.conv2d(pixels, patch_w, patch_b, stride=PATCH).flatten(2).transpose(1, 2)  # (B, N-1, D)
    return torch.cat([cls.reshape(1, 1, D).expand(len(x), -1, -1), x], dim=1) + pos.reshape(1, N, D)


def lavis_forward(st, pixels, blocks=RUN):
    """LAVIS VisionTransformer.forward_features: pre-norm blocks, qkv bias = [q_bias | 0 | v_bias]."""
    x = _embed(pixels, st["patch_embed.proj.weight"], st["patch_embed.proj.bias"], st["cls_token"], st["pos_embed"])
    for i in range(blocks):
        b = f"blocks.{i}."
        bias = torch.cat([st[b + "attn.q_bias"], torch.zeros(D), st[b + "attn.v_bias"]])
        h = F.layer_norm(x, (D,), st[b + "norm1.weight"], st[b + "norm1.bias"], 1e-6)
        x = x + _attention(h, st[b + "attn.qkv.weight"], bias, st[b + "attn.proj.weight"], st[b + "attn.proj.bias"])
        h = F.layer_norm(x, (D,), st[b + "norm2.weight"], st[b + "norm2.bias"], 1e-6)
        x = x + _mlp(h, st[b + "mlp.fc1.weight"], st[b + "mlp.fc1.bias"], st[b + "mlp.fc2.weight"], st[b + "mlp.fc2.bias"])
    return x


def sat_state(seed=1, blocks=RUN):
    """Random tensors in VisualGLM's SAT EVAViT names (full qkv bias, ln_vision in the `cls` mixin)."""
    g = torch.Generator().manual_seed(seed)
    st = {"transformer.word_embeddings.weight": _randn(g, 1, D, scale=1),
          "transformer.position_embeddings.weight": _randn(g, N, D, scale=1),
          "mixins.patch_embedding.proj.weight": _randn(g, D, 3, PATCH, PATCH, scale=0.05),
          "mixins.patch_embedding.proj.bias": _randn(g, D),
          "mixins.cls.ln_vision.weight": 1 + _randn(g, D), "mixins.cls.ln_vision.bias": _randn(g, D)}
    for i in range(blocks):
        p = f"transformer.layers.{i}."
        st |= {p + "input_layernorm.weight": 1 + _randn(g, D), p + "input_layernorm.bias": _randn(g, D),
               p + "attention.query_key_value.weight": _randn(g, 3 * D, D),
               p + "attention.query_key_value.bias": _randn(g, 3 * D),  # a non-zero key third too
               p + "attention.dense.weight": _randn(g, D, D), p + "attention.dense.bias": _randn(g, D),
               p + "post_attention_layernorm.weight": 1 + _randn(g, D), p + "post_attention_layernorm.bias": _randn(g, D),
               p + "mlp.dense_h_to_4h.weight": _randn(g, MLP, D), p + "mlp.dense_h_to_4h.bias": _randn(g, MLP),
               p + "mlp.dense_4h_to_h.weight": _randn(g, D, MLP), p + "mlp.dense_4h_to_h.bias": _randn(g, D)}
    return st


def sat_forward(st, pixels, blocks=RUN):
    """VisualGLM `EVAViT(image)[0]`: SAT pre-norm layers, no final layernorm, then `ln_vision`."""
    x = _embed(pixels, st["mixins.patch_embedding.proj.weight"], st["mixins.patch_embedding.proj.bias"],
               st["transformer.word_embeddings.weight"], st["transformer.position_embeddings.weight"])
    for i in range(blocks):
        p = f"transformer.layers.{i}."
        h = F.layer_norm(x, (D,), st[p + "input_layernorm.weight"], st[p + "input_layernorm.bias"], 1e-6)
        x = x + _attention(h, st[p + "attention.query_key_value.weight"], st[p + "attention.query_key_value.bias"],
                           st[p + "attention.dense.weight"], st[p + "attention.dense.bias"])
        h = F.layer_norm(x, (D,), st[p + "post_attention_layernorm.weight"], st[p + "post_attention_layernorm.bias"], 1e-6)
        x = x + _mlp(h, st[p + "mlp.dense_h_to_4h.weight"], st[p + "mlp.dense_h_to_4h.bias"],
                     st[p + "mlp.dense_4h_to_h.weight"], st[p + "mlp.dense_4h_to_h.bias"])
    return F.layer_norm(x, (D,), st["mixins.cls.ln_vision.weight"], st["mixins.cls.ln_vision.bias"], 1e-5)


def _pixels(seed=5):
    return torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(seed))


def _ln_vision(tokens, st):
    return F.layer_norm(tokens, (D,), st["mixins.cls.ln_vision.weight"], st["mixins.cls.ln_vision.bias"], 1e-5)


def test_tower_builds_only_the_blocks_it_runs():
    enc = tiny_eva()
    assert (enc.num_layers, enc._index, len(enc.model.blocks)) == (PUBLISHED, RUN - 1, RUN)
    assert not [k for k in enc.state_dict() if k.startswith(("model.norm", "model.fc_norm", "model.head"))]
    with torch.device("meta"):  # the published size: 39 of EVA ViT-g's 40 blocks, ~0.99e9 parameters
        eva = create_encoder("eva-vit-g-14")
    assert (eva.num_layers, len(eva.model.blocks)) == (40, 39)
    assert abs(sum(p.numel() for p in eva.parameters()) - 9.86e8) / 9.86e8 < 0.01


@pytest.mark.parametrize("prefix,wrapper", [("", None), ("visual_encoder.", "model")])
def test_lavis_checkpoint_loads_exactly(tmp_path, prefix, wrapper):
    st = lavis_state()
    state = {prefix + k: v for k, v in st.items()}
    if prefix:  # a whole LAVIS BLIP-2 checkpoint: other components beside the tower
        state |= {"ln_vision.weight": torch.ones(D), "Qformer.bert.embeddings.LayerNorm.weight": torch.ones(8)}
    torch.save({wrapper: state} if wrapper else state, tmp_path / "eva_vit_g.pth")
    enc = tiny_eva()
    enc.load_weights(tmp_path / "eva_vit_g.pth")
    x = _pixels()
    torch.testing.assert_close(enc(x), lavis_forward(st, x))
    assert eva_state_from_lavis(state).keys() == st.keys()


def test_sat_visualglm_checkpoint_loads_exactly(tmp_path):
    sat = sat_state()
    # The whole VisualGLM release: the ViT under the `eva` mixin, beside its Q-Former and the LLM.
    whole = {"mixins.eva.model.vit." + k: v for k, v in sat.items()}
    whole |= {"mixins.eva.model.qformer.transformer.word_embeddings.weight": torch.zeros(4, 8),
              "mixins.eva.model.glm_proj.weight": torch.zeros(16, 8), "transformer.word_embeddings.weight": torch.zeros(5, 16)}
    (tmp_path / "1").mkdir()
    (tmp_path / "latest").write_text("1")
    torch.save({"module": whole}, tmp_path / "1" / "mp_rank_00_model_states.pt")
    enc = tiny_eva()
    enc.load_weights(tmp_path)  # the SAT release directory
    x = _pixels()
    expected = sat_forward(sat, x)
    # ln_vision is the bridge's input_norm here: the tower's tokens, normalised by it, are VisualGLM's ViT output.
    torch.testing.assert_close(_ln_vision(enc(x), sat), expected)
    # The ViT's own state dict (already stripped) converts to the same tensors.
    stripped = eva_state_from_sat(sat)
    assert stripped.keys() == eva_state_from_sat(whole).keys() == lavis_state().keys()


def test_sat_layout_mistakes_change_the_output():
    sat, x = sat_state(), _pixels()
    expected = sat_forward(sat, x)
    good = eva_state_from_sat(sat)
    enc = tiny_eva()
    enc.load_state_dict({"model." + k: v for k, v in good.items()})
    torch.testing.assert_close(_ln_vision(enc(x), sat), expected)
    # The key third of the bias is dropped on purpose: softmax ignores it (a constant per query row) ...
    no_k_bias = dict(sat)
    for i in range(RUN):
        b = no_k_bias[f"transformer.layers.{i}.attention.query_key_value.bias"].clone()
        b[D:2 * D] = 0
        no_k_bias[f"transformer.layers.{i}.attention.query_key_value.bias"] = b
    torch.testing.assert_close(sat_forward(no_k_bias, x), expected)
    # ... but [q|k|v] read as Megatron's per-head interleaving, or v_bias dropped, are caught.
    interleaved = dict(good)
    for i in range(RUN):
        w = good[f"blocks.{i}.attn.qkv.weight"]
        interleaved[f"blocks.{i}.attn.qkv.weight"] = w.view(HEADS, 3, D // HEADS, D).transpose(0, 1).reshape(3 * D, D)
    no_v_bias = {**good, **{f"blocks.{i}.attn.v_bias": torch.zeros(D) for i in range(RUN)}}
    for wrong in (interleaved, no_v_bias):
        enc.load_state_dict({"model." + k: v for k, v in wrong.items()})
        assert not torch.allclose(_ln_vision(enc(x), sat), expected, atol=1e-3)


def _hf_vision(seed=3):
    torch.manual_seed(seed)
    cfg = Blip2VisionConfig(hidden_size=D, intermediate_size=MLP, num_hidden_layers=RUN, num_attention_heads=HEADS,
                            image_size=IMG, patch_size=PATCH)
    model = Blip2VisionModel(cfg).eval()
    with torch.no_grad():  # random norms and biases (the key third of qkv.bias too), so no mapping can hide
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_transformers_blip2_vision_model_loads_exactly(tmp_path):
    hf = _hf_vision()
    state = {"vision_model." + k: v for k, v in hf.state_dict().items()}
    state |= {"query_tokens": torch.zeros(1, 4, 8), "qformer.layernorm.weight": torch.ones(8)}
    save_file(state, str(tmp_path / "model.safetensors"))
    enc = tiny_eva()
    enc.load_weights(tmp_path / "model.safetensors")
    x = _pixels()
    out = hf(pixel_values=x, output_hidden_states=True)
    torch.testing.assert_close(enc(x), out.hidden_states[-1])  # the last layer, before post_layernorm
    torch.testing.assert_close(hf.post_layernorm(enc(x)), out.last_hidden_state)
    # post_layernorm is the bridge's (input_norm), so it is not read into the tower ...
    assert not any("post_layernorm" in k for k in eva_state_from_hf_blip2(state))
    # ... and a tower that forgot it would not match transformers' output.
    assert not torch.allclose(enc(x), out.last_hidden_state, atol=1e-3)


def test_full_timm_tower_drops_what_lies_beyond_the_chosen_layer(tmp_path, caplog):
    torch.manual_seed(4)
    full = timm.create_model("eva_giant_patch14_224", pretrained=False, num_classes=5, img_size=IMG, embed_dim=D,
                             num_heads=HEADS, mlp_ratio=MLP / D, depth=PUBLISHED).eval()
    with torch.no_grad():
        for p in full.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    torch.save(full.state_dict(), tmp_path / "timm.pth")
    enc = tiny_eva()
    with caplog.at_level(logging.INFO, logger="encoders.image_timm"):
        enc.load_weights(tmp_path / "timm.pth")
    assert "beyond block 1" in caplog.text and "blocks.2." in caplog.text
    x = _pixels()
    (patches, prefix), = full.forward_intermediates(x, indices=[RUN - 1], return_prefix_tokens=True, norm=False,
                                                    output_fmt="NLC", intermediates_only=True)
    torch.testing.assert_close(enc(x), torch.cat([prefix, patches], dim=1))


def test_extra_or_missing_tensor_is_an_input_error_naming_it(tmp_path):
    extra = lavis_state() | {"blocks.0.attn.relative_position_bias_table": torch.zeros(3, HEADS)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(InputError, match=r"unexpected: model\.blocks\.0\.attn\.relative_position_bias_table"):
        tiny_eva().load_weights(tmp_path / "extra.pth")
    missing = lavis_state()
    del missing["blocks.1.mlp.fc2.bias"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(InputError, match=r"missing: model\.blocks\.1\.mlp\.fc2\.bias"):
        tiny_eva().load_weights(tmp_path / "missing.pth")
    sat = {"mixins.eva.model.vit." + k: v for k, v in sat_state().items()}
    sat["mixins.eva.model.vit.transformer.layers.0.attention.query_key_value.lora_A"] = torch.zeros(2, D)
    torch.save(sat, tmp_path / "sat.pt")
    with pytest.raises(InputError, match=r"query_key_value\.lora_A"):
        tiny_eva().load_weights(tmp_path / "sat.pt")
