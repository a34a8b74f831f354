"""ChatGLM2-6B / ChatGLM3-6B remote-code checkpoints as transformers' native `GlmForCausalLM` + a fast tokenizer.

THUDM's releases (`model_type: "chatglm"`, `modeling_chatglm.py` beside the weights) need their own code,
which current transformers no longer runs. Their architecture is exactly transformers' GLM:

- RMSNorm before attention and MLP, a final RMSNorm, residuals around both blocks;
- grouped-query attention: `query_key_value` packs [q (H*Dh) | k (G*Dh) | v (G*Dh)] rows (G =
  `multi_query_group_num`); without `multi_query_attention` it is [q_h k_h v_h] per head instead;
  bias on q/k/v only (`add_qkv_bias`), none on the output `dense`;
- rotary embedding on the first half of each head (`kv_channels // 2` dims) with interleaved pairs
  (x[2i], x[2i+1]), which is GLM's `partial_rotary_factor=0.5` with no permutation of rows;
- SwiGLU with `dense_h_to_4h` = [gate | up] halves, `silu(gate) * up`, GLM's `gate_up_proj` order.

Names map one to one (`transformer.encoder.layers.N.*` -> `model.layers.N.*`, `output_layer` -> `lm_head`);
the stored `rotary_pos_emb.inv_freq` buffer is checked against GLM's own frequencies and dropped.
`rope_ratio` (the 32k releases) is a larger base in ChatGLM3 (`rope_theta = 10000 * rope_ratio`) and
position interpolation in ChatGLM2 (linear `rope_scaling`). Configurations GLM cannot express
(LayerNorm, biases on dense/MLP, post-LayerNorm residuals, no final norm, quantized or p-tuned
weights) are refused.

Weights are converted one tensor at a time from memory-mapped shards and written as safetensors shards,
so a 6B checkpoint is held once (the source pages are the operating system's cache). The tokenizer's
SentencePiece model becomes a `PreTrainedTokenizerFast` (see `mm.convert.sentencepiece_fast`) with the
special tokens appended after its vocabulary, as THUDM's `tokenization_chatglm.py` does: [MASK],
[gMASK], [sMASK], sop, eop and, for ChatGLM3, <|system|>, <|user|>, <|assistant|>, <|observation|>.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from safetensors.torch import save_file
from transformers import GenerationConfig, GlmConfig, GlmForCausalLM, PreTrainedTokenizerFast

from mm.convert.sentencepiece_fast import mismatches, read_sentencepiece, sentencepiece_tokenizer
from mm.errors import InputError

logger = logging.getLogger(__name__)

Version = Literal["chatglm2", "chatglm3"]
VERSIONS: tuple[str, ...] = get_args(Version)

# Appended after the SentencePiece vocabulary, in this order (THUDM's SPTokenizer).
GLM_TOKENS = ("[MASK]", "[gMASK]", "[sMASK]", "sop", "eop")
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|observation|>")
SPECIAL_TOKENS: dict[str, tuple[str, ...]] = {"chatglm2": GLM_TOKENS, "chatglm3": GLM_TOKENS + ROLE_TOKENS}
# Plain words among them: matched only as whole words, so "people" keeps its "eop".
WORD_LIKE = ("sop", "eop")

CHAT_TEMPLATES = {
    # ChatGLM3-6B's own template (its tokenizer_config.json); the space after each role line stands for
    # the dummy prefix THUDM's tokenizer gives each separately encoded message.
    "chatglm3": (
        "{% for message in messages %}{% if loop.first %}[gMASK]sop<|{{ message['role'] }}|>\n"
        " {{ message['content'] }}{% else %}<|{{ message['role'] }}|>\n {{ message['content'] }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    ),
    # ChatGLM2-6B's `build_prompt` rounds, after the [gMASK]sop prefix its tokenizer adds.
    "chatglm2": (
        "[gMASK]sop{% set ns = namespace(round=0) %}{% for message in messages %}"
        "{% if message['role'] == 'user' %}{% set ns.round = ns.round + 1 %}"
        "[Round {{ ns.round }}]\n\n问：{{ message['content'] }}\n\n答："
        "{% elif message['role'] == 'assistant' %}{{ message['content'] }}\n\n{% endif %}{% endfor %}"
    ),
}

# config.json switches with the one value the conversion can express, and why the others cannot be.
_REQUIRED = {
    "rmsnorm": (True, "LayerNorm instead of RMSNorm"),
    "apply_residual_connection_post_layernorm": (False, "residuals taken after the LayerNorm"),
    "post_layer_norm": (True, "no final LayerNorm"),
    "add_bias_linear": (False, "biases on the attention output and MLP"),
}
_SHOWN = 5  # names listed per kind in an error


@dataclass(frozen=True)
class QKVLayout:
    """How `query_key_value` packs its output rows."""

    heads: int  # query heads (H)
    kv_heads: int  # key/value heads (G)
    head_dim: int  # Dh (`kv_channels`)
    grouped: bool  # multi_query_attention: [q | k | v] blocks; else [q_h k_h v_h] per head


def split_qkv(t: torch.Tensor, layout: QKVLayout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v rows of a packed `query_key_value` weight (out, in) or bias (out,)."""
    h, g, d = layout.heads, layout.kv_heads, layout.head_dim
    if layout.grouped:
        q, k, v = t.split([h * d, g * d, g * d], dim=0)
        return q, k, v
    per_head = t.reshape(h, 3, d, *t.shape[1:])  # (H, 3, Dh, ...)
    q, k, v = (per_head[:, i].reshape(h * d, *t.shape[1:]) for i in range(3))
    return q, k, v


def gate_up(t: torch.Tensor) -> torch.Tensor:
    """`dense_h_to_4h` rows are [gate | up], the order of GLM's `gate_up_proj`: nothing to move."""
    return t


# ChatGLM name -> GLM name, for tensors that move unchanged.
_LAYER = re.compile(r"transformer\.encoder\.layers\.(\d+)\.(.+)")
_LAYER_MAP = {
    "input_layernorm.weight": "input_layernorm.weight",
    "post_attention_layernorm.weight": "post_attention_layernorm.weight",
    "self_attention.dense.weight": "self_attn.o_proj.weight",
    "mlp.dense_4h_to_h.weight": "mlp.down_proj.weight",
}
_TOP_MAP = {
    "transformer.embedding.word_embeddings.weight": "model.embed_tokens.weight",
    "transformer.encoder.final_layernorm.weight": "model.norm.weight",
    "transformer.output_layer.weight": "lm_head.weight",
}
INV_FREQ = "transformer.rotary_pos_emb.inv_freq"


def plan_tensors(
    state: Mapping[str, torch.Tensor], layout: QKVLayout,
) -> tuple[dict[str, Callable[[], torch.Tensor]], list[str]]:
    """Target name -> function making that tensor from `state`, and the source names nothing uses.

    The functions only slice and view, so planning over meta tensors checks names and shapes for free.
    """
    plan: dict[str, Callable[[], torch.Tensor]] = {}
    unused: list[str] = []

    def take(name: str, fn: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> Callable[[], torch.Tensor]:
        return lambda: fn(state[name])

    for name in state:
        if name in _TOP_MAP:
            plan[_TOP_MAP[name]] = take(name)
            continue
        if name == INV_FREQ:
            continue  # checked by `check_inv_freq`
        m = _LAYER.fullmatch(name)
        if m is None:
            unused.append(name)
            continue
        prefix, rest = f"model.layers.{m.group(1)}.", m.group(2)
        if rest in _LAYER_MAP:
            plan[prefix + _LAYER_MAP[rest]] = take(name)
        elif rest == "mlp.dense_h_to_4h.weight":
            plan[prefix + "mlp.gate_up_proj.weight"] = take(name, lambda t: gate_up(t))
        elif rest in ("self_attention.query_key_value.weight", "self_attention.query_key_value.bias"):
            kind = rest.rsplit(".", 1)[1]
            for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
                plan[f"{prefix}self_attn.{proj}.{kind}"] = take(name, lambda t, i=i: split_qkv(t, layout)[i])
        else:
            unused.append(name)
    return plan, unused


def _listing(kind: str, names: Iterable[str]) -> str:
    names = sorted(names)
    more = f", ... ({len(names)} in all)" if len(names) > _SHOWN else ""
    return f"{len(names)} {kind}: {', '.join(names[:_SHOWN])}{more}"


def check_plan(state: Mapping[str, torch.Tensor], config: GlmConfig, layout: QKVLayout, source: Path) -> None:
    """Every GLM tensor is made with its shape and every checkpoint tensor is used, else `InputError`."""
    meta_state = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in state.items()}
    plan, unused = plan_tensors(meta_state, layout)
    with torch.device("meta"):
        own = {k: v.shape for k, v in GlmForCausalLM(config).state_dict().items()}
    made = {k: fn().shape for k, fn in plan.items()}
    missing = [k for k in own if k not in made]
    unexpected = unused + [k for k in made if k not in own]
    shapes = [f"{k} {tuple(made[k])} vs {tuple(own[k])}" for k in own if k in made and made[k] != own[k]]
    if missing or unexpected or shapes:
        parts = [_listing(kind, names) for kind, names in
                 (("GLM tensors not made", missing), ("checkpoint tensors not used", unexpected),
                  ("with the wrong shape (made vs GLM)", shapes)) if names]
        raise InputError(f"{source}: the checkpoint does not match its config.json as a ChatGLM2/3 model "
                         f"({'; '.join(parts)})")


def check_inv_freq(state: Mapping[str, torch.Tensor], config: GlmConfig, source: Path) -> None:
    """The stored rotary frequencies (always base 10000; `rope_ratio` is applied later) are GLM's."""
    if INV_FREQ not in state:
        return
    from transformers.models.glm.modeling_glm import GlmRotaryEmbedding

    base = copy.deepcopy(config)
    base.rope_theta, base.rope_scaling = 10000.0, None
    ours = GlmRotaryEmbedding(base, device="cpu").inv_freq.float()
    theirs = state[INV_FREQ].float()
    if theirs.shape != ours.shape or not torch.allclose(theirs, ours, rtol=2e-3, atol=1e-6):
        raise InputError(f"{source}: rotary frequencies {tuple(theirs.shape)} are not those of a rotary embedding "
                         f"on half of each {config.head_dim}-wide head; this is not a ChatGLM2/3 layout")


def read_chatglm_config(src: Path) -> dict[str, Any]:
    """config.json of a ChatGLM2/3 checkpoint directory, or `InputError` saying what it is instead."""
    if not src.is_dir():
        raise InputError(f"{src}: not a directory (give the checkpoint folder holding config.json)")
    config_file = src / "config.json"
    if not config_file.is_file():
        raise InputError(f"{src}: not a checkpoint directory (no config.json)")
    try:
        info = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{config_file}: not valid JSON ({e})") from None
    kind = info.get("model_type")
    if kind != "chatglm":
        raise InputError(f"{src}: not a ChatGLM2/3 checkpoint (model_type {kind!r}, expected 'chatglm')")
    if "padded_vocab_size" not in info or "num_layers" not in info:
        raise InputError(f"{src}: a ChatGLM-6B (v1) style config (no padded_vocab_size / num_layers); "
                         "`mm convert` handles ChatGLM2-6B and ChatGLM3-6B")
    return info


def detect_version(src: Path) -> Version | None:
    """chatglm3 / chatglm2 from the special tokens the checkpoint's own tokenizer code defines, if it ships one."""
    code = src / "tokenization_chatglm.py"
    if not code.is_file():
        return None
    text = code.read_text(errors="replace")
    if "<|observation|>" in text:
        return "chatglm3"
    if "[gMASK]" in text:
        return "chatglm2"
    return None


def _rope(info: dict[str, Any], version: Version, src: Path) -> dict[str, Any]:
    ratio = float(info.get("rope_ratio", 1) or 1)
    if ratio == 1:
        return {"rope_theta": 10000.0}
    # The two releases read rope_ratio differently; the checkpoint's own modeling code says which.
    code = src / "modeling_chatglm.py"
    text = code.read_text(errors="replace") if code.is_file() else ""
    if "base * self.rope_ratio" in text:
        mode = "base"
    elif "/ self.rope_ratio" in text:
        mode = "interpolate"
    else:
        mode = "base" if version == "chatglm3" else "interpolate"
    if mode == "base":
        return {"rope_theta": 10000.0 * ratio}
    return {"rope_theta": 10000.0, "rope_scaling": {"rope_type": "linear", "factor": ratio}}


def glm_config_from_chatglm(info: dict[str, Any], version: Version, src: Path) -> GlmConfig:
    """The `GlmConfig` of a ChatGLM2/3 config.json, or `InputError` naming what GLM cannot express."""
    for key, (want, why) in _REQUIRED.items():
        if key in info and bool(info[key]) != want:
            raise InputError(f"{src}: {key}={info[key]} ({why}) has no equivalent in transformers' GLM")
    if info.get("quantization_bit"):
        raise InputError(f"{src}: quantized weights (quantization_bit={info['quantization_bit']}) cannot be "
                         "converted; convert the full-precision release and pass quant='int8'/'int4' when loading")
    if info.get("pre_seq_len") is not None:
        raise InputError(f"{src}: a P-tuning v2 checkpoint (pre_seq_len={info['pre_seq_len']}); its prefix encoder "
                         "has no place in transformers' GLM. Convert the base model instead")
    heads, hidden = int(info["num_attention_heads"]), int(info["hidden_size"])
    head_dim = int(info.get("kv_channels") or hidden // heads)
    kv_heads = int(info.get("multi_query_group_num", 1)) if info.get("multi_query_attention") else heads
    if kv_heads < 1 or heads % kv_heads:
        raise InputError(f"{src}: {heads} attention heads cannot be shared by {kv_heads} key/value groups")
    if head_dim % 4:
        raise InputError(f"{src}: kv_channels={head_dim} is not a multiple of 4 (rotary pairs on half a head)")
    eos = info.get("eos_token_id", 2)
    return GlmConfig(
        vocab_size=int(info["padded_vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(info["ffn_hidden_size"]),
        num_hidden_layers=int(info["num_layers"]),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        partial_rotary_factor=0.5,
        hidden_act="silu",
        max_position_embeddings=int(info.get("seq_length", 2048)),
        rms_norm_eps=float(info.get("layernorm_epsilon", 1e-5)),
        attention_bias=bool(info.get("add_qkv_bias", False)),
        tie_word_embeddings=False,  # ChatGLM's output_layer is its own matrix
        pad_token_id=info.get("pad_token_id", 0),
        eos_token_id=eos,
        bos_token_id=None,
        **_rope(info, version, src),
    )


def chatglm_tokenizer(
    sentencepiece_file: str | Path, version: Version, *, vocab_size: int | None = None, model_max_length: int = 8192,
) -> PreTrainedTokenizerFast:
    """ChatGLM2/3's tokenizer as a fast tokenizer: SentencePiece ids, then the special tokens after them.

    Its encode equals SentencePiece's on text; the special tokens are added special tokens (typed text
    does not produce them when encoded with `split_special_tokens=True`). Encoding with special tokens
    prepends [gMASK]sop, as THUDM's tokenizer does; eos is </s>, padding uses <unk> on the left.
    """
    from tokenizers import AddedToken
    from tokenizers.processors import TemplateProcessing

    sp = read_sentencepiece(sentencepiece_file)
    core = sentencepiece_tokenizer(sp)
    bad = mismatches(core, sentencepiece_file)
    if bad:
        text, ours, theirs = bad[0]
        raise InputError(f"{sentencepiece_file}: the fast tokenizer disagrees with SentencePiece on {len(bad)} probe "
                         f"texts, e.g. {text!r}: {ours[:12]} vs {theirs[:12]}")
    specials = SPECIAL_TOKENS[version]
    first = len(sp.pieces)
    core.add_special_tokens([AddedToken(t, special=True, normalized=False, single_word=t in WORD_LIKE)
                             for t in specials])
    ids = {t: core.token_to_id(t) for t in specials}
    if list(ids.values()) != list(range(first, first + len(specials))):
        raise InputError(f"{sentencepiece_file}: special tokens did not land after the vocabulary: {ids}")
    if vocab_size is not None and first + len(specials) > vocab_size:
        raise InputError(f"{sentencepiece_file}: {first} pieces + {len(specials)} special tokens do not fit the "
                         f"model's {vocab_size} embeddings")
    if not 0 <= sp.eos_id < first:
        raise InputError(f"{sentencepiece_file}: the SentencePiece model has no end-of-sequence piece")
    eos = sp.pieces[sp.eos_id][0]  # </s>, id 2 in ChatGLM2/3
    core.post_processor = TemplateProcessing(
        single="[gMASK] sop $A", pair="[gMASK] sop $A $B " + eos,
        special_tokens=[("[gMASK]", ids["[gMASK]"]), ("sop", ids["sop"]), (eos, core.token_to_id(eos))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=sp.unk_piece,
        eos_token=eos,
        pad_token=sp.unk_piece,  # THUDM pads with <unk> (id 0)
        additional_special_tokens=list(specials),
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATES[version],
    )


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def size_in_bytes(size: int | str) -> int:
    """5GB, 500MB, 2GiB or a plain number of bytes."""
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", size.upper())
    if m is None or float(m.group(1)) <= 0:
        raise InputError(f"shard size {size!r}: use a number of bytes or a size like 5GB, 500MB, 2GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])


class _ShardWriter:
    """safetensors shards of at most `max_bytes` (one tensor may exceed it), with the index transformers reads."""

    def __init__(self, directory: Path, max_bytes: int):
        self.directory, self.max_bytes = directory, max_bytes
        self.files: list[tuple[Path, list[str]]] = []
        self.current: dict[str, torch.Tensor] = {}
        self.size = self.total = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        nbytes = tensor.numel() * tensor.element_size()
        if self.current and self.size + nbytes > self.max_bytes:
            self.flush()
        self.current[name] = tensor
        self.size += nbytes
        self.total += nbytes

    def flush(self) -> None:
        if not self.current:
            return
        path = self.directory / f"shard-{len(self.files):05d}.part"
        save_file(self.current, str(path), metadata={"format": "pt"})
        self.files.append((path, list(self.current)))
        self.current, self.size = {}, 0

    def finish(self) -> None:
        self.flush()
        n = len(self.files)
        if n == 1:
            self.files[0][0].rename(self.directory / "model.safetensors")
            return
        weight_map = {}
        for i, (path, names) in enumerate(self.files):
            final = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            path.rename(self.directory / final)
            weight_map.update(dict.fromkeys(names, final))
        index = {"metadata": {"total_size": self.total}, "weight_map": dict(sorted(weight_map.items()))}
        (self.directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def _prepare_destination(dst: Path, force: bool) -> None:
    if dst.exists() and not dst.is_dir():
        raise InputError(f"{dst}: exists and is not a directory")
    if dst.is_dir() and any(dst.iterdir()) and not force:
        raise InputError(f"{dst}: exists and is not empty (pass --force / force=True to write into it)")


def _install(tmp: Path, dst: Path) -> None:
    """Move the finished files into `dst`, replacing stale weight files of an earlier conversion."""
    if not dst.exists():
        tmp.rename(dst)
        return
    for old in [*dst.glob("model*.safetensors"), dst / "model.safetensors.index.json"]:
        if old.is_file():
            old.unlink()
    for f in tmp.iterdir():
        os.replace(f, dst / f.name)
    tmp.rmdir()


def convert_chatglm(
    src: str | Path,
    dst: str | Path,
    *,
    version: Version | None = None,
    dtype: torch.dtype | None = None,
    max_shard_size: int | str = "5GB",
    force: bool = False,
) -> Path:
    """Convert the ChatGLM2/3 checkpoint directory `src` into a transformers GLM directory `dst`; returns `dst`.

    `version` says which release it is (None: from the checkpoint's tokenizer code, which must then be
    there); a checkpoint whose tokenizer code says otherwise is refused. `dtype` None keeps the stored
    precision. `dst` must be absent or empty unless `force`. Files appear in `dst` only when all is done.
    """
    from encoders.weights import read_state_dict

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    info = read_chatglm_config(src)
    found = detect_version(src)
    if version is None:
        if found is None:
            raise InputError(f"{src}: cannot tell ChatGLM2 from ChatGLM3 (no tokenization_chatglm.py); say which")
        version = found
    if version not in VERSIONS:
        raise InputError(f"unknown ChatGLM version {version!r}; use one of {', '.join(VERSIONS)}")
    if found is not None and found != version:
        raise InputError(f"{src}: its tokenizer code is {found}'s, not {version}'s; run `mm convert {found} ...`")
    sp_file = src / "tokenizer.model"
    if not sp_file.is_file():
        raise InputError(f"{src}: no tokenizer.model (the SentencePiece vocabulary of ChatGLM2/3)")
    _prepare_destination(dst, force)
    max_bytes = size_in_bytes(max_shard_size)
    # config.json and the tokenizer first: they fail fast and cheaply
    config = glm_config_from_chatglm(info, version, src)
    tokenizer = chatglm_tokenizer(sp_file, version, vocab_size=config.vocab_size,
                                  model_max_length=config.max_position_embeddings)

    state = read_state_dict(src)  # memory-mapped where the files allow it
    if any(k.startswith("transformer.prefix_encoder.") for k in state):
        raise InputError(f"{src}: holds a P-tuning prefix encoder, which transformers' GLM has no place for")
    config.dtype = dtype or state.get("transformer.embedding.word_embeddings.weight", torch.empty(0)).dtype
    layout = QKVLayout(config.num_attention_heads, config.num_key_value_heads, config.head_dim,
                       bool(info.get("multi_query_attention")))
    check_plan(state, config, layout, src)
    check_inv_freq(state, config, src)

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    try:
        writer = _ShardWriter(tmp, max_bytes)
        plan, _ = plan_tensors(state, layout)
        for name, make in _progress(plan.items(), len(plan)):
            t = make()
            out = torch.empty(t.shape, dtype=dtype or t.dtype)
            out.copy_(t)  # a private contiguous copy: the source stays memory-mapped, views stay unshared
            writer.add(name, out)
        writer.finish()
        config.architectures = ["GlmForCausalLM"]
        config.save_pretrained(tmp)
        eos = list(config.eos_token_id) if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        if version == "chatglm3":  # THUDM's chat() also stops at the next role token
            eos += [tokenizer.convert_tokens_to_ids(t) for t in ("<|user|>", "<|observation|>")]
        GenerationConfig(eos_token_id=eos, pad_token_id=config.pad_token_id).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _install(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("converted %s (%s) to %s", src, version, dst)
    return dst


def _progress(items: Iterable[Any], total: int) -> Iterable[Any]:
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc="converting", unit="tensor", disable=total < 100, leave=False)
