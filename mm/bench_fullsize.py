"""`mm bench fullsize`: a random-weight VisualGLM-6B in the published SAT release layout, loaded at full size.

Writes `model_config.json`, `latest` and `1/mp_rank_00_model_states.pt` = `{"module": state}` with the
published names and shapes (7.8e9 parameters, bf16: about 15.6 GB), plus a small ChatGLM-style
SentencePiece tokenizer (the real `ice_text.model` is not ours to ship). Then, each in a fresh process so
peak memory is its own, it loads the release with `mm.load("visualglm-6b", checkpoint=...)` in bf16 and in
int4 and reports load seconds, peak resident memory over weight bytes, first-token latency, seconds per
generated token, and the answer to one question about one picture: nonsense words from random weights,
but every part of the path at full size.

Shape letters: E LLM width, F MLP width, V vocabulary, L layers, De ViT width, D Q-Former width.
"""

from __future__ import annotations

import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

# The published release's model_config.json (THUDM/VisualGLM-6B).
VISUALGLM_CONFIG: dict[str, Any] = {
    "model_class": "VisualGLMModel", "tokenizer_type": "THUDM/chatglm-6b", "num_layers": 28, "hidden_size": 4096,
    "num_attention_heads": 32, "vocab_size": 130528, "layernorm_order": "post", "model_parallel_size": 1,
    "max_sequence_length": 2048, "pre_seq_len": 128, "bos_token_id": 130004, "mask_token_id": 130000,
    "gmask_token_id": 130001, "image_size": [224, 224], "pre_len": 1, "post_len": 0, "in_channels": 3,
    "patch_size": 14, "image_length": 32,
    "eva_args": {"num_layers": 39, "hidden_size": 1408, "num_attention_heads": 16, "vocab_size": 1,
                 "layernorm_order": "pre", "model_parallel_size": 1, "max_sequence_length": 257,
                 "inner_hidden_size": 6144, "use_final_layernorm": False, "layernorm_epsilon": 1e-06,
                 "image_size": [224, 224], "pre_len": 1, "post_len": 0, "in_channels": 3, "num_classes": 0,
                 "patch_size": 14},
    "qformer_args": {"num_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "vocab_size": 32,
                     "layernorm_order": "post", "model_parallel_size": 1, "max_sequence_length": 0,
                     "is_decoder": [i % 2 == 0 for i in range(12)], "cross_attn_hidden_size": 1408,
                     "layernorm_epsilon": 1e-12},
}
# ChatGLM-6B's ice_text.model user symbols (whitespace and GLM's specials); a small model stands in for it.
GLM_SYMBOLS = ["<n>", "[MASK]", "[gMASK]", "[sMASK]", "<unused_0>", "<sop>", "<eop>", "<ENC>", "<dBLOCK>",
               "<|tab|>", *(f"<|blank_{i}|>" for i in range(2, 81))]


def _layers(prefix: str, n: int, width: int, mlp: int, cross: list[bool] | None = None,
            cross_width: int = 0) -> Iterator[tuple[str, tuple[int, ...]]]:
    """SAT BaseTransformerLayer tensors (`attention.query_key_value` packs q|k|v rows)."""
    for i in range(n):
        p = f"{prefix}transformer.layers.{i}."
        yield from ((p + f"{ln}.{s}", (width,)) for ln in ("input_layernorm", "post_attention_layernorm")
                    for s in ("weight", "bias"))
        yield p + "attention.query_key_value.weight", (3 * width, width)
        yield p + "attention.query_key_value.bias", (3 * width,)
        yield p + "attention.dense.weight", (width, width)
        yield p + "attention.dense.bias", (width,)
        yield p + "mlp.dense_h_to_4h.weight", (mlp, width)
        yield p + "mlp.dense_h_to_4h.bias", (mlp,)
        yield p + "mlp.dense_4h_to_h.weight", (width, mlp)
        yield p + "mlp.dense_4h_to_h.bias", (width,)
        if cross is not None and cross[i]:
            yield p + "cross_attention.query.weight", (width, width)
            yield p + "cross_attention.query.bias", (width,)
            yield p + "cross_attention.key_value.weight", (2 * width, cross_width)
            yield p + "cross_attention.key_value.bias", (2 * width,)
            yield p + "cross_attention.dense.weight", (width, width)
            yield p + "cross_attention.dense.bias", (width,)
            yield p + "post_cross_attention_layernorm.weight", (width,)
            yield p + "post_cross_attention_layernorm.bias", (width,)


def sat_release_tensors(cfg: dict[str, Any] = VISUALGLM_CONFIG) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Names and shapes of a VisualGLM-6B SAT release (VisualGLM-6B model/visualglm.py and model/blip2.py on
    SwissArmyTransformer's ChatGLMModel, ViTModel and BaseModel)."""
    e, v = cfg["hidden_size"], cfg["vocab_size"]
    yield "transformer.word_embeddings.weight", (v, e)
    yield "transformer.position_embeddings.weight", (cfg["max_sequence_length"], e)  # built by SAT, unused
    yield from _layers("", cfg["num_layers"], e, cfg.get("inner_hidden_size") or 4 * e)
    yield "transformer.final_layernorm.weight", (e,)
    yield "transformer.final_layernorm.bias", (e,)
    yield "mixins.chatglm-final.lm_head.weight", (v, e)
    eva, qf = cfg["eva_args"], cfg["qformer_args"]
    de, p = eva["hidden_size"], eva["patch_size"]
    vit = "mixins.eva.model.vit."
    yield vit + "transformer.word_embeddings.weight", (1, de)  # the CLS token
    yield vit + "transformer.position_embeddings.weight", (eva["max_sequence_length"], de)
    yield vit + "mixins.patch_embedding.proj.weight", (de, eva["in_channels"], p, p)
    yield vit + "mixins.patch_embedding.proj.bias", (de,)
    yield from _layers(vit, eva["num_layers"], de, eva["inner_hidden_size"])
    yield vit + "mixins.cls.ln_vision.weight", (de,)
    yield vit + "mixins.cls.ln_vision.bias", (de,)
    d = qf["hidden_size"]
    q = "mixins.eva.model.qformer."
    yield q + "transformer.word_embeddings.weight", (qf["vocab_size"], d)  # the query tokens
    yield from _layers(q, qf["num_layers"], d, qf.get("inner_hidden_size") or 4 * d, qf["is_decoder"],
                       qf["cross_attn_hidden_size"])
    yield q + "transformer.final_layernorm.weight", (d,)
    yield q + "transformer.final_layernorm.bias", (d,)
    yield "mixins.eva.model.glm_proj.weight", (e, d)
    yield "mixins.eva.model.glm_proj.bias", (e,)


TOKENIZER_PIECES = 500


def _spelled_ids(cfg: dict[str, Any]) -> range:
    """The LLM ids the stand-in tokenizer covers: its pieces, shifted so that [gMASK] is the config's id."""
    start = cfg["gmask_token_id"] - (4 + GLM_SYMBOLS.index("[gMASK]"))  # 4 ids (unk, bos, eos, pad) come first
    return range(max(start, 0), min(start + TOKENIZER_PIECES, cfg["vocab_size"]))


def write_tokenizer(directory: Path, vocab_size: int = TOKENIZER_PIECES) -> Path:
    """A small SentencePiece model with ChatGLM-6B's user symbols and the published tokenizer_config.json.

    Its ids are shifted by the loader so that [gMASK] lands on the config's 130001, as in the real one."""
    import sentencepiece as spm

    corpus = ["What colour is the circle? It is red.", "问：图片里有什么？答：一个红色的圆在左边。",
              "Describe the picture in one sentence.", "这张图片的背景是什么颜色？"] * 50
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=vocab_size, hard_vocab_limit=False,
        user_defined_symbols=GLM_SYMBOLS, unk_id=0, bos_id=1, eos_id=2, pad_id=3, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, character_coverage=1.0, minloglevel=2)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ice_text.model").write_bytes(buf.getvalue())
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "ChatGLMTokenizer", "bos_token": "<sop>", "eos_token": "<eop>", "end_token": "</s>",
        "gmask_token": "[gMASK]", "mask_token": "[MASK]", "pad_token": "<pad>", "unk_token": "<unk>",
        "padding_side": "left"}))
    return directory


def write_sat_release(directory: Path, cfg: dict[str, Any] = VISUALGLM_CONFIG, dtype: torch.dtype = torch.bfloat16,
                      seed: int = 0) -> Path:
    """Random weights (norms 1/0, matrices N(0, 0.02)) in the SAT release layout; returns the folder."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    live = _spelled_ids(cfg)
    for name, shape in sat_release_tensors(cfg):
        if "layernorm" in name or "ln_vision" in name:
            state[name] = (torch.ones if name.endswith("weight") else torch.zeros)(shape, dtype=dtype)
        elif name.endswith("bias"):
            state[name] = torch.zeros(shape, dtype=dtype)
        else:
            state[name] = torch.empty(shape, dtype=torch.float32).normal_(0, 0.02, generator=g).to(dtype) \
                if len(shape) < 2 or shape[0] * shape[-1] < 2**24 else _big_normal(shape, dtype, g)
    # The stand-in tokenizer spells only TOKENIZER_PIECES ids; zero output rows elsewhere make the random
    # model answer in words it can spell (nonsense, but visible) instead of unprintable ids.
    head = state["mixins.chatglm-final.lm_head.weight"]
    head[: live.start].zero_()
    head[live.stop:].zero_()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "1").mkdir(exist_ok=True)
    torch.save({"module": state}, directory / "1" / "mp_rank_00_model_states.pt")
    (directory / "latest").write_text("1")
    (directory / "model_config.json").write_text(json.dumps(cfg, indent=2))
    return directory


def _big_normal(shape: tuple[int, ...], dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    """A large N(0, 0.02) tensor made row block by row block, so no fp32 copy of it exists at once."""
    out = torch.empty(shape, dtype=dtype)
    rows = max(1, 2**22 // max(1, out[0].numel()))
    for start in range(0, shape[0], rows):
        block = out[start:start + rows]
        block.copy_(torch.empty(block.shape, dtype=torch.float32).normal_(0, 0.02, generator=g))
    return out


def _picture() -> Any:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(img).ellipse([40, 40, 180, 180], fill="red")
    return img


def run_phase(release: Path, tokenizer: Path, quant: str | None, max_new_tokens: int) -> dict[str, Any]:
    """In this process: load, then time the first token and the following ones (the child's job)."""
    import mm
    from mm.media import EmbeddingCache

    torch.manual_seed(0)
    t = time.perf_counter()
    chat = mm.load("visualglm-6b", checkpoint=release, tokenizer=tokenizer, dtype="bf16", quant=quant)
    load_s = time.perf_counter() - t
    rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    weight_bytes = sum(t.numel() * t.element_size() for t in [*chat.model.parameters(), *chat.model.buffers()])
    question = "这张图片里有什么？"

    def timed(max_new: int) -> tuple[float, Any]:
        chat.cache = EmbeddingCache()  # each run encodes the picture again
        t = time.perf_counter()
        *_, reply = chat.respond(question, image=_picture(), max_new_tokens=max_new)
        return time.perf_counter() - t, reply

    t = time.perf_counter()
    timed(1)  # first use: the memory-mapped weights are read from disk here
    first_use_s = time.perf_counter() - t
    first_token_s, _ = timed(1)  # picture -> ViT -> Q-Former -> prefill -> one token
    total_s, last = timed(max_new_tokens)
    n = last.completion_tokens
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"quant": quant or "bf16", "load_seconds": load_s, "first_use_seconds": first_use_s,
            "weight_bytes": weight_bytes, "peak_rss_bytes_after_load": rss_load, "peak_rss_bytes": peak,
            "peak_rss_over_weights": peak / weight_bytes, "first_token_seconds": first_token_s,
            "generated_tokens": n, "seconds_per_token": (total_s - first_token_s) / (n - 1) if n > 1 else None,
            "prompt_tokens": last.prompt_tokens, "answer": last.text}


def bench_fullsize(out: str | Path | None = None, keep: bool = False, quants: tuple[str, ...] = ("bf16", "int4"),
                   max_new_tokens: int = 8, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the release, then load and run it once per quantization, each in its own process."""
    root = Path(tempfile.mkdtemp(prefix="visualglm-fullsize-", dir=out))
    cfg = config or VISUALGLM_CONFIG
    try:
        t = time.perf_counter()
        release = root / "release"
        # Written by a child process too: the 15.6 GB it builds must be gone before the loads are measured.
        writer = subprocess.run([sys.executable, "-m", "mm.bench_fullsize", "write", str(release), json.dumps(cfg)],
                                capture_output=True, text=True)
        if writer.returncode != 0:
            raise RuntimeError(f"writing the release failed: {writer.stderr.strip()[-2000:]}")
        write_s = time.perf_counter() - t
        tokenizer = write_tokenizer(root / "tokenizer")
        file_bytes = (release / "1" / "mp_rank_00_model_states.pt").stat().st_size
        params = sum(torch.Size(s).numel() for _, s in sat_release_tensors(cfg))
        runs = []
        for q in quants:
            cmd = [sys.executable, "-m", "mm.bench_fullsize", str(release), str(tokenizer), q, str(max_new_tokens)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                runs.append({"quant": q, "error": proc.stderr.strip().splitlines()[-1:]})
                continue
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        return {"release": str(release) if keep else None, "parameters": params, "file_bytes": file_bytes,
                "write_seconds": write_s, "runs": runs}
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1] == "write":  # child: write RELEASE CONFIG_JSON
    write_sat_release(Path(sys.argv[2]), json.loads(sys.argv[3]))
elif __name__ == "__main__":  # child of one run: RELEASE TOKENIZER QUANT MAX_NEW_TOKENS
    release_dir, tokenizer_dir, quant_name, new_tokens = sys.argv[1:5]
    result = run_phase(Path(release_dir), Path(tokenizer_dir), None if quant_name == "bf16" else quant_name,
                       int(new_tokens))
    print(json.dumps(result, ensure_ascii=False))
