"""`mm convert chatglm3|chatglm2`: tiny checkpoints in THUDM's published layout -> transformers' GlmForCausalLM.

The checkpoints are written here the way THUDM publishes them (config.json with auto_map, two
`pytorch_model-0000N-of-00002.bin` shards with an index, a SentencePiece BPE `tokenizer.model` with byte
fallback trained in the test). The converted model is compared with a forward pass written below from
ChatGLM2/3's published semantics in plain torch, reading the source state dict directly.
"""

from __future__ import annotations

import base64
import io
import json
import math
import random
import shutil

import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, GlmForCausalLM

import mm.convert.chatglm as chatglm
from mm.cli.main import main as mm_main
from mm.convert.chatglm import convert_chatglm, glm_config_from_chatglm
from mm.convert.sentencepiece_fast import mismatches, read_sentencepiece, sentencepiece_tokenizer
from mm.errors import InputError
from mm.llm import load_llm
from mm.prompt import build_prompt, get_template, stop_token_ids

HIDDEN, LAYERS, HEADS, GROUPS, HEAD_DIM, FFN = 64, 2, 4, 2, 16, 96
SP_VOCAB, PADDED_VOCAB = 384, 400
SPECIALS = ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop", "<|system|>", "<|user|>", "<|assistant|>",
            "<|observation|>"]

EN = ("the quick brown fox jumps over lazy dog hello world model token people said circle square "
      "red blue green image sound describe what colour shape").split()
ZH = list("你好世界今天天气图片里有一个红色的圆形和两个蓝色正方形模型声音描述")


def _corpus(n: int = 1500) -> list[str]:
    rng = random.Random(0)
    lines = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(3, 12)):
            r = rng.random()
            if r < 0.55:
                words.append(rng.choice(EN))
            elif r < 0.85:
                words.append("".join(rng.choices(ZH, k=rng.randint(1, 4))))
            else:
                words.append(str(rng.randint(0, 99999)))
        line = " ".join(words) + rng.choice(["", ".", "?", "!", ","])
        lines.append(("    " if rng.random() < 0.2 else "") + line)
    return lines


def train_sentencepiece(**overrides) -> bytes:
    """A BPE model with ChatGLM2/3's tokenizer settings: byte fallback, identity normalization, spaces kept."""
    buf = io.BytesIO()
    options = dict(model_type="bpe", vocab_size=SP_VOCAB, byte_fallback=True, normalization_rule_name="identity",
                   remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True,
                   allow_whitespace_only_pieces=True, character_coverage=0.9995, unk_id=0, bos_id=1, eos_id=2,
                   pad_id=-1, num_threads=1, minloglevel=2)
    options.update(overrides)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_corpus()), model_writer=buf, **options)
    return buf.getvalue()


def chatglm_config(**overrides) -> dict:
    """config.json as THUDM publishes it for chatglm3-6b, at tiny size."""
    cfg = {
        "_name_or_path": "tiny-chatglm3", "model_type": "chatglm", "architectures": ["ChatGLMModel"],
        "auto_map": {
            "AutoConfig": "configuration_chatglm.ChatGLMConfig",
            "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration",
            "AutoModelForCausalLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
            "AutoModelForSeq2SeqLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
        },
        "add_bias_linear": False, "add_qkv_bias": True, "apply_query_key_layer_scaling": True,
        "apply_residual_connection_post_layernorm": False, "attention_dropout": 0.0,
        "attention_softmax_in_fp32": True, "bias_dropout_fusion": True, "ffn_hidden_size": FFN,
        "fp32_residual_connection": False, "hidden_dropout": 0.0, "hidden_size": HIDDEN, "kv_channels": HEAD_DIM,
        "layernorm_epsilon": 1e-05, "multi_query_attention": True, "multi_query_group_num": GROUPS,
        "num_attention_heads": HEADS, "num_layers": LAYERS, "original_rope": True, "padded_vocab_size": PADDED_VOCAB,
        "post_layer_norm": True, "rmsnorm": True, "seq_length": 256, "use_cache": True, "torch_dtype": "float32",
        "transformers_version": "4.30.2", "tie_word_embeddings": False, "eos_token_id": 2, "pad_token_id": 0,
    }
    cfg.update(overrides)
    return cfg


def chatglm_state(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under THUDM's names (norm weights away from 1, biases non-zero)."""
    g = torch.Generator().manual_seed(seed)
    h, d, f = cfg["hidden_size"], cfg["kv_channels"], cfg["ffn_hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg["multi_query_group_num"] if cfg["multi_query_attention"] else heads
    qkv_rows = (heads + 2 * kv) * d

    def w(*shape, std=0.08):
        return torch.randn(*shape, generator=g) * std

    def norm():
        return 1 + w(h, std=0.2)

    sd = {"transformer.embedding.word_embeddings.weight": w(cfg["padded_vocab_size"], h, std=1.0)}
    rot = d // 2
    sd["transformer.rotary_pos_emb.inv_freq"] = 1.0 / 10000 ** (torch.arange(0, rot, 2).float() / rot)
    for i in range(cfg["num_layers"]):
        p = f"transformer.encoder.layers.{i}."
        sd[p + "input_layernorm.weight"] = norm()
        sd[p + "self_attention.query_key_value.weight"] = w(qkv_rows, h, std=0.25)
        sd[p + "self_attention.query_key_value.bias"] = w(qkv_rows, std=0.2)
        sd[p + "self_attention.dense.weight"] = w(h, heads * d)
        sd[p + "post_attention_layernorm.weight"] = norm()
        sd[p + "mlp.dense_h_to_4h.weight"] = w(2 * f, h, std=0.2)
        sd[p + "mlp.dense_4h_to_h.weight"] = w(h, f)
    sd["transformer.encoder.final_layernorm.weight"] = norm()
    sd["transformer.output_layer.weight"] = w(cfg["padded_vocab_size"], h, std=0.2)
    return sd


def write_checkpoint(root, cfg: dict, sd: dict[str, torch.Tensor], sp_model: bytes):
    """The published file layout: two .bin shards with an index, config.json, tokenizer files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(cfg, indent=2))
    (root / "tokenizer.model").write_bytes(sp_model)
    (root / "tokenizer_config.json").write_text(json.dumps({
        "auto_map": {"AutoTokenizer": ["tokenization_chatglm.ChatGLMTokenizer", None]},
        "tokenizer_class": "ChatGLMTokenizer", "padding_side": "left", "remove_space": False,
        "do_lower_case": False}))
    names = list(sd)
    half = names.index("transformer.encoder.layers.1.input_layernorm.weight") if cfg["num_layers"] > 1 else 3
    shards = {"pytorch_model-00001-of-00002.bin": names[:half], "pytorch_model-00002-of-00002.bin": names[half:]}
    weight_map = {}
    for file, keys in shards.items():
        torch.save({k: sd[k] for k in keys}, root / file)
        weight_map.update(dict.fromkeys(keys, file))
    total = sum(t.numel() * t.element_size() for t in sd.values())
    (root / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return root


# ---------------------------------------------------------------- reference ChatGLM2/3 forward (plain torch)


def reference_logits(sd: dict[str, torch.Tensor], cfg: dict, ids: torch.Tensor, *, rope: str = "base") -> torch.Tensor:
    """ChatGLM2/3's forward as published: RMSNorm, packed qkv, interleaved rotary on half of each head,
    grouped-query causal attention, SwiGLU ([gate | up]), final RMSNorm, output_layer. ids: (B, T)."""
    heads, d, eps = cfg["num_attention_heads"], cfg["kv_channels"], cfg["layernorm_epsilon"]
    groups = cfg["multi_query_group_num"] if cfg["multi_query_attention"] else heads
    ratio = cfg.get("rope_ratio", 1)
    b, t = ids.shape
    x = sd["transformer.embedding.word_embeddings.weight"][ids]  # (B, T, D)

    rot = d // 2  # rotary on the first half of each head, pairs (x[2i], x[2i+1])
    base = 10000.0 * ratio if rope == "base" else 10000.0
    theta = 1.0 / base ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot)  # (rot/2,)
    pos = torch.arange(t, dtype=torch.float64) / (ratio if rope == "interpolate" else 1)
    angle = torch.outer(pos, theta)  # (T, rot/2)
    cos, sin = angle.cos().float()[None, :, None], angle.sin().float()[None, :, None]

    def rotary(v):  # (B, T, n, Dh)
        pairs = v[..., :rot].reshape(*v.shape[:-1], rot // 2, 2)
        a, c = pairs[..., 0], pairs[..., 1]
        turned = torch.stack([a * cos - c * sin, c * cos + a * sin], dim=-1).flatten(-2)
        return torch.cat([turned, v[..., rot:]], dim=-1)

    def rms(v, weight):
        return weight * (v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps))

    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for i in range(cfg["num_layers"]):
        p = f"transformer.encoder.layers.{i}."
        hdn = rms(x, sd[p + "input_layernorm.weight"])
        qkv = hdn @ sd[p + "self_attention.query_key_value.weight"].T + sd[p + "self_attention.query_key_value.bias"]
        if cfg["multi_query_attention"]:
            q, k, v = qkv.split([heads * d, groups * d, groups * d], dim=-1)
            q, k, v = q.view(b, t, heads, d), k.view(b, t, groups, d), v.view(b, t, groups, d)
        else:  # per head [q_h k_h v_h]
            q, k, v = qkv.view(b, t, heads, 3 * d).split(d, dim=-1)
        q, k = rotary(q), rotary(k)
        k = k.repeat_interleave(heads // groups, dim=2)  # group j serves heads j*H/G ... (j+1)*H/G - 1
        v = v.repeat_interleave(heads // groups, dim=2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
        probs = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        ctx = torch.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, t, heads * d)
        x = x + ctx @ sd[p + "self_attention.dense.weight"].T
        hdn = rms(x, sd[p + "post_attention_layernorm.weight"])
        gate, up = (hdn @ sd[p + "mlp.dense_h_to_4h.weight"].T).chunk(2, dim=-1)
        x = x + (F.silu(gate) * up) @ sd[p + "mlp.dense_4h_to_h.weight"].T
    x = rms(x, sd["transformer.encoder.final_layernorm.weight"])
    return x @ sd["transformer.output_layer.weight"].T


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sp_model() -> bytes:
    return train_sentencepiece()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, sp_model):
    cfg = chatglm_config()
    sd = chatglm_state(cfg)
    return write_checkpoint(tmp_path_factory.mktemp("chatglm3-6b"), cfg, sd, sp_model), cfg, sd


@pytest.fixture(scope="module")
def converted(tmp_path_factory, checkpoint):
    src, _, _ = checkpoint
    dst = tmp_path_factory.mktemp("out") / "chatglm3-glm"
    assert mm_main(["convert", "chatglm3", str(src), str(dst), "--max-shard-size", "100KB"]) == 0
    return dst


@pytest.fixture(scope="module")
def sp(checkpoint):
    return spm.SentencePieceProcessor(model_file=str(checkpoint[0] / "tokenizer.model"))


IDS = torch.tensor([[5, 300, 17, 42, 399, 8, 123, 64, 250, 3, 77, 191], [9, 9, 9, 260, 2, 0, 301, 55, 6, 388, 12, 140]])


# ---------------------------------------------------------------- model parity


def test_cli_conversion_matches_the_reference_forward(checkpoint, converted):
    _, cfg, sd = checkpoint
    model = GlmForCausalLM.from_pretrained(converted).eval()
    assert model.config.model_type == "glm" and model.config.num_key_value_heads == GROUPS
    assert model.config.partial_rotary_factor == 0.5 and model.config.attention_bias
    with torch.no_grad():
        ours = model(IDS).logits
    torch.testing.assert_close(ours, reference_logits(sd, cfg, IDS), rtol=1e-4, atol=1e-4)
    files = sorted(p.name for p in converted.iterdir())
    assert "model.safetensors.index.json" in files and sum(f.endswith(".safetensors") for f in files) > 1
    assert not any(p.name.startswith(".") for p in converted.parent.iterdir())  # no partial folder left


@pytest.mark.parametrize("overrides,version,rope", [
    ({"rope_ratio": 50}, "chatglm3", "base"),  # chatglm3-6b-32k: a larger base
    ({"rope_ratio": 4}, "chatglm2", "interpolate"),  # chatglm2-6b-32k: positions / rope_ratio
    ({"multi_query_attention": False, "add_qkv_bias": True}, "chatglm3", "base"),  # per-head [q k v] rows
])
def test_config_variants_match_the_reference(tmp_path, sp_model, overrides, version, rope):
    cfg = chatglm_config(**overrides)
    sd = chatglm_state(cfg, seed=1)
    src = write_checkpoint(tmp_path / "src", cfg, sd, sp_model)
    dst = convert_chatglm(src, tmp_path / "dst", version=version)
    model = AutoModelForCausalLM.from_pretrained(dst).eval()
    ids = torch.randint(0, PADDED_VOCAB, (1, 40), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = model(ids).logits
    torch.testing.assert_close(ours, reference_logits(sd, cfg, ids, rope=rope), rtol=1e-4, atol=1e-4)


def _swap_halves(t):
    gate, up = t.chunk(2, dim=0)
    return torch.cat([up, gate])


def _half_split_rotary(split):
    """The classic mistake: treat rotary pairs as (x[i], x[i + rot/2]) and permute rows for it."""
    def wrong(t, layout):
        q, k, v = split(t, layout)
        rot = layout.head_dim // 2
        order = torch.cat([torch.arange(0, rot, 2), torch.arange(1, rot, 2), torch.arange(rot, layout.head_dim)])

        def permute(m):
            return m.reshape(-1, layout.head_dim, *m.shape[1:])[:, order].reshape(m.shape)

        return permute(q), permute(k), v
    return wrong


@pytest.mark.parametrize("mistake", ["swapped SwiGLU halves", "half-split rotary"])
def test_injected_conversion_mistakes_break_parity(tmp_path, checkpoint, monkeypatch, mistake):
    src, cfg, sd = checkpoint
    if mistake == "swapped SwiGLU halves":
        monkeypatch.setattr(chatglm, "gate_up", _swap_halves)
    else:
        monkeypatch.setattr(chatglm, "split_qkv", _half_split_rotary(chatglm.split_qkv))
    dst = convert_chatglm(src, tmp_path / "bad", version="chatglm3")
    with torch.no_grad():
        bad = GlmForCausalLM.from_pretrained(dst).eval()(IDS).logits
    ref = reference_logits(sd, cfg, IDS)
    assert (bad - ref).abs().max() > 0.05 * ref.abs().max()


def test_the_published_chatglm3_6b_shape_on_the_meta_device(tmp_path):
    published = chatglm_config(hidden_size=4096, ffn_hidden_size=13696, kv_channels=128, num_attention_heads=32,
                               num_layers=28, padded_vocab_size=65024, seq_length=8192, torch_dtype="float16")
    with torch.device("meta"):
        model = GlmForCausalLM(glm_config_from_chatglm(published, "chatglm3", tmp_path))
    assert sum(p.numel() for p in model.parameters()) == 6_243_584_000


def test_stored_rotary_frequencies_are_checked(tmp_path, sp_model):
    cfg = chatglm_config()
    sd = chatglm_state(cfg)
    sd["transformer.rotary_pos_emb.inv_freq"] = 1.0 / 10000 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM)
    src = write_checkpoint(tmp_path / "src", cfg, sd, sp_model)
    with pytest.raises(InputError, match="rotary frequencies"):
        convert_chatglm(src, tmp_path / "dst", version="chatglm3")


# ---------------------------------------------------------------- tokenizer


TEXTS = [
    "hello world, the quick brown fox",
    "What colour is the circle? It is red.",
    "你好世界，图片里有一个红色的圆形。",
    "mixed 中文 and English 模型 model",
    "    leading spaces and    inner runs   ",
    "line one\nline two\n\n\tindented\r\nwindows",
    "digits 0123456789 3.14 2024-01-31 1,000,000",
    "emoji 😀🎉👍🏽 and rare ꙮ Ωμέγα 𝔘𝔫𝔦",
    " ", "\n", "a", "",
    "people said eop and sop: Aesop, [MASK] </s>",
    "people of Aesop",  # 'eop' and 'sop' inside words stay text
]


def test_fast_tokenizer_encodes_like_sentencepiece(converted, sp):
    tok = AutoTokenizer.from_pretrained(converted)
    rng = random.Random(1)
    alphabet = "ab cd  \n\t01 9你好红色的😀Ω" + "".join(ZH) + "".join(EN[:5])
    noise = ["".join(rng.choices(alphabet, k=rng.randint(1, 25))) for _ in range(300)]
    for text in TEXTS + _corpus(200) + noise:
        assert tok.encode(text, add_special_tokens=False, split_special_tokens=True) == sp.encode(text), text
        if "[MASK]" not in text and "</s>" not in text:  # no special token strings: the plain encode agrees too
            assert tok.encode(text, add_special_tokens=False) == sp.encode(text), text
    assert sp.encode("emoji 😀") != [sp.unk_id()] and "<0xF0>" in sp.encode("😀", out_type=str)  # byte fallback


def test_fast_tokenizer_decodes_and_knows_the_special_tokens(converted, sp):
    tok = AutoTokenizer.from_pretrained(converted)
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False, split_special_tokens=True)
        assert tok.decode(ids) == text == sp.decode(ids)
    n = sp.get_piece_size()
    assert tok.convert_tokens_to_ids(SPECIALS) == list(range(n, n + len(SPECIALS)))
    assert (tok.eos_token, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == ("</s>", 2, 0, 0)
    gmask, sop, user = (tok.convert_tokens_to_ids(t) for t in ("[gMASK]", "sop", "<|user|>"))
    assert tok("hello")["input_ids"] == [gmask, sop, *sp.encode("hello")]  # THUDM's prefix tokens
    assert tok.encode("[gMASK]sop<|user|>", add_special_tokens=False) == [gmask, sop, user]
    assert tok.decode([gmask, sop, user, *sp.encode("hi")], skip_special_tokens=True) == "hi"


@pytest.mark.parametrize("options", [
    dict(normalization_rule_name="nmt_nfkc", remove_extra_whitespaces=True),  # SentencePiece's defaults
    dict(byte_fallback=False, split_digits=False, allow_whitespace_only_pieces=False),  # <unk> for the unknown
])
def test_other_sentencepiece_bpe_options_convert_exactly(tmp_path, options):
    path = tmp_path / "sp.model"
    path.write_bytes(train_sentencepiece(**options))
    core = sentencepiece_tokenizer(read_sentencepiece(path))
    assert mismatches(core, path, TEXTS + _corpus(100)) == []


def test_what_is_not_a_sentencepiece_bpe_model_is_refused(tmp_path):
    unigram = tmp_path / "unigram.model"
    unigram.write_bytes(train_sentencepiece(model_type="unigram", byte_fallback=False, vocab_size=150))
    with pytest.raises(InputError, match="only SentencePiece BPE"):
        sentencepiece_tokenizer(read_sentencepiece(unigram))
    tiktoken = tmp_path / "tokenizer.model"  # GLM-4's vocabulary file: base64 token and rank per line
    tiktoken.write_text("".join(f"{base64.b64encode(bytes([i])).decode()} {i}\n" for i in range(256)))
    with pytest.raises(InputError, match="not a SentencePiece model"):
        read_sentencepiece(tiktoken)


def test_chatglm3_prompts_are_the_reference_ids(converted, sp):
    tok = AutoTokenizer.from_pretrained(converted)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    nl = sp.encode("\n")

    # THUDM's build_chat_input: role token + encode("\n") + encode(text), ..., then <|assistant|>
    def turn(role, text):
        return [ids[f"<|{role}|>"], *nl, *sp.encode(text)]

    history = [("What colour is the circle?", "It is red."), ("你好", None)]
    reference = [ids["[gMASK]"], ids["sop"], *turn("user", history[0][0]), *turn("assistant", history[0][1]),
                 *turn("user", history[1][0]), ids["<|assistant|>"]]
    got, labels = build_prompt(tok, get_template("chatglm3"), history)
    # mm's template also writes the newline after <|assistant|> that the model would emit first
    assert got == reference + nl and len(labels) == len(got)
    messages = [{"role": "user", "content": history[0][0]}, {"role": "assistant", "content": history[0][1]},
                {"role": "user", "content": history[1][0]}]
    assert tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True) == reference
    typed, _ = build_prompt(tok, get_template("chatglm3"), [("<|user|> sop", None)])
    assert typed.count(ids["<|user|>"]) == 1 and ids["sop"] not in typed[2:]  # typed text stays text
    assert stop_token_ids(tok, get_template("chatglm3")) == {2, ids["<|user|>"], ids["<|observation|>"]}


# ---------------------------------------------------------------- loading and refusals


def test_load_llm_refuses_the_source_and_loads_the_conversion(checkpoint, converted):
    src, cfg, sd = checkpoint
    with pytest.raises(InputError, match="mm convert chatglm3"):
        load_llm(src)
    with pytest.raises(InputError, match="mm convert chatglm3"):
        load_llm(src, trust_remote_code=True)
    model, tok = load_llm(converted)
    assert isinstance(model, GlmForCausalLM) and tok.convert_tokens_to_ids("<|user|>") == SP_VOCAB + 6
    assert model.generation_config.eos_token_id == [2, SP_VOCAB + 6, SP_VOCAB + 8]


def test_cli_errors_are_one_clear_line(tmp_path, checkpoint, converted, capsys):
    src, full = checkpoint[0], tmp_path / "full"
    shutil.copytree(converted, full)
    cases = [
        (["convert", "chatglm3", str(tmp_path / "nope"), str(tmp_path / "o1")], "not a directory"),
        (["convert", "chatglm3", str(src), str(full)], "not empty"),
    ]
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama"}))
    cases.append((["convert", "chatglm3", str(llama), str(tmp_path / "o2")], "not a ChatGLM2/3 checkpoint"))
    for argv, message in cases:
        assert mm_main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("mm convert: error: ") and message in err and err.count("\n") == 1
    assert mm_main(["convert", "chatglm3", str(src), str(full), "--force", "--dtype", "bf16"]) == 0
    assert GlmForCausalLM.from_pretrained(full, dtype="auto").dtype == torch.bfloat16
    assert sorted(p.name for p in full.glob("*.safetensors")) == ["model.safetensors"]  # stale shards gone
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        mm_main(["convert", "--help"])
    assert e.value.code == 0 and "usage: mm convert" in capsys.readouterr().out


@pytest.mark.parametrize("change,message", [
    ({"rmsnorm": False}, "rmsnorm=False"),
    ({"apply_residual_connection_post_layernorm": True}, "apply_residual_connection_post_layernorm"),
    ({"add_bias_linear": True}, "add_bias_linear"),
    ({"quantization_bit": 4}, "quantized"),
    ({"pre_seq_len": 128}, "P-tuning"),
])
def test_unsupported_configs_are_refused(tmp_path, checkpoint, change, message):
    src = tmp_path / "src"
    shutil.copytree(checkpoint[0], src)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, **change}))
    with pytest.raises(InputError, match=message):
        convert_chatglm(src, tmp_path / "dst", version="chatglm3")
    assert not (tmp_path / "dst").exists()


def test_every_tensor_is_accounted_for(tmp_path, sp_model):
    cfg = chatglm_config()
    sd = chatglm_state(cfg)
    sd["transformer.classifier_head.weight"] = torch.zeros(2, HIDDEN)
    del sd["transformer.encoder.layers.1.mlp.dense_4h_to_h.weight"]
    src = write_checkpoint(tmp_path / "src", cfg, sd, sp_model)
    with pytest.raises(InputError) as e:
        convert_chatglm(src, tmp_path / "dst", version="chatglm3")
    assert "model.layers.1.mlp.down_proj.weight" in str(e.value) and "classifier_head" in str(e.value)


def test_the_version_comes_from_the_checkpoint_when_it_says(tmp_path, checkpoint):
    src = tmp_path / "src"
    shutil.copytree(checkpoint[0], src)
    with pytest.raises(InputError, match="ChatGLM2 from ChatGLM3"):
        convert_chatglm(src, tmp_path / "a")
    # a stand-in for ChatGLM2's tokenization_chatglm.py: its special tokens stop at "eop"
    (src / "tokenization_chatglm.py").write_text('special_tokens = ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"]\n')
    with pytest.raises(InputError, match="mm convert chatglm2"):
        convert_chatglm(src, tmp_path / "b", version="chatglm3")
    tok = AutoTokenizer.from_pretrained(convert_chatglm(src, tmp_path / "c"))
    assert "<|user|>" not in tok.get_vocab() and tok.convert_tokens_to_ids("eop") == SP_VOCAB + 4
    # ChatGLM2's build_prompt rounds, encoded whole after the [gMASK]sop prefix its tokenizer adds
    sp = spm.SentencePieceProcessor(model_file=str(src / "tokenizer.model"))
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "world"},
                {"role": "user", "content": "你好"}]
    prompt = "[Round 1]\n\n问：hello\n\n答：world\n\n[Round 2]\n\n问：你好\n\n答："
    assert tok.apply_chat_template(messages, tokenize=True) == tok("")["input_ids"] + sp.encode(prompt)
