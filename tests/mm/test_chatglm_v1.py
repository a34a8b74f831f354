"""ChatGLM-6B (v1): parity with a reference written here from the published semantics, both checkpoint
layouts, deliberate mistakes that must break parity, the tokenizer and VisualGLM's prompt layout."""

from __future__ import annotations

import io
import json
import math
import shutil

import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F

from encoders.weights import read_state_dict
from mm.chatglm_v1 import (
    ChatGLMv1Config,
    ChatGLMv1ForCausalLM,
    ChatGLMv1Tokenizer,
    build_chatglm_v1,
    from_sat_state_dict,
    load_chatglm_v1,
)
from mm.chatglm_v1.modeling import rotary_tables
from mm.chatglm_v1.weights import is_sat_state_dict, read_tokenizer
from mm.errors import InputError
from mm.prompt import IGNORE_INDEX, build_prompt, get_template, stop_token_ids

# The user-defined pieces of the published ice_text.model (whitespace and GLM's special tokens).
GLM_SYMBOLS = ["<n>", "[MASK]", "[gMASK]", "[sMASK]", "<unused_0>", "<sop>", "<eop>", "<ENC>", "<dBLOCK>",
               "<|tab|>", *(f"<|blank_{i}|>" for i in range(2, 81))]
CORPUS = ["What colour is the circle? It is red.", "问：图片里有什么？答：一个红色的圆在左边。",
          "The blue square is above the small star.", "def f(x):\n\treturn x + 1"] * 20
TOKENIZER_CONFIG = {"tokenizer_class": "ChatGLMTokenizer", "num_image_tokens": 0, "bos_token": "<sop>",
                    "eos_token": "<eop>", "end_token": "</s>", "gmask_token": "[gMASK]", "mask_token": "[MASK]",
                    "pad_token": "<pad>", "unk_token": "<unk>", "remove_space": False, "do_lower_case": False,
                    "padding_side": "left", "auto_map": {"AutoTokenizer": ["tokenization_chatglm.ChatGLMTokenizer", None]}}


@pytest.fixture(scope="module")
def sp_model() -> bytes:
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=buf, vocab_size=600, hard_vocab_limit=False,
        user_defined_symbols=GLM_SYMBOLS, unk_id=0, bos_id=1, eos_id=2, pad_id=3, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, character_coverage=1.0, minloglevel=2)
    return buf.getvalue()


def random_state(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    e, f, v = cfg["hidden_size"], cfg["inner_hidden_size"], cfg["vocab_size"]

    def rnd(*shape: int, scale: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    state = {"transformer.word_embeddings.weight": rnd(v, e, scale=1.0), "lm_head.weight": rnd(v, e, scale=0.2),
             "transformer.final_layernorm.weight": 1 + rnd(e, scale=0.1),
             "transformer.final_layernorm.bias": rnd(e, scale=0.1)}
    for i in range(cfg["num_layers"]):
        p = f"transformer.layers.{i}."
        for ln in ("input_layernorm", "post_attention_layernorm"):
            state[p + ln + ".weight"], state[p + ln + ".bias"] = 1 + rnd(e, scale=0.1), rnd(e, scale=0.1)
        for name, (out, inp) in {"attention.query_key_value": (3 * e, e), "attention.dense": (e, e),
                                 "mlp.dense_h_to_4h": (f, e), "mlp.dense_4h_to_h": (e, f)}.items():
            state[p + name + ".weight"], state[p + name + ".bias"] = rnd(out, inp, scale=inp ** -0.5), rnd(out, scale=0.1)
    return state


def save_hf(directory, state: dict[str, torch.Tensor], cfg: dict) -> None:
    """THUDM's layout: two `.bin` shards + index, with the fp16 rotary buffers the published files hold."""
    state = dict(state)
    rot = cfg["hidden_size"] // (cfg["num_attention_heads"] * 2)
    for i in range(cfg["num_layers"]):
        inv = 1.0 / 10000 ** (torch.arange(0, rot, 2).float() / rot)
        state[f"transformer.layers.{i}.attention.rotary_emb.inv_freq"] = inv.half()
    names = sorted(state)
    shards = {f"pytorch_model-0000{k + 1}-of-00002.bin": names[k::2] for k in range(2)}
    for file, keys in shards.items():
        torch.save({k: state[k] for k in keys}, directory / file)
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
             "weight_map": {k: file for file, keys in shards.items() for k in keys}}
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    (directory / "config.json").write_text(json.dumps(cfg))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, sp_model):
    d = tmp_path_factory.mktemp("chatglm")
    (d / "ice_text.model").write_bytes(sp_model)
    (d / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    tok = read_tokenizer(d)
    cfg = {"model_type": "chatglm", "architectures": ["ChatGLMModel"], "torch_dtype": "float16", "use_cache": True,
           "auto_map": {"AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration"},
           "vocab_size": tok.vocab_size + 12, "hidden_size": 64, "num_layers": 3, "num_attention_heads": 4,
           "inner_hidden_size": 160, "layernorm_epsilon": 1e-5, "max_sequence_length": 256,
           "position_encoding_2d": True, "quantization_bit": 0, "pre_seq_len": None, "prefix_projection": False,
           **{f"{k}_token_id": tok.convert_tokens_to_ids(t) for k, t in
              (("bos", "<sop>"), ("eos", "<eop>"), ("mask", "[MASK]"), ("gmask", "[gMASK]"), ("pad", "<pad>"))}}
    state = random_state(cfg)
    save_hf(d, state, cfg)
    model, tokenizer = load_chatglm_v1(d)
    return d, cfg, state, model, tokenizer


# -- the reference: published semantics, one unpadded sequence, plain loops ------------------------

def reference_logits(state: dict[str, torch.Tensor], cfg: dict, ids: list[int], fp16_angles: bool = True) -> torch.Tensor:
    """THUDM's modeling_chatglm.py, re-derived: float64, per head, rotation written per frequency pair.
    Its rotary tables are fp16 (inv_freq, positions, angles, cos and sin) unless `fp16_angles=False`."""
    sd = {k: v.double() for k, v in state.items()}
    e, h, n_layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_layers"]
    d = e // h
    r, t = d // 2, len(ids)
    c, mpos = ids.index(cfg["bos_token_id"]), ids.index(cfg["gmask_token_id"])  # context ends before <sop>
    pos = torch.tensor([i if i < c else mpos for i in range(t)], dtype=torch.float64)
    blk = torch.tensor([0 if i < c else i - c + 1 for i in range(t)], dtype=torch.float64)
    allowed = torch.tensor([[j <= i or j < c for j in range(t)] for i in range(t)])

    def ln(x, name):
        return F.layer_norm(x, (e,), sd[name + ".weight"], sd[name + ".bias"], cfg["layernorm_epsilon"])

    def rotate(x, p):  # x (T, r): dims i and i + r/2 form a pair rotated by p / 10000^(2i/r)
        out = x.clone()
        for i in range(r // 2):
            inv = torch.tensor(1 / 10000 ** (2 * i / r))
            theta = (p.half() * inv.half()).double() if fp16_angles else p * inv.double()
            cos, sin = theta.cos(), theta.sin()
            if fp16_angles:
                cos, sin = cos.half().double(), sin.half().double()
            a, b = x[:, i], x[:, i + r // 2]
            out[:, i], out[:, i + r // 2] = a * cos - b * sin, b * cos + a * sin
        return out

    alpha = math.sqrt(2 * n_layers)
    x = sd["transformer.word_embeddings.weight"][ids]
    for layer in range(n_layers):
        p = f"transformer.layers.{layer}."
        hn = ln(x, p + "input_layernorm")
        qkv = hn @ sd[p + "attention.query_key_value.weight"].T + sd[p + "attention.query_key_value.bias"]
        heads = []
        for n in range(h):
            chunk = qkv[:, n * 3 * d:(n + 1) * 3 * d]  # this head's q | k | v
            q, k, v = chunk[:, :d], chunk[:, d:2 * d], chunk[:, 2 * d:]
            q = torch.cat([rotate(q[:, :r], pos), rotate(q[:, r:], blk)], dim=1)
            k = torch.cat([rotate(k[:, :r], pos), rotate(k[:, r:], blk)], dim=1)
            coeff = layer + 1  # query_key_layer_scaling_coeff
            scores = (q / (math.sqrt(d) * coeff)) @ k.T
            scores = scores.masked_fill(~allowed, -10000.0) * coeff
            heads.append(scores.softmax(-1) @ v)
        attn = torch.cat(heads, dim=1) @ sd[p + "attention.dense.weight"].T + sd[p + "attention.dense.bias"]
        x = hn * alpha + attn
        hn = ln(x, p + "post_attention_layernorm")
        u = hn @ sd[p + "mlp.dense_h_to_4h.weight"].T + sd[p + "mlp.dense_h_to_4h.bias"]
        u = 0.5 * u * (1.0 + torch.tanh(0.7978845608028654 * u * (1.0 + 0.044715 * u * u)))
        x = hn * alpha + u @ sd[p + "mlp.dense_4h_to_h.weight"].T + sd[p + "mlp.dense_4h_to_h.bias"]
    x = ln(x, "transformer.final_layernorm")
    return (x @ sd.get("lm_head.weight", sd["transformer.word_embeddings.weight"]).T).float()


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-4)


def differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a - b).abs().max().item() > 1e-2


def prompt(tok, text: str) -> list[int]:
    return tok.encode(text)  # ends with [gMASK] <sop>


def left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(map(len, rows))
    ids = torch.tensor([[pad] * (n - len(r)) + r for r in rows])
    return ids, torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])


# -- parity ---------------------------------------------------------------------------------------

def test_prompt_ending_in_gmask_sop_matches_reference(ckpt):
    d, cfg, state, model, tok = ckpt
    ids = prompt(tok, "问：图片里有什么？\n答：")
    assert ids[-2:] == [cfg["gmask_token_id"], cfg["bos_token_id"]]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    close(logits, reference_logits(state, cfg, ids))
    assert not model.config.tie_word_embeddings and model.dtype == torch.float32
    assert all(p.device.type == "cpu" for p in model.parameters())
    exact = build_chatglm_v1(ChatGLMv1Config.from_hf_dict({**cfg, "rope_fp16_angles": False}), dict(state),
                             source="exact angles")
    with torch.no_grad():
        close(exact(input_ids=torch.tensor([ids])).logits[0], reference_logits(state, cfg, ids, fp16_angles=False))


def test_left_padded_batch_matches_each_row(ckpt):
    d, cfg, state, model, tok = ckpt
    rows = [prompt(tok, "What colour is the circle?"), prompt(tok, "问：红色"), prompt(tok, "star")]
    ids, mask = left_pad(rows, cfg["pad_token_id"])
    with torch.no_grad():
        by_ids = model(input_ids=ids, attention_mask=mask).logits
        embeds = model.get_input_embeddings()(ids)
        by_embeds = model(inputs_embeds=embeds, attention_mask=mask,
                          position_ids=model.prefill_position_ids(mask)).logits
    for r, row in enumerate(rows):
        ref = reference_logits(state, cfg, row)
        close(by_ids[r, -len(row):], ref)
        close(by_embeds[r, -len(row):], ref)


def test_kv_cache_decoding_equals_full_recompute(ckpt):
    d, cfg, state, model, tok = ckpt
    rows = [prompt(tok, "The blue square"), prompt(tok, "问：图片")]
    ids, mask = left_pad(rows, cfg["pad_token_id"])
    with torch.no_grad():
        pos = model.prefill_position_ids(mask)  # (B, 2, T)
        out = model(inputs_embeds=model.get_input_embeddings()(ids), attention_mask=mask, position_ids=pos,
                    use_cache=True)
        pos = pos[..., -1:]
        for _ in range(4):
            for r, row in enumerate(rows):
                close(out.logits[r, -1], reference_logits(state, cfg, row)[-1])
            nxt = out.logits[:, -1].argmax(-1)
            rows = [row + [int(t)] for row, t in zip(rows, nxt)]
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            pos = model.next_position_ids(pos)
            out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos,
                        past_key_values=out.past_key_values, use_cache=True)
    assert pos[:, 1, 0].tolist() == [5, 5] and out.past_key_values.get_seq_length() == ids.shape[1] + 4


def test_loss_is_shifted_cross_entropy(ckpt):
    d, cfg, state, model, tok = ckpt
    ids = prompt(tok, "问：红色") + tok.encode("red", add_special_tokens=False) + [cfg["eos_token_id"]]
    labels = torch.tensor([[IGNORE_INDEX] * (len(ids) - 2) + ids[-2:]])
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), labels=labels)
    expected = F.cross_entropy(out.logits[0, -3:-1], torch.tensor(ids[-2:]))
    close(out.loss, expected)


def test_sat_layout_gives_the_same_logits(ckpt, tmp_path):
    d, cfg, state, model, tok = ckpt
    sat = {("mixins.chatglm-final.lm_head.weight" if k == "lm_head.weight" else k): v for k, v in state.items()}
    sat["transformer.position_embeddings.weight"] = torch.randn(cfg["max_sequence_length"], cfg["hidden_size"])
    sat["mixins.chatglm-attn.rotary_emb.inv_freq"] = torch.ones(4)
    (tmp_path / "1").mkdir()
    torch.save({"module": sat}, tmp_path / "1" / "mp_rank_00_model_states.pt")
    (tmp_path / "latest").write_text("1")
    raw = read_state_dict(tmp_path)
    assert is_sat_state_dict(raw)
    sat_model = build_chatglm_v1(ChatGLMv1Config.from_hf_dict(cfg), from_sat_state_dict(raw), source=tmp_path)
    ids = torch.tensor([prompt(tok, "What colour is the circle?")])
    with torch.no_grad():
        close(sat_model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_fp16_rotary_tables_are_the_published_ones():
    """THUDM's RotaryEmbedding run in fp16: half inv_freq, half positions, half einsum, half cos/sin."""
    inv = (1.0 / 10000 ** (torch.arange(0, 64, 2).float() / 64)).half()
    freqs = torch.einsum("i,j->ij", torch.arange(2048, dtype=torch.half), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = rotary_tables(torch.arange(2048)[None], 64, fp16_angles=True)
    close(cos[0, 0], emb.cos().float())
    torch.testing.assert_close(sin[0, 0], emb.sin().float(), rtol=0, atol=5e-4)  # within one fp16 step
    exact_cos, _ = rotary_tables(torch.arange(2048)[None], 64)
    assert (exact_cos - cos).abs().max() > 0.1  # far positions: fp16 angles are visibly off


# -- deliberate mistakes must break parity ----------------------------------------------------------

def test_qkv_read_as_contiguous_blocks_breaks_parity(ckpt):
    d, cfg, state, model, tok = ckpt
    h, e = cfg["num_attention_heads"], cfg["hidden_size"]
    wrong = dict(state)
    for i in range(cfg["num_layers"]):  # what a loader assuming [q | k | v] blocks would hand the model
        for kind in ("weight", "bias"):
            key = f"transformer.layers.{i}.attention.query_key_value.{kind}"
            w = state[key]
            wrong[key] = w.reshape(h, 3, e // h, -1).transpose(0, 1).reshape(w.shape)
    bad = build_chatglm_v1(ChatGLMv1Config.from_hf_dict(cfg), wrong, source="wrong")
    ids = prompt(tok, "The blue square")
    with torch.no_grad():
        assert differs(bad(input_ids=torch.tensor([ids])).logits[0], reference_logits(state, cfg, ids))


def test_one_dimensional_positions_break_parity(ckpt):
    d, cfg, state, model, tok = ckpt
    ids = prompt(tok, "The blue square")
    t = len(ids)
    ref = reference_logits(state, cfg, ids)
    plain = torch.stack([torch.arange(t), torch.zeros(t, dtype=torch.long)])[None]  # GPT-style, no blocks
    causal = model.prefill_position_ids(torch.ones(1, t), context_lengths=[0])  # no bidirectional context
    with torch.no_grad():
        for pos in (plain, causal):
            assert differs(model(input_ids=torch.tensor([ids]), position_ids=pos).logits[0], ref)
        with pytest.raises(ValueError, match=r"\(B, 2, T\)"):
            model(input_ids=torch.tensor([ids]), position_ids=torch.arange(t)[None])


# -- loading ----------------------------------------------------------------------------------------

def test_missing_or_unexpected_tensor_is_named(ckpt, tmp_path):
    d, cfg, state, model, tok = ckpt
    for f in d.iterdir():
        shutil.copy(f, tmp_path / f.name)
    shard = tmp_path / "pytorch_model-00002-of-00002.bin"
    tensors = torch.load(shard)
    gone = next(k for k in tensors if k.endswith("mlp.dense_4h_to_h.bias"))
    del tensors[gone]
    tensors["transformer.prefix_encoder.embedding.weight"] = torch.zeros(2, 2)
    torch.save(tensors, shard)
    with pytest.raises(InputError, match=rf"missing: {gone}.*unexpected: transformer.prefix_encoder"):
        load_chatglm_v1(tmp_path)
    loose, _ = load_chatglm_v1(tmp_path, strict=False)
    assert all(p.device.type == "cpu" for p in loose.parameters())
    half, _ = load_chatglm_v1(d, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16


def test_image_token_offset_follows_the_model_ids(ckpt, tmp_path):
    d, cfg, *_ = ckpt
    for f in d.iterdir():
        shutil.copy(f, tmp_path / f.name)
    # Without num_image_tokens the published class assumes 20000; config.json's special ids say 0.
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ChatGLMTokenizer"}))
    assert read_tokenizer(tmp_path).gmask_token_id == cfg["gmask_token_id"] + 20000
    _, tok = load_chatglm_v1(tmp_path)
    assert tok.num_image_tokens == 0 and tok.gmask_token_id == cfg["gmask_token_id"]


def test_configs_are_read_and_wrong_ones_refused(ckpt):
    d, cfg, *_ = ckpt
    c = ChatGLMv1Config.from_json(d / "config.json")
    assert (c.hidden_size, c.num_layers, c.rotary_dim, c.max_position_embeddings) == (64, 3, 8, 256)
    sat = ChatGLMv1Config.from_sat_dict({"model_class": "VisualGLMModel", "num_layers": 28, "hidden_size": 4096,
                                         "num_attention_heads": 32, "vocab_size": 130528, "layernorm_order": "post"})
    assert sat.inner_hidden_size == 16384 and sat.gmask_token_id == 130001
    for bad, msg in (({"padded_vocab_size": 65024}, "ChatGLM2/3"), ({"quantization_bit": 4}, "quantized"),
                     ({"pre_seq_len": 128}, "P-tuning")):
        with pytest.raises(ValueError, match=msg):
            ChatGLMv1Config.from_hf_dict({**cfg, **bad})


def test_full_size_architecture_on_meta():
    with torch.device("meta"):
        tied = ChatGLMv1ForCausalLM(ChatGLMv1Config(tie_word_embeddings=True))
        untied = ChatGLMv1ForCausalLM(ChatGLMv1Config())
    h, f, v = 4096, 16384, 130528
    layer = 4 * h + 3 * h * h + 3 * h + h * h + h + h * f + f + f * h + h
    assert sum(p.numel() for p in tied.parameters()) == v * h + 28 * layer + 2 * h  # 6.17e9
    assert sum(p.numel() for p in untied.parameters()) - v * h == sum(p.numel() for p in tied.parameters())


# -- tokenizer --------------------------------------------------------------------------------------

def test_tokenizer_round_trips_whitespace_and_chinese(ckpt):
    tok = ckpt[4]
    for text in ["line one\nline two", "a\tb", "x  y     z", "pad" + " " * 85 + "end", " leading", "红色的圆\n\n在左边"]:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    pieces = tok.tokenize("a\tb  c" + " " * 85 + "\n")
    assert {"<|tab|>", "<|blank_2|>", "<|blank_80|>", "<|blank_5|>", "<n>"} <= set(pieces)


def test_special_tokens_and_ids(ckpt):
    d, cfg, state, model, tok = ckpt
    sp = spm.SentencePieceProcessor(model_file=str(d / "ice_text.model"))
    assert tok.gmask_token_id == sp.piece_to_id("[gMASK]") == cfg["gmask_token_id"]
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.pad_token_id) == ("<sop>", "<eop>", "<pad>", 3)
    assert tok.build_inputs_with_special_tokens([7], [8]) == [7, tok.gmask_token_id, tok.bos_token_id, 8,
                                                              tok.eos_token_id]
    ids = tok.encode("red")
    assert ids[-2:] == [tok.gmask_token_id, tok.bos_token_id] and tok.decode(ids, skip_special_tokens=True) == "red"
    typed = "look [gMASK] <sop> here"
    as_text = tok.encode(typed, add_special_tokens=False, split_special_tokens=True)
    assert not set(as_text) & set(tok.all_special_ids) and tok.decode(as_text) == typed
    assert tok.gmask_token_id in tok.encode(typed, add_special_tokens=False)

    shifted = ChatGLMv1Tokenizer(str(d / "ice_text.model"), num_image_tokens=20)
    assert shifted.encode("red", add_special_tokens=False) == [i + 20 for i in ids[:-2]]
    assert shifted.convert_ids_to_tokens(5) == "<image_5>" and shifted.gmask_token_id == tok.gmask_token_id + 20
    assert shifted.decode(shifted.encode("红色\nred")) == "红色\nred[gMASK]<sop>"


def test_placeholders_survive_save_and_load(ckpt, tmp_path, sp_model):
    d = tmp_path / "src"
    d.mkdir()
    (d / "ice_text.model").write_bytes(sp_model)
    (d / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    tok = read_tokenizer(d)
    tok.add_special_tokens({"additional_special_tokens": ["<|image|>", "<|audio|>", "<|video|>"]},
                           replace_additional_special_tokens=False)
    media = tok.convert_tokens_to_ids(["<|image|>", "<|audio|>", "<|video|>"])
    assert media == [tok.vocab_size, tok.vocab_size + 1, tok.vocab_size + 2] and len(tok) == tok.vocab_size + 3
    tok.save_pretrained(tmp_path / "saved")
    again = read_tokenizer(tmp_path / "saved")
    assert again.convert_tokens_to_ids(["<|image|>", "<|audio|>", "<|video|>"]) == media
    text = "问：<|image|>红色\n答："
    assert again.encode(text) == tok.encode(text) and again.decode(again.encode(text)) == text + "[gMASK]<sop>"


def test_visualglm_prompt_layout(ckpt):
    tok = ckpt[4]
    tok.add_special_tokens({"additional_special_tokens": ["<|image|>"]}, replace_additional_special_tokens=False)
    img = tok.convert_tokens_to_ids("<|image|>")
    template = get_template("visualglm")
    turns = [("图片里有什么？", "一个圆。"), ("什么颜色？", "红色。"), ("look [gMASK] here", None)]
    ids, labels = build_prompt(tok, template, turns, [img])
    run = "</img>问：图片里有什么？\n答：一个圆。\n问：什么颜色？\n答：红色。\n问：look [gMASK] here\n答："
    expected = (tok.encode("<img>", add_special_tokens=False) + [img]
                + tok.encode(run, add_special_tokens=False, split_special_tokens=True)
                + [tok.gmask_token_id, tok.bos_token_id])
    assert ids == expected and ids.count(tok.gmask_token_id) == 1  # the typed [gMASK] is text
    assert all(lbl == IGNORE_INDEX for lbl in labels)
    ids, labels = build_prompt(tok, template, [("什么颜色？", "红色。")], [img])
    learned = [i for i, lbl in zip(ids, labels) if lbl != IGNORE_INDEX]
    assert learned == tok.encode("红色。", add_special_tokens=False) + [tok.eos_token_id]
    assert ids[len(ids) - len(learned) - 2:len(ids) - len(learned)] == [tok.gmask_token_id, tok.bos_token_id]
    assert stop_token_ids(tok, template) == {tok.eos_token_id, tok.convert_tokens_to_ids("</s>")}
