"""A whole VisualGLM-6B release loads through `mm.load`, strictly, with parity, at tiny size.

The release is written here in both published forms with the same random weights: the SAT folder
(`model_config.json`, `latest`, `1/mp_rank_00_model_states.pt`) and the Hugging Face port (`config.json`
with `eva_config` / `qformer_config`, two `.bin` shards, `ice_text.model`). The references are the component
tests' own, written from the published semantics: SAT EVA ViT + `ln_vision` (tests/encoders), SAT post-norm
Q-Former (tests/bridge), THUDM's ChatGLM-6B (tests/mm/test_chatglm_v1.py); `glm_proj` is a plain linear.
"""

from __future__ import annotations

import io
import json
import logging
import shutil

import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F

import mm
from mm.chatglm_v1.weights import read_tokenizer
from mm.cli.main import main as cli_main
from tests.bridge import test_qformer_layouts as qformer_ref
from tests.conftest import make_image, prompt_tokens
from tests.encoders import test_eva_layouts as eva_ref
from tests.mm.test_chatglm_v1 import (
    CORPUS,
    GLM_SYMBOLS,
    TOKENIZER_CONFIG,
    random_state,
    reference_logits,
    save_hf,
)

# Sizes of the component tests' references: EVA ViT (width Dv, 2 run blocks, 28 px, patch 14), Q-Former.
VD, V_HEADS, V_MLP, V_RUN, V_TOKENS = eva_ref.D, eva_ref.HEADS, eva_ref.MLP, eva_ref.RUN, eva_ref.N
IMG, PATCH = eva_ref.IMG, eva_ref.PATCH
QD, Q_HEADS, Q_INNER, Q_LAYERS, Q = (qformer_ref.D, qformer_ref.HEADS, qformer_ref.INNER, qformer_ref.LAYERS,
                                     qformer_ref.Q)
E, LLM_LAYERS, LLM_HEADS, MAX_SEQ = 64, 2, 4, 256  # the LLM; its MLP is SAT's default 4 * E
SAT_IMAGE = "mixins.eva.model."
QUESTION = "图片里有什么？"


def _tokenizer_dir(directory) -> None:
    """ChatGLM-6B's tokenizer files: a tiny ice_text.model with GLM's special pieces (as test_chatglm_v1)."""
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=buf, vocab_size=600, hard_vocab_limit=False,
        user_defined_symbols=GLM_SYMBOLS, unk_id=0, bos_id=1, eos_id=2, pad_id=3, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, character_coverage=1.0,
        minloglevel=2)
    (directory / "ice_text.model").write_bytes(buf.getvalue())
    (directory / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))


def _image_parts(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """The image side in SAT names: ViT (with ln_vision), Q-Former (cross-attention reading the ViT's width)
    and glm_proj."""
    g = torch.Generator().manual_seed(seed)
    qformer = qformer_ref.sat_qformer_state(seed)
    for i in range(0, Q_LAYERS, 2):  # the bridge tests' encoder is narrower than this tower
        kv = torch.randn(2 * QD, VD, generator=g) * 0.2  # rows [k|v]
        qformer[f"transformer.layers.{i}.cross_attention.key_value.weight"] = kv
    glm_proj = {"weight": torch.randn(E, QD, generator=g) * QD ** -0.5,
                "bias": torch.randn(E, generator=g) * 0.1}
    return {"vit": eva_ref.sat_state(seed + 1), "qformer": qformer, "glm_proj": glm_proj}


def _flat(parts: dict[str, dict[str, torch.Tensor]], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{part}.{k}": v for part, state in parts.items() for k, v in state.items()}


def reference_embeds(parts: dict[str, dict[str, torch.Tensor]], pixels: torch.Tensor) -> torch.Tensor:
    """VisualGLM `BLIP2.forward`: SAT ViT (every run block) -> ln_vision -> SAT Q-Former -> glm_proj."""
    tokens = eva_ref.sat_forward(parts["vit"], pixels)  # (B, N, Dv), ln_vision applied
    queries = qformer_ref.sat_qformer_forward(parts["qformer"], tokens)  # (B, Q, D)
    return F.linear(queries, parts["glm_proj"]["weight"], parts["glm_proj"]["bias"])  # (B, Q, E)


EVA_ARGS = {"num_layers": V_RUN, "hidden_size": VD, "num_attention_heads": V_HEADS, "vocab_size": 1,
            "layernorm_order": "pre", "max_sequence_length": V_TOKENS, "inner_hidden_size": V_MLP,
            "use_final_layernorm": False, "layernorm_epsilon": 1e-6, "image_size": [IMG, IMG], "pre_len": 1,
            "patch_size": PATCH}
# The published qformer_args leave the MLP at SAT's 4 * hidden; the bridge tests' Q-Former is narrower.
QFORMER_ARGS = {"num_layers": Q_LAYERS, "hidden_size": QD, "num_attention_heads": Q_HEADS, "vocab_size": Q,
                "layernorm_order": "post", "is_decoder": [i % 2 == 0 for i in range(Q_LAYERS)],
                "cross_attn_hidden_size": VD, "layernorm_epsilon": 1e-12, "inner_hidden_size": Q_INNER}


def write_sat(root, config: dict, state: dict[str, torch.Tensor]):
    """SAT's layout: model_config.json, `latest`, `1/mp_rank_00_model_states.pt` = {"module": state}."""
    (root / "1").mkdir(parents=True)
    (root / "model_config.json").write_text(json.dumps(config))
    (root / "latest").write_text("1")
    torch.save({"module": state}, root / "1" / "mp_rank_00_model_states.pt")
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The tokenizer folder, the SAT release and the HF port of one set of weights, with what the references
    need (the LLM's config and state, the image parts in SAT names) and the SAT config and state to vary."""
    tokdir = tmp_path_factory.mktemp("chatglm-6b-tokenizer")
    _tokenizer_dir(tokdir)
    tok = read_tokenizer(tokdir)
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in
           (("bos", "<sop>"), ("eos", "<eop>"), ("mask", "[MASK]"), ("gmask", "[gMASK]"), ("pad", "<pad>"))}
    vocab = tok.vocab_size + 12  # padded, as 130344 ids are padded to 130528 rows
    # SAT's model_config.json: the LLM's sizes at the top level (no MLP width, no eos: SAT's defaults).
    sat_config = {"model_class": "VisualGLMModel", "num_layers": LLM_LAYERS, "hidden_size": E,
                  "num_attention_heads": LLM_HEADS, "vocab_size": vocab, "layernorm_order": "post",
                  "model_parallel_size": 1, "max_sequence_length": MAX_SEQ, "bos_token_id": ids["bos"],
                  "mask_token_id": ids["mask"], "gmask_token_id": ids["gmask"], "image_length": Q,
                  "eva_args": EVA_ARGS, "qformer_args": QFORMER_ARGS}
    llm_cfg = {"model_type": "chatglm", "architectures": ["ChatGLMModel"], "torch_dtype": "float16",
               "vocab_size": vocab, "hidden_size": E, "num_layers": LLM_LAYERS,
               "num_attention_heads": LLM_HEADS, "inner_hidden_size": 4 * E, "layernorm_epsilon": 1e-5,
               "max_sequence_length": MAX_SEQ, "position_encoding_2d": True, "quantization_bit": 0,
               "pre_seq_len": None, "prefix_projection": False,
               **{f"{k}_token_id": v for k, v in ids.items()}}
    llm_state = random_state(llm_cfg, seed=3)
    parts = _image_parts()

    sat_state_ = {("mixins.chatglm-final.lm_head.weight" if k == "lm_head.weight" else k): v
                  for k, v in llm_state.items()}
    sat_state_["transformer.position_embeddings.weight"] = torch.randn(MAX_SEQ, E) * 0.02  # built, never read
    sat_state_ |= _flat(parts, SAT_IMAGE)
    sat = write_sat(tmp_path_factory.mktemp("visualglm-6b-sat"), sat_config, sat_state_)

    hf = tmp_path_factory.mktemp("visualglm-6b-hf")
    hf_config = {**llm_cfg, "architectures": ["ChatGLMForConditionalGenerationWithImage"],
                 "eva_config": EVA_ARGS, "qformer_config": QFORMER_ARGS, "image_length": Q}
    save_hf(hf, {**llm_state, **_flat(parts, "image_encoder.")}, hf_config)
    for f in ("ice_text.model", "tokenizer_config.json"):
        shutil.copy(tokdir / f, hf / f)
    return {"tokdir": tokdir, "sat": sat, "hf": hf, "llm_cfg": llm_cfg, "llm_state": llm_state,
            "parts": parts, "sat_config": sat_config, "sat_state": sat_state_}


@pytest.fixture(scope="module")
def loaded(release):
    """The release loaded every way a user can name it."""
    sat, tokdir = release["sat"], release["tokdir"]
    return {
        "sat folder": mm.load("visualglm-6b", checkpoint=sat, tokenizer=tokdir, device="cpu"),
        "sat iteration folder": mm.load("visualglm-6b", checkpoint=sat / "1", tokenizer=tokdir, device="cpu"),
        "sat file": mm.load("visualglm-6b", checkpoint=sat / "1" / "mp_rank_00_model_states.pt",
                            tokenizer=tokdir / "ice_text.model", device="cpu"),
        "hf port": mm.load("visualglm-6b", checkpoint=release["hf"], device="cpu"),
    }


def _pixels(seed: int = 7) -> torch.Tensor:
    return torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(seed))


def _embeds(chat: mm.MMChat, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack(chat.model.embed_media("image", pixels))  # (B, Q, E)


# -- parity -----------------------------------------------------------------------------------------

def test_image_embeddings_match_the_reference_composition(release, loaded):
    pixels = _pixels()
    expected = reference_embeds(release["parts"], pixels)
    assert expected.shape == (2, Q, E)
    for how, chat in loaded.items():
        q = chat.config.image_qformer
        assert (q.num_queries, q.num_layers, chat.config.llm.template) == (Q, Q_LAYERS, "visualglm"), how
        got = _embeds(chat, pixels)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4, msg=lambda m, how=how: f"{how}: {m}")
    # Both published forms hold the same model: identical outputs, not just close ones.
    torch.testing.assert_close(_embeds(loaded["hf port"], pixels), _embeds(loaded["sat folder"], pixels),
                               rtol=0, atol=0)


def test_llm_gives_the_reference_logits(release, loaded):
    cfg, state = release["llm_cfg"], release["llm_state"]
    for how, chat in loaded.items():
        ids = chat.tokenizer.encode(f"问：{QUESTION}\n答：")
        assert ids[-2:] == [cfg["gmask_token_id"], cfg["bos_token_id"]]
        with torch.no_grad():
            logits = chat.model.llm(input_ids=torch.tensor([ids])).logits[0]
        torch.testing.assert_close(logits, reference_logits(state, cfg, ids), rtol=1e-4, atol=2e-4,
                                   msg=lambda m, how=how: f"{how}: {m}")


def test_chat_builds_visualglm_prompt_and_answers(loaded):
    chat = loaded["sat folder"]
    tok = chat.tokenizer
    image = make_image()
    answer, history = chat.chat(QUESTION, image=image, max_new_tokens=4)
    *_, last = chat.respond(QUESTION, image=image, max_new_tokens=4)
    assert history == [(QUESTION, answer)] and last.text == answer and last.completion_tokens <= 4

    items = chat._collect(image, None)
    ids = chat._prompt(QUESTION, [], items, chat._embed(items), max_new_tokens=4)
    slot = chat.model.media_token_ids["image"]
    expected = (tok.encode("<img>", add_special_tokens=False) + [slot] * Q
                + tok.encode(f"</img>问：{QUESTION}\n答：", add_special_tokens=False)
                + [tok.gmask_token_id, tok.bos_token_id])
    assert ids == expected and last.prompt_tokens == len(expected)  # the prompt `chat` answered
    # A follow-up keeps the image and the earlier round: VisualGLM's "问：q\n答：a\n" rounds.
    earlier = [(QUESTION, "一个红色的圆。")]
    again = chat._prompt("什么颜色？", earlier, items, chat._embed(items), max_new_tokens=4)
    run = f"</img>问：{QUESTION}\n答：一个红色的圆。\n问：什么颜色？\n答："
    assert again == (tok.encode("<img>", add_special_tokens=False) + [slot] * Q
                     + tok.encode(run, add_special_tokens=False) + [tok.gmask_token_id, tok.bos_token_id])
    assert prompt_tokens(chat, "什么颜色？", image=image, history=earlier) == len(again)


# -- strictness -------------------------------------------------------------------------------------

def _variant(release, tmp_path, change) -> object:
    state = dict(release["sat_state"])
    change(state)
    return write_sat(tmp_path / "release", release["sat_config"], state)


def _load(release, checkpoint, **kwargs) -> mm.MMChat:
    return mm.load("visualglm-6b", checkpoint=checkpoint, tokenizer=release["tokdir"], device="cpu", **kwargs)


EXTRA_QFORMER = SAT_IMAGE + "qformer.transformer.extra.weight"
EXTRA_LLM = "transformer.layers.9.foo"
GONE_QFORMER = SAT_IMAGE + "qformer.transformer.layers.1.mlp.dense_4h_to_h.bias"
GONE_LLM = "transformer.layers.1.mlp.dense_4h_to_h.bias"


@pytest.mark.parametrize("change,named", [
    (lambda st: st.update({EXTRA_QFORMER: torch.zeros(2)}), r"qformer\.transformer\.extra\.weight"),
    (lambda st: st.update({EXTRA_LLM: torch.zeros(2)}), r"unexpected: transformer\.layers\.9\.foo"),
    (lambda st: st.pop(GONE_QFORMER), r"missing: qformers\.image\.layers\.1\.ffn\.fc2\.bias"),
    (lambda st: st.pop(GONE_LLM), r"missing: transformer\.layers\.1\.mlp\.dense_4h_to_h\.bias"),
], ids=["extra qformer tensor", "extra LLM tensor", "missing qformer tensor", "missing LLM tensor"])
def test_unaccounted_tensors_are_named_unless_strict_is_off(release, tmp_path, caplog, change, named):
    bad = _variant(release, tmp_path, change)
    with pytest.raises(mm.InputError, match=named):
        _load(release, bad)
    with caplog.at_level(logging.WARNING):
        chat = _load(release, bad, strict=False)
    assert "strict=False" in caplog.text
    assert _embeds(chat, _pixels()).shape == (2, Q, E)


def test_cross_attention_key_value_halves_swapped_breaks_parity(release, tmp_path):
    def swap(state):
        for i in range(0, Q_LAYERS, 2):
            for s in ("weight", "bias"):
                key = f"{SAT_IMAGE}qformer.transformer.layers.{i}.cross_attention.key_value.{s}"
                k, v = state[key].chunk(2)
                state[key] = torch.cat([v, k])  # [v|k]: what a loader unpacking the wrong way round reads

    pixels = _pixels()
    expected = reference_embeds(release["parts"], pixels)
    got = _embeds(_load(release, _variant(release, tmp_path, swap)), pixels)
    assert (got - expected).abs().max() > 0.1


# -- errors a user sees -----------------------------------------------------------------------------

def test_clear_errors(release, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(mm.InputError, match="not a VisualGLM-6B release"):
        _load(release, tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(mm.InputError, match="not a VisualGLM-6B release"):
        _load(release, tmp_path / "other")
    with pytest.raises(mm.InputError, match="checkpoint not found"):
        _load(release, tmp_path / "nowhere")
    with pytest.raises(mm.InputError, match=r"ice_text\.model"):
        mm.load("visualglm-6b", checkpoint=release["sat"], device="cpu")
    with pytest.raises(mm.InputError, match="num_queries"):
        _load(release, release["sat"], num_queries=4)


def test_cli_chat_answers_from_a_sat_release(release, tmp_path, capsys):
    make_image().save(tmp_path / "x.png")
    rc = cli_main(["chat", "--model", "visualglm-6b", "--checkpoint", str(release["sat"]), "--tokenizer",
                   str(release["tokdir"]), "--device", "cpu", "--image", str(tmp_path / "x.png"),
                   "--max-new-tokens", "3", QUESTION])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert out.out.endswith("\n")
    rc = cli_main(["chat", "--model", "visualglm-6b", "--checkpoint", str(release["sat"]), "--device", "cpu",
                   "--image", str(tmp_path / "x.png"), QUESTION])
    assert rc == 1 and "ice_text.model" in capsys.readouterr().err
