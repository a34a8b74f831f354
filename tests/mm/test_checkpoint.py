"""mm.checkpoint: the saved-model directory both ways, and the one declaration of the trainable bridge."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import mm
from bridge.names import is_bridge_key
from mm.checkpoint import (
    BRIDGE_FILE,
    MODEL_FILE,
    bridge_state_dict,
    load_weights,
    read_model_dir,
    save_model,
    shipped_weights,
)
from mm.errors import InputError
from mm.loading import build, resolve
from tests.conftest import make_image

QUESTION = "What colour is the circle?"


def perturbed(chat, seed: int = 0):
    """Every weight moved a little, so that a save or load that loses any of them shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in chat.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return chat


@pytest.fixture(scope="module")
def trained():
    return perturbed(mm.load("mm-tiny"))


def answer(chat) -> str:
    return chat.chat(QUESTION, image=make_image(), max_new_tokens=8)[0]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in b.items():
        torch.testing.assert_close(a[k], v, rtol=0, atol=0, msg=k)


def test_round_trip_gives_the_same_weights_and_answers(trained, tmp_path):
    save_model(tmp_path, trained.model, trained.tokenizer)
    saved = read_model_dir(tmp_path)
    assert saved.weights == tmp_path / MODEL_FILE and not saved.bridge_only and saved.llm is saved.lora is None
    assert saved.config == trained.config
    again = mm.load(tmp_path)
    assert_same_state(again.model.state_dict(), trained.model.state_dict())
    assert answer(again) == answer(trained)


def test_resolve_build_load_weights_is_what_load_does(trained, tmp_path):
    trained.save_pretrained(tmp_path)
    cfg, saved = resolve(tmp_path)
    model, tok = build(cfg, saved)
    load_weights(model, saved)
    assert_same_state(model.state_dict(), trained.model.state_dict())
    assert tok.get_vocab() == trained.tokenizer.get_vocab()


def test_bridge_only_save_holds_exactly_the_bridge(trained, tmp_path):
    trained.save_pretrained(tmp_path, bridge_only=True)
    assert not (tmp_path / MODEL_FILE).exists()
    state = load_file(str(tmp_path / BRIDGE_FILE))
    bridge_names = {n for n, _ in trained.model.named_parameters()
                    if n.split(".")[0] in ("qformers", "projectors")}
    assert bridge_names <= state.keys() and all(is_bridge_key(k) for k in state)
    assert_same_state(state, bridge_state_dict(trained.model))
    assert_same_state(trained.model.bridge_state_dict(), bridge_state_dict(trained.model))
    assert read_model_dir(tmp_path).bridge_only
    # Alone it is no model: the LLM and encoders would be untrained, so loading names what is missing.
    with pytest.raises(InputError, match=r"bridge only: pass llm=PATH .*image_encoder=PATH, audio_encoder=PATH"):
        mm.load(tmp_path)
    parts = tmp_path / "parts"
    trained.model.llm.save_pretrained(parts / "llm")
    trained.tokenizer.save_pretrained(parts / "llm")
    for m, encoder in trained.model.encoders.items():
        save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(parts / f"{m}.safetensors"))
    with pytest.raises(InputError, match=r"pass audio_encoder=PATH for the other weights"):
        mm.load(tmp_path, llm=parts / "llm", image_encoder=parts / "image.safetensors")
    again = mm.load(tmp_path, llm=parts / "llm", image_encoder=parts / "image.safetensors",
                    audio_encoder=parts / "audio.safetensors")
    assert_same_state(again.model.state_dict(), trained.model.state_dict())


def test_a_new_save_replaces_what_an_earlier_one_left(trained, tmp_path):
    trained.save_pretrained(tmp_path)
    trained.save_pretrained(tmp_path, bridge_only=True)  # model.safetensors would otherwise win on loading
    assert read_model_dir(tmp_path).weights.name == BRIDGE_FILE and not (tmp_path / MODEL_FILE).exists()


def test_a_training_call_s_truncation_and_padding_are_not_saved_with_the_tokenizer(tmp_path):
    chat = mm.load("mm-tiny")
    original = json.loads((shipped_weights("mm-tiny") / "tokenizer_config.json").read_text())
    long_text = "a red circle at the left " * 20
    n = len(chat.tokenizer(long_text)["input_ids"])
    chat.tokenizer([long_text, "hi"], padding=True, truncation=True, max_length=7)  # what a collator does
    chat.save_pretrained(tmp_path / "a")
    assert json.loads((tmp_path / "a/tokenizer.json").read_text())["truncation"] is None
    assert json.loads((tmp_path / "a/tokenizer_config.json").read_text()).keys() == original.keys()
    # A directory saved with such a state (by plain save_pretrained) loads without it, and saves clean.
    chat.tokenizer([long_text, "hi"], padding=True, truncation=True, max_length=7)
    chat.tokenizer.save_pretrained(tmp_path / "a")
    assert json.loads((tmp_path / "a/tokenizer.json").read_text())["truncation"]["max_length"] == 7
    loaded = mm.load(tmp_path / "a")
    assert loaded.tokenizer.backend_tokenizer.truncation is None
    assert len(loaded.tokenizer.backend_tokenizer.encode(long_text).ids) == n
    loaded.save_pretrained(tmp_path / "b")
    assert json.loads((tmp_path / "b/tokenizer_config.json").read_text()).keys() == original.keys()


def test_the_shipped_weights_load_strictly():
    d = shipped_weights("mm-tiny")
    saved = read_model_dir(d)
    assert saved.weights == d / MODEL_FILE and saved.config.name == "mm-tiny" and not saved.config.full_scale
    cfg, resolved = resolve("mm-tiny")
    assert resolved == saved and cfg == saved.config
    model, _ = build(cfg, saved)
    load_weights(model, saved)  # strict: every tensor of the model in the file, every tensor of the file used
    shipped = load_file(str(saved.weights))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, shipped[k].to(v.dtype), msg=k)


def test_missing_and_corrupt_files_are_clear_input_errors(trained, tmp_path):
    with pytest.raises(InputError, match="not a saved model \\(no config.json\\)"):
        mm.load(tmp_path)
    trained.save_pretrained(tmp_path)
    weights = tmp_path / MODEL_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[:1000])
    with pytest.raises(InputError, match=f"{MODEL_FILE}: not a readable safetensors file"):
        mm.load(tmp_path)
    weights.unlink()
    with pytest.raises(InputError, match="holds config.json but no model.safetensors or bridge.safetensors"):
        mm.load(tmp_path)
    weights.write_bytes(data)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))  # an LLM's config, not ours
    with pytest.raises(InputError, match="not the config of a saved mm model .*model_type"):
        mm.load(tmp_path)


def test_a_file_of_another_architecture_names_what_does_not_fit(trained, tmp_path):
    trained.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / MODEL_FILE))
    state.pop("projectors.image.net.weight")
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / MODEL_FILE))
    with pytest.raises(InputError, match="does not match the model \\(1 missing: projectors.image.net.weight"):
        mm.load(tmp_path)


def test_lora_adapters_start_from_their_seed_not_from_the_process_history():
    """Two runs of the same config in one process (a resumed run beside a straight one) start alike."""
    from mm.lora import add_lora

    def adapters(seed, draws):
        chat = mm.load("mm-tiny")
        torch.rand(draws)  # whatever ran before in this process
        before = torch.random.get_rng_state()
        add_lora(chat.model, r=2, seed=seed)
        assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is left as it was
        return {n: p.detach().clone() for n, p in chat.model.llm.named_parameters() if "lora_A" in n}

    a, b, other = adapters(0, 3), adapters(0, 1000), adapters(1, 3)
    assert a and all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], other[n]) for n in a)


def test_lora_adapters_are_saved_apart_or_merged_and_answer_alike(tmp_path):
    from mm.lora import add_lora, has_lora

    chat = mm.load("mm-tiny")
    ids = chat.tokenizer("a red circle on the left", return_tensors="pt").input_ids
    with torch.no_grad():
        plain = chat.model(ids).logits
    add_lora(chat.model, r=2)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in chat.model.llm.named_parameters():
            if "lora_B" in n:  # zero at the start: move them so the adapters change the answers
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    with torch.no_grad():
        expected = chat.model(ids).logits
    assert not torch.allclose(expected, plain, atol=1e-3)  # the adapters matter

    save_model(tmp_path / "apart", chat.model, chat.tokenizer, lora="apart")
    assert not has_lora(chat.model)  # taken off the LLM, its base weights saved as usual
    saved = read_model_dir(tmp_path / "apart")
    assert saved.lora == tmp_path / "apart" / "lora"
    assert not any("lora_" in k for k in load_file(str(saved.weights)))
    with_adapters = mm.load(tmp_path / "apart")
    assert has_lora(with_adapters.model)
    with torch.no_grad():
        torch.testing.assert_close(with_adapters.model(ids).logits, expected)

    save_model(tmp_path / "apart", with_adapters.model, with_adapters.tokenizer)  # merged over the earlier save
    assert read_model_dir(tmp_path / "apart").lora is None and not (tmp_path / "apart" / "lora").exists()
    merged = mm.load(tmp_path / "apart")
    assert not has_lora(merged.model)
    with torch.no_grad():
        torch.testing.assert_close(merged.model(ids).logits, expected, rtol=1e-4, atol=1e-4)


def test_an_llm_that_the_config_cannot_rebuild_is_saved_in_llm_folder(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = mm.load("mm-tiny")
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tiny.tokenizer), hidden_size=256, intermediate_size=512,
                                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2))
    llama.save_pretrained(tmp_path / "src")
    tiny.tokenizer.save_pretrained(tmp_path / "src")
    chat = mm.load("mm-tiny", llm=tmp_path / "src")
    assert chat.config.llm.arch == "hf"

    chat.save_pretrained(tmp_path / "saved")
    saved = read_model_dir(tmp_path / "saved")
    assert saved.llm == tmp_path / "saved" / "llm"
    assert not any(k.startswith("llm.") for k in load_file(str(saved.weights)))
    again = mm.load(tmp_path / "saved")
    assert_same_state(again.model.state_dict(), chat.model.state_dict())
    assert answer(again) == answer(chat)

