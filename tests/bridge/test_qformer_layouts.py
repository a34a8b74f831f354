"""Bridge checkpoints (VisualGLM SAT and HF port, LAVIS BLIP-2, transformers BLIP-2) load into our Q-Former.

Each layout is built here at tiny size in its published names and packing, loaded through
`bridge_state_from_checkpoint` with strict accounting, and compared with a reference: a SAT post-norm
Q-Former written here from SwissArmyTransformer's `layer_forward_default`, or transformers' own BLIP-2.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2QFormerConfig,
    Blip2QFormerModel,
    OPTConfig,
)

from bridge import Projector, ProjectorConfig, QFormer, QFormerConfig, qformer_state_from_blip2
from bridge.layouts import (
    IMAGE_ENCODER,
    LLM,
    TEXT_BRANCH,
    bridge_state_from_checkpoint,
    projector_state_from_visualglm,
    qformer_config_from_state,
    qformer_state_from_sat,
)
from encoders import create_encoder
from encoders.weights import load_into, read_state_dict
from mm.errors import InputError

D, HEADS, INNER, DE, Q, LAYERS, E = 32, 4, 64, 24, 8, 4, 40  # cross-attention on layers 0 and 2


def _randn(g, *shape, scale=0.2):
    return torch.randn(*shape, generator=g) * scale


def sat_qformer_state(seed=0):
    """Random tensors in VisualGLM's SAT QFormer names: queries = 32-word (here Q) vocabulary, post-norm layers,
    cross-attention (`key_value` rows [k|v]) on even layers, final_layernorm."""
    g = torch.Generator().manual_seed(seed)

    def norm(name):
        return {name + ".weight": 1 + _randn(g, D), name + ".bias": _randn(g, D)}

    def linear(name, out, inp):
        return {name + ".weight": _randn(g, out, inp), name + ".bias": _randn(g, out)}

    st = {"transformer.word_embeddings.weight": _randn(g, Q, D, scale=1.0)} | norm("transformer.final_layernorm")
    for i in range(LAYERS):
        p = f"transformer.layers.{i}."
        st |= norm(p + "input_layernorm") | linear(p + "attention.query_key_value", 3 * D, D)
        st |= linear(p + "attention.dense", D, D) | norm(p + "post_attention_layernorm")
        if i % 2 == 0:
            st |= linear(p + "cross_attention.query", D, D) | linear(p + "cross_attention.key_value", 2 * D, DE)
            st |= linear(p + "cross_attention.dense", D, D) | norm(p + "post_cross_attention_layernorm")
        st |= linear(p + "mlp.dense_h_to_4h", INNER, D) | linear(p + "mlp.dense_4h_to_h", D, INNER)
    return st


def _mha(x, context, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b):
    b = x.shape[0]

    def heads(t):
        return t.reshape(b, t.shape[1], HEADS, D // HEADS).transpose(1, 2)

    q, k, v = heads(F.linear(x, q_w, q_b)), heads(F.linear(context, k_w, k_b)), heads(F.linear(context, v_w, v_b))
    a = (q @ k.transpose(-1, -2) / (D // HEADS) ** 0.5).softmax(-1)
    return F.linear((a @ v).transpose(1, 2).reshape(b, -1, D), o_w, o_b)


def sat_qformer_forward(st, enc):
    """SAT `BaseTransformer` with layernorm_order='post' (transformer_defaults.layer_forward_default)."""
    def ln(x, name):
        return F.layer_norm(x, (D,), st[name + ".weight"], st[name + ".bias"], 1e-12)

    h = st["transformer.word_embeddings.weight"][None].expand(enc.shape[0], -1, -1)  # word_embeddings(arange(Q))
    for i in range(LAYERS):
        p = f"transformer.layers.{i}."
        a = ln(h, p + "input_layernorm")
        q_w, k_w, v_w = st[p + "attention.query_key_value.weight"].chunk(3)
        q_b, k_b, v_b = st[p + "attention.query_key_value.bias"].chunk(3)
        h = a + _mha(a, a, q_w, q_b, k_w, k_b, v_w, v_b, st[p + "attention.dense.weight"], st[p + "attention.dense.bias"])
        m = ln(h, p + "post_attention_layernorm")
        if i % 2 == 0:
            k_w, v_w = st[p + "cross_attention.key_value.weight"].chunk(2)
            k_b, v_b = st[p + "cross_attention.key_value.bias"].chunk(2)
            h = m + _mha(m, enc, st[p + "cross_attention.query.weight"], st[p + "cross_attention.query.bias"],
                         k_w, k_b, v_w, v_b, st[p + "cross_attention.dense.weight"], st[p + "cross_attention.dense.bias"])
            m = ln(h, p + "post_cross_attention_layernorm")
        ffn = F.linear(F.gelu(F.linear(m, st[p + "mlp.dense_h_to_4h.weight"], st[p + "mlp.dense_h_to_4h.bias"])),
                       st[p + "mlp.dense_4h_to_h.weight"], st[p + "mlp.dense_4h_to_h.bias"])
        h = m + ffn  # no norm here: the next layer's input_layernorm (or final_layernorm) is BERT's output norm
    return ln(h, "transformer.final_layernorm")


def visualglm_checkpoint(prefix="mixins.eva.model.", seed=0):
    """A whole VisualGLM state dict: image mixin (ViT with ln_vision, Q-Former, glm_proj) and the LLM."""
    g = torch.Generator().manual_seed(seed + 100)
    whole = {f"{prefix}qformer.{k}": v for k, v in sat_qformer_state(seed).items()}
    whole |= {f"{prefix}vit.mixins.cls.ln_vision.weight": 1 + _randn(g, DE), f"{prefix}vit.mixins.cls.ln_vision.bias": _randn(g, DE),
              f"{prefix}vit.transformer.layers.0.input_layernorm.weight": torch.ones(DE),
              f"{prefix}vit.mixins.patch_embedding.proj.weight": torch.zeros(DE, 3, 2, 2),
              f"{prefix}glm_proj.weight": _randn(g, E, D), f"{prefix}glm_proj.bias": _randn(g, E),
              "transformer.word_embeddings.weight": torch.zeros(10, E),
              "transformer.layers.0.attention.query_key_value.weight": torch.zeros(3 * E, E)}
    if prefix == "image_encoder.":
        whole["lm_head.weight"] = torch.zeros(10, E)
    return whole


def visualglm_forward(whole, x, prefix="mixins.eva.model."):
    """VisualGLM `BLIP2.forward` after the ViT's blocks: ln_vision, Q-Former, glm_proj."""
    enc = F.layer_norm(x, (DE,), whole[f"{prefix}vit.mixins.cls.ln_vision.weight"],
                       whole[f"{prefix}vit.mixins.cls.ln_vision.bias"], 1e-5)
    sat = {k[len(prefix + "qformer."):]: v for k, v in whole.items() if k.startswith(prefix + "qformer.")}
    return F.linear(sat_qformer_forward(sat, enc), whole[f"{prefix}glm_proj.weight"], whole[f"{prefix}glm_proj.bias"])


class Bridge(nn.Module):
    """The image bridge of an MMModel, with its names (`qformers.image`, `projectors.image`)."""

    def __init__(self, cfg: QFormerConfig, out_dim: int) -> None:
        super().__init__()
        self.qformers = nn.ModuleDict({"image": QFormer(cfg)})
        self.projectors = nn.ModuleDict({"image": Projector(ProjectorConfig("linear", cfg.hidden_size, out_dim))})

    def forward(self, x):
        return self.projectors["image"](self.qformers["image"](x))


def load_bridge(state: dict, num_heads=HEADS, out_dim=E, **overrides) -> Bridge:
    """Sizes from the checkpoint, then strict loading: every tensor of the bridge filled, nothing left over."""
    weights = bridge_state_from_checkpoint(state)
    assert weights.unused == [], weights.unused
    qformer = {k[len("qformers.image."):]: v for k, v in weights.state.items() if k.startswith("qformers.image.")}
    cfg = qformer_config_from_state(qformer, num_heads, **overrides)
    bridge = Bridge(cfg, out_dim).eval()
    load_into(bridge, weights.state, component="image bridge", source="test")
    return bridge


def _x(n=7, width=DE, seed=9):
    return torch.randn(2, n, width, generator=torch.Generator().manual_seed(seed)) * 2


def test_visualglm_sat_release_matches_the_sat_forward(tmp_path):
    whole = visualglm_checkpoint()
    (tmp_path / "300").mkdir()
    (tmp_path / "latest").write_text("300")
    torch.save({"module": whole}, tmp_path / "300" / "mp_rank_00_model_states.pt")
    state = read_state_dict(tmp_path)
    weights = bridge_state_from_checkpoint(state)
    assert weights.layout == "visualglm-sat" and weights.unused == []
    assert weights.ignored["transformer.word_embeddings.weight"] == LLM
    assert weights.ignored["mixins.eva.model.vit.mixins.patch_embedding.proj.weight"] == IMAGE_ENCODER
    bridge = load_bridge(state, layer_norm_eps=1e-12)
    cfg = bridge.qformers["image"].config
    assert (cfg.num_queries, cfg.num_layers, cfg.cross_attention_every, cfg.encoder_width) == (Q, LAYERS, 2, DE)
    x = _x()
    torch.testing.assert_close(bridge(x), visualglm_forward(whole, x))


def test_visualglm_hf_port_converts_to_the_same_tensors():
    sat = bridge_state_from_checkpoint(visualglm_checkpoint())
    hf = bridge_state_from_checkpoint(visualglm_checkpoint("image_encoder."))
    assert hf.layout == "visualglm-hf" and hf.unused == [] and hf.ignored["lm_head.weight"] == LLM
    assert sat.state.keys() == hf.state.keys()
    for k in sat.state:
        torch.testing.assert_close(sat.state[k], hf.state[k])
    # The pure functions give the Q-Former and the projection alone.
    q = qformer_state_from_sat(visualglm_checkpoint())
    assert q.keys() == {k[len("qformers.image."):] for k in sat.state if k.startswith("qformers.image.")}
    assert projector_state_from_visualglm(visualglm_checkpoint()).keys() == {"net.weight", "net.bias"}


def test_sat_layout_mistakes_change_the_output():
    whole, x = visualglm_checkpoint(), _x()
    expected = visualglm_forward(whole, x)
    bridge = load_bridge(whole, layer_norm_eps=1e-12)
    good = dict(bridge.state_dict())
    sat = {k[len("mixins.eva.model.qformer."):]: v for k, v in whole.items() if k.startswith("mixins.eva.model.qformer.")}
    # Post-norm read as if each layer's input_layernorm were its own output norm (no shift; final -> queries).
    unshifted = dict(good)
    for i in range(LAYERS):
        for s in ("weight", "bias"):
            unshifted[f"qformers.image.layers.{i}.ffn.norm.{s}"] = sat[f"transformer.layers.{i}.input_layernorm.{s}"]
    for s in ("weight", "bias"):
        unshifted[f"qformers.image.query_norm.{s}"] = sat[f"transformer.final_layernorm.{s}"]
    # key_value unpacked as [v|k].
    swapped = dict(good)
    for i in (0, 2):
        for s in ("weight", "bias"):
            k, v = f"qformers.image.layers.{i}.cross_attn.key.{s}", f"qformers.image.layers.{i}.cross_attn.value.{s}"
            swapped[k], swapped[v] = good[v], good[k]
    # ln_vision forgotten.
    no_ln_vision = {**good, "qformers.image.input_norm.weight": torch.ones(DE), "qformers.image.input_norm.bias": torch.zeros(DE)}
    for wrong in (unshifted, swapped, no_ln_vision):
        bridge.load_state_dict(wrong)
        assert not torch.allclose(bridge(x), expected, atol=1e-3)


def _hf_qformer(layers=3, every=2, seed=0):
    torch.manual_seed(seed)
    cfg = Blip2QFormerConfig(hidden_size=D, num_hidden_layers=layers, num_attention_heads=HEADS,
                             intermediate_size=INNER, encoder_hidden_size=DE, cross_attention_frequency=every)
    model = Blip2QFormerModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def lavis_checkpoint(hf: Blip2QFormerModel, seed=0):
    """LAVIS `blip2_opt` names for transformers' Q-Former weights, with the text branch and other parts."""
    g = torch.Generator().manual_seed(seed)
    st = {"Qformer.bert." + k.replace("attention.attention.", "attention.self.")
          .replace("crossattention.attention.", "crossattention.self.").replace("layernorm.", "embeddings.LayerNorm."): v
          for k, v in hf.state_dict().items()}
    st |= {"query_tokens": _randn(g, 1, Q, D, scale=1.0), "ln_vision.weight": 1 + _randn(g, DE), "ln_vision.bias": _randn(g, DE),
           "opt_proj.weight": _randn(g, E, D), "opt_proj.bias": _randn(g, E)}
    text = {"Qformer.bert.embeddings.word_embeddings.weight": torch.zeros(30, D),
            "Qformer.bert.embeddings.position_embeddings.weight": torch.zeros(12, D),
            "Qformer.bert.embeddings.position_ids": torch.arange(12)[None],
            "Qformer.bert.encoder.layer.0.intermediate.dense.weight": torch.zeros(INNER, D),
            "Qformer.bert.encoder.layer.0.output.dense.weight": torch.zeros(D, INNER),
            "Qformer.bert.encoder.layer.0.output.LayerNorm.weight": torch.ones(D),
            "Qformer.cls.predictions.transform.dense.weight": torch.zeros(D, D), "Qformer.cls.predictions.bias": torch.zeros(30),
            "vision_proj.weight": torch.zeros(4, D), "text_proj.weight": torch.zeros(4, D), "itm_head.weight": torch.zeros(2, D),
            "temp": torch.tensor(0.07)}
    other = {"visual_encoder.blocks.0.norm1.weight": torch.ones(DE), "opt_model.model.decoder.embed_tokens.weight": torch.zeros(9, E)}
    return st, text, other


def test_lavis_blip2_matches_transformers_qformer(tmp_path):
    hf = _hf_qformer()
    st, text, other = lavis_checkpoint(hf)
    torch.save({"model": st | text | other, "epoch": 3}, tmp_path / "blip2.pth")  # LAVIS's checkpoint wrapper
    state = read_state_dict(tmp_path / "blip2.pth")
    weights = bridge_state_from_checkpoint(state)
    assert weights.layout == "lavis" and weights.unused == []
    assert {k: r for k, r in weights.ignored.items() if r == TEXT_BRANCH}.keys() == text.keys()
    assert weights.ignored["visual_encoder.blocks.0.norm1.weight"] == IMAGE_ENCODER
    assert weights.ignored["opt_model.model.decoder.embed_tokens.weight"] == LLM
    bridge = load_bridge(state, layer_norm_eps=hf.config.layer_norm_eps)
    x = _x()
    enc = F.layer_norm(x, (DE,), st["ln_vision.weight"], st["ln_vision.bias"], 1e-5)  # LAVIS ln_vision (eps 1e-5)
    q = hf(query_embeds=st["query_tokens"].expand(2, -1, -1), encoder_hidden_states=enc).last_hidden_state
    expected = F.linear(q, st["opt_proj.weight"], st["opt_proj.bias"])
    torch.testing.assert_close(bridge(x), expected)
    # Negative control: without ln_vision the output is not LAVIS's.
    bridge.load_state_dict({**bridge.state_dict(), "qformers.image.input_norm.weight": torch.ones(DE),
                            "qformers.image.input_norm.bias": torch.zeros(DE)})
    assert not torch.allclose(bridge(x), expected, atol=1e-3)


def test_unknown_tensors_are_reported_and_missing_ones_fail_strict_loading():
    hf = _hf_qformer()
    st, text, _ = lavis_checkpoint(hf)
    extra = {"Qformer.bert.encoder.layer.0.attention.self.distance_embedding.weight": torch.zeros(5, 8)}
    assert bridge_state_from_checkpoint(st | text | extra).unused == list(extra)
    sat = visualglm_checkpoint()
    sat["mixins.eva.model.qformer.transformer.layers.1.attention.query_key_value.lora_A"] = torch.zeros(2, D)
    assert bridge_state_from_checkpoint(sat).unused == ["mixins.eva.model.qformer.transformer.layers.1.attention.query_key_value.lora_A"]
    del st["Qformer.bert.encoder.layer.1.output_query.LayerNorm.bias"]
    weights = bridge_state_from_checkpoint(st)
    bridge = Bridge(QFormerConfig(num_queries=Q, hidden_size=D, num_layers=3, num_heads=HEADS, intermediate_size=INNER,
                                  encoder_width=DE), E)
    with pytest.raises(InputError, match=r"missing: qformers\.image\.layers\.1\.ffn\.norm\.bias"):
        load_into(bridge, weights.state, component="image bridge", source="blip2.pth")
    with pytest.raises(InputError, match="no Q-Former weights found"):
        bridge_state_from_checkpoint({"transformer.word_embeddings.weight": torch.zeros(2, 2)})


def test_transformers_blip2_end_to_end_with_the_eva_tower(tmp_path):
    torch.manual_seed(0)
    vision = dict(hidden_size=D, intermediate_size=2 * D, num_hidden_layers=2, num_attention_heads=HEADS,
                  image_size=28, patch_size=14)
    qformer = dict(hidden_size=D, num_hidden_layers=3, num_attention_heads=HEADS, intermediate_size=INNER,
                   encoder_hidden_size=D, cross_attention_frequency=2)
    text = OPTConfig(hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2, vocab_size=50,
                     word_embed_proj_dim=16, max_position_embeddings=32)
    hf = Blip2ForConditionalGeneration(Blip2Config(vision_config=vision, qformer_config=qformer,
                                                   text_config=text.to_dict(), num_query_tokens=Q)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    hf.save_pretrained(tmp_path)
    state = read_state_dict(tmp_path)
    weights = bridge_state_from_checkpoint(state)
    assert weights.layout == "hf-blip2" and weights.unused == []
    assert weights.state["qformers.image.input_norm.weight"].equal(hf.vision_model.post_layernorm.weight)
    tower = create_encoder("eva-vit-g-14", img_size=28, embed_dim=D, num_heads=HEADS, mlp_ratio=2.0, depth=3)
    tower.load_weights(tmp_path)
    bridge = load_bridge(state, out_dim=16, layer_norm_eps=hf.config.qformer_config.layer_norm_eps)
    pixels = torch.randn(2, 3, 28, 28)
    expected = hf.get_image_features(pixel_values=pixels)
    # transformers' post_layernorm uses the vision eps (1e-6); BLIP-2's ln_vision, our input_norm, 1e-5.
    torch.testing.assert_close(bridge(tower(pixels)), expected, atol=1e-4, rtol=1e-4)
    bridge.qformers["image"].input_norm.reset_parameters()  # negative control: post_layernorm not loaded
    assert not torch.allclose(bridge(tower(pixels)), expected, atol=1e-3)


def test_qformer_state_from_blip2_maps_post_layernorm_to_input_norm():
    state = {"vision_model.post_layernorm.weight": torch.ones(3), "vision_model.post_layernorm.bias": torch.zeros(3),
             "ln_vision.weight": torch.ones(3), "vision_model.encoder.layers.0.layer_norm1.weight": torch.ones(3)}
    assert set(qformer_state_from_blip2(state)) == {"input_norm.weight", "input_norm.bias"}


def test_our_own_bridge_file_passes_through():
    bridge = Bridge(QFormerConfig(num_queries=2, hidden_size=D, num_layers=1, num_heads=HEADS, intermediate_size=INNER,
                                  encoder_width=DE), E)
    state = dict(bridge.state_dict()) | {"llm.lm_head.weight": torch.zeros(2, 2), "encoders.image.model.cls_token": torch.zeros(1)}
    weights = bridge_state_from_checkpoint(state)
    assert weights.layout == "ours" and weights.state.keys() == bridge.state_dict().keys() and weights.unused == []
    assert weights.ignored == {"llm.lm_head.weight": LLM, "encoders.image.model.cls_token": IMAGE_ENCODER}
