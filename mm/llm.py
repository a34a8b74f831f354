"""The language model: build the GLM shape from `LLMConfig`, or load any causal LM from a local directory.

The tiny GLM is transformers' `GlmForCausalLM` at a small size. Full-scale weights come from the user's
disk: a transformers checkpoint directory (native GLM, Qwen, Llama, ...) or, with
`trust_remote_code=True` given by the user, a remote-code checkpoint such as ChatGLM-6B.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GlmConfig,
    GlmForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mm.config import LLMConfig
from mm.errors import InputError

logger = logging.getLogger(__name__)


def glm_config(cfg: LLMConfig, pad_token_id: int = 0, eos_token_id: int = 1) -> GlmConfig:
    if cfg.arch != "glm":
        raise ValueError(f"LLM arch {cfg.arch!r} cannot be built as GlmForCausalLM; load it from a checkpoint")
    return GlmConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        partial_rotary_factor=cfg.partial_rotary_factor,
        max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=cfg.rms_norm_eps,
        rope_theta=cfg.rope_theta,
        attention_bias=cfg.attention_bias,
        tie_word_embeddings=cfg.tie_word_embeddings,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
    )


def build_llm(cfg: LLMConfig) -> PreTrainedModel:
    """Randomly initialised GLM of this shape (wrap in `torch.device("meta")` for a weightless one)."""
    model = GlmForCausalLM(glm_config(cfg))
    model.generation_config.pad_token_id = 0
    return model


def chatglm_v1_parameters(cfg: LLMConfig) -> int:
    """Parameter count of a ChatGLM-6B (v1) shaped model, which transformers has no native class for.

    Per layer: input/post LayerNorms, fused QKV with bias, output dense, GELU MLP (h -> ffn -> h);
    plus word embeddings and a final LayerNorm (THUDM/chatglm-6b modeling code). Its output layer shares
    the word embeddings (transformers' default weight tying), which gives the published 6.2e9.
    """
    h, f, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    per_layer = 2 * 2 * h + (3 * h * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h)
    return v * h + cfg.num_layers * per_layer + 2 * h + (0 if cfg.tie_word_embeddings else v * h)


def llm_config_from_hf(hf: Any, template: str) -> LLMConfig:
    """Describe a loaded transformers LM in our terms (for prompts limits, info and saving)."""
    heads = getattr(hf, "num_attention_heads", 1)
    hidden = getattr(hf, "hidden_size", 0)
    return LLMConfig(
        arch={"glm": "glm", "chatglm": "chatglm"}.get(getattr(hf, "model_type", ""), "hf"),
        vocab_size=getattr(hf, "vocab_size", 0),
        hidden_size=hidden,
        intermediate_size=getattr(hf, "intermediate_size", getattr(hf, "ffn_hidden_size", 0)) or 0,
        num_layers=getattr(hf, "num_hidden_layers", getattr(hf, "num_layers", 0)),
        num_heads=heads,
        num_kv_heads=getattr(hf, "num_key_value_heads", None) or heads,
        head_dim=getattr(hf, "head_dim", None) or hidden // max(heads, 1),
        partial_rotary_factor=getattr(hf, "partial_rotary_factor", 1.0),
        max_position_embeddings=getattr(hf, "max_position_embeddings", None) or getattr(hf, "seq_length", 2048),
        rms_norm_eps=getattr(hf, "rms_norm_eps", 1e-6),
        rope_theta=getattr(hf, "rope_theta", 10000.0),
        attention_bias=getattr(hf, "attention_bias", False),
        tie_word_embeddings=getattr(hf, "tie_word_embeddings", False),
        template=template,
    )


def load_llm(
    path: str | Path, *, trust_remote_code: bool = False, dtype: torch.dtype | None = None,
    quant: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a local checkpoint directory (never from a hub)."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise InputError(f"{path}: not a model directory (no config.json)")
    info = json.loads(config_file.read_text())
    if "auto_map" in info and info.get("model_type") == "chatglm" and (
        "multi_query_group_num" in info or "padded_vocab_size" in info
    ):  # its remote code no longer runs on current transformers, trusted or not
        raise InputError(
            f"{path}: this is a ChatGLM2/3 remote-code checkpoint; convert it once with "
            "`mm convert chatglm3 SRC DST` (`mm convert chatglm2 ...` for ChatGLM2) and pass llm=DST"
        )
    if info.get("model_type") == "chatglm" and ("eva_config" in info or "WithImage" in json.dumps(info.get("auto_map"))):
        raise InputError(f"{path}: this is a whole VisualGLM-6B checkpoint; load it with "
                         "mm.load('visualglm-6b', checkpoint=PATH) (--checkpoint)")
    if info.get("model_type") == "chatglm":  # ChatGLM-6B v1: the project's own module, no remote code
        from mm.chatglm_v1.weights import load_chatglm_v1

        model, tokenizer = load_chatglm_v1(path, dtype=dtype)
        if quant is not None:
            from mm.quant import quantize_llm

            model = quantize_llm(model, quant, compute_dtype=dtype if dtype not in (None, torch.float32)
                                 else torch.bfloat16)
        return model, tokenizer
    if "auto_map" in info and not trust_remote_code:
        raise InputError(
            f"{path}: this checkpoint ({info.get('model_type')}) ships its own modeling code; pass "
            "trust_remote_code=True (--trust-remote-code) if you trust it, or use a transformers-native "
            "conversion (e.g. the '-hf' GLM-4 checkpoints)"
        )
    kwargs = {"trust_remote_code": trust_remote_code, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if quant is not None:  # int8 / int4 with bitsandbytes while loading (its CPU backend included)
        from mm.quant import bnb_config

        kwargs["quantization_config"] = bnb_config(quant, dtype or torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    logger.info("loaded LLM %s (%s) from %s", type(model).__name__, info.get("model_type"), path)
    return model, tokenizer
