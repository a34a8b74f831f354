import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import Blip2QFormerConfig, Blip2QFormerModel

import mm
from mm.errors import InputError
from tests.conftest import make_image


@pytest.fixture(scope="module")
def trained_looking():
    """The tiny model with every weight perturbed, so a round trip that loses weights cannot pass."""
    chat = mm.load("mm-tiny")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in chat.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return chat


def test_round_trip_gives_the_same_model(trained_looking, tmp_path):
    trained_looking.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    assert json.loads((tmp_path / "config.json").read_text())["name"] == "mm-tiny"
    again = mm.load(tmp_path)
    for k, v in trained_looking.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[k], v)
    img = make_image()
    assert again.chat("Describe it.", image=img, max_new_tokens=10) == \
        trained_looking.chat("Describe it.", image=img, max_new_tokens=10)


def test_bridge_only_save_holds_only_the_bridge(trained_looking, tmp_path):
    trained_looking.save_pretrained(tmp_path, bridge_only=True)
    keys = load_file(str(tmp_path / "bridge.safetensors")).keys()
    assert keys and all(k.startswith(("qformers.", "projectors.")) for k in keys)


def test_llm_loads_from_a_local_transformers_directory(tmp_path):
    src = mm.load("mm-tiny")
    src.model.llm.save_pretrained(tmp_path / "llm")
    src.tokenizer.save_pretrained(tmp_path / "llm")
    chat = mm.load("mm-tiny", llm=tmp_path / "llm")
    torch.testing.assert_close(chat.model.llm.lm_head.weight, src.model.llm.lm_head.weight)


def test_remote_code_checkpoint_needs_explicit_trust(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "internlm", "auto_map": {"AutoModel": "x.Y"}}))
    with pytest.raises(InputError, match="trust_remote_code=True"):
        mm.load("visualglm-6b", llm=tmp_path, image_encoder=tmp_path / "eva.pth")


def test_chatglm_v1_directory_needs_no_remote_code_but_its_tokenizer(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "chatglm", "auto_map": {"AutoModel": "x.Y"}}))
    with pytest.raises(InputError, match="ice_text.model"):
        mm.load("visualglm-6b", llm=tmp_path, image_encoder=tmp_path / "eva.pth")


def test_visualglm_style_bridge_checkpoint_loads_into_the_image_bridge(tmp_path):
    chat = mm.load("mm-tiny", **{"image_qformer.encoder_positions": 0})  # VisualGLM has no such table
    q = chat.model.qformers["image"].config
    hf = Blip2QFormerModel(Blip2QFormerConfig(
        hidden_size=q.hidden_size, num_hidden_layers=q.num_layers, num_attention_heads=q.num_heads,
        intermediate_size=q.intermediate_size, encoder_hidden_size=q.encoder_width,
        cross_attention_frequency=q.cross_attention_every)).eval()
    # LAVIS names: Qformer.bert.*, query_tokens, ln_vision, llm_proj (BLIP-2 / InstructBLIP's projection).
    state = {"Qformer.bert." + k.replace("attention.attention.", "attention.self.")
             .replace("layernorm.", "embeddings.LayerNorm."): v.clone() for k, v in hf.state_dict().items()}
    state["query_tokens"] = torch.randn(1, q.num_queries, q.hidden_size)
    state["ln_vision.weight"], state["ln_vision.bias"] = torch.rand(q.encoder_width), torch.rand(q.encoder_width)
    state["llm_proj.weight"], state["llm_proj.bias"] = torch.randn(256, q.hidden_size), torch.randn(256)
    torch.save(state, tmp_path / "visualglm_bridge.pth")
    loaded = mm.load("mm-tiny", bridge=tmp_path / "visualglm_bridge.pth", **{"image_qformer.encoder_positions": 0})
    x = torch.randn(2, 65, q.encoder_width)
    ln = torch.nn.functional.layer_norm(x, (q.encoder_width,), state["ln_vision.weight"], state["ln_vision.bias"])
    expected = hf(query_embeds=state["query_tokens"].expand(2, -1, -1), encoder_hidden_states=ln).last_hidden_state
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.qformers["image"](x), expected)
        torch.testing.assert_close(loaded.model.projectors["image"].net.weight, state["llm_proj.weight"])


def test_bad_directories_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        mm.load(tmp_path)


def test_llm_with_its_own_chat_template_uses_it(tmp_path):
    from tests.mm.test_prompt import CHATML

    src = mm.load("mm-tiny")
    tok = src.tokenizer
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]},
                           replace_additional_special_tokens=False)
    tok.chat_template = CHATML
    src.model.llm.resize_token_embeddings(len(tok))  # a real checkpoint's table covers its role tokens
    src.model.llm.save_pretrained(tmp_path / "llm")
    tok.save_pretrained(tmp_path / "llm")
    chat = mm.load("mm-tiny", llm=tmp_path / "llm")
    assert chat.template.name == "auto" and chat.config.llm.template == "auto"
    assert chat.tokenizer.convert_tokens_to_ids("<|im_end|>") in chat.stop_ids
    response, history = chat.chat("What colour?", image=make_image(), max_new_tokens=4)
    assert history == [("What colour?", response)]
