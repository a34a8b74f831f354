"""Whole VisualGLM-6B releases -> this project's model: EVA ViT, Q-Former, projection and ChatGLM-6B at once.

Two published forms hold the same four parts:
- the SwissArmyTransformer (SAT) release: `model_config.json` (LLM sizes at the top level, `eva_args`,
  `qformer_args`, `image_length`) beside `latest` and `1/mp_rank_00_model_states.pt` = `{"module": state}`
  with the LLM under `transformer.*` (+ `mixins.chatglm-final.lm_head`) and the image side under
  `mixins.eva.model.{vit, qformer, glm_proj}`; it ships no tokenizer (SAT fetches THUDM/chatglm-6b's);
- the Hugging Face port: `config.json` (ChatGLM-6B's fields, plus `eva_config` / `qformer_config`),
  sharded `pytorch_model-*.bin`, `ice_text.model`; the image side is the same SAT modules under
  `image_encoder.`, the LLM is THUDM's transformers ChatGLM-6B.

Sizes come from the release's own config, so the same code loads a tiny release in a test and the real
one. Every tensor of the file goes to exactly one component and each component is loaded strictly:
tensors nobody claims are an error. The big parts are built on the meta device and receive the file's
(memory-mapped) tensors by assignment.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import init_empty_weights

from bridge.layouts import bridge_state_from_checkpoint
from bridge.qformer import QFormerConfig
from encoders.registry import create_encoder
from encoders.weights import load_into, read_state_dict, sat_checkpoint_file
from mm.chatglm_v1.config import ChatGLMv1Config
from mm.chatglm_v1.weights import build_chatglm_v1, from_hf_state_dict, from_sat_state_dict, load_tokenizer
from mm.config import EncoderConfig, LLMConfig, MMConfig
from mm.errors import InputError

logger = logging.getLogger(__name__)

Layout = Literal["sat", "hf"]
# The published VisualGLM-6B image side (model_config.json), used when an HF port's config omits it.
EVA_ARGS = {"num_layers": 39, "hidden_size": 1408, "num_attention_heads": 16, "inner_hidden_size": 6144,
            "image_size": [224, 224], "patch_size": 14, "layernorm_epsilon": 1e-6}
QFORMER_ARGS = {"num_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "vocab_size": 32,
                "is_decoder": [i % 2 == 0 for i in range(12)], "cross_attn_hidden_size": 1408,
                "layernorm_epsilon": 1e-12}
IMAGE_PREFIX = {"sat": "mixins.eva.", "hf": "image_encoder."}


@dataclass
class Release:
    """Where a release's parts are: its weights, its config and (if it has one) its tokenizer."""

    root: Path  # the directory the user named (or the file's directory)
    weights: Path  # the SAT model file, or the directory of shards
    config: dict[str, Any]  # model_config.json (SAT) or config.json (HF port)
    layout: Layout


def find_release(path: str | Path) -> Release:
    """The SAT release (its `mp_rank_00_model_states.pt`, the iteration folder or the release folder) or
    the HF port directory at `path`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint not found: {path}")
    if path.is_file():
        weights = path
        candidates = [path.parent, path.parent.parent]
    else:
        sat = sat_checkpoint_file(path) or (path / "mp_rank_00_model_states.pt")
        weights = sat if sat.is_file() else path
        candidates = [path, path.parent]
    for d in candidates:
        if (d / "model_config.json").is_file():
            return Release(d, weights, json.loads((d / "model_config.json").read_text()), "sat")
    for d in candidates:
        if (d / "config.json").is_file() and weights == path:
            info = json.loads((d / "config.json").read_text())
            if info.get("model_type") == "chatglm":
                return Release(d, weights, info, "hf")
    raise InputError(
        f"{path}: not a VisualGLM-6B release (expected the SAT release folder with model_config.json and "
        "latest + 1/mp_rank_00_model_states.pt, or the Hugging Face port with config.json and pytorch_model-*.bin)"
    )


def _cross_every(is_decoder: list[bool]) -> int:
    """SAT's per-layer `is_decoder` flags -> BLIP-2's cross-attention frequency (layers 0, k, 2k, ...)."""
    cross = [i for i, flag in enumerate(is_decoder) if flag]
    every = cross[1] - cross[0] if len(cross) > 1 else len(is_decoder)
    if not cross or cross != list(range(0, len(is_decoder), every)):
        raise InputError(f"qformer is_decoder={is_decoder}: cross-attention is not every k-th layer from layer 0")
    return every


def mm_config(release: Release, llm: ChatGLMv1Config, preset_name: str) -> MMConfig:
    """Our config from the release's own: EVA ViT (eva_args), Q-Former (qformer_args), projection, LLM."""
    info = release.config
    eva = info.get("eva_args") or info.get("eva_config")
    qf = info.get("qformer_args") or info.get("qformer_config")
    if eva is None or qf is None:
        logger.info("%s: config has no eva/qformer sizes; using VisualGLM-6B's published ones", release.root)
    eva, qf = eva or EVA_ARGS, qf or QFORMER_ARGS
    h = eva["hidden_size"]
    image_size = eva.get("image_size", [224, 224])
    encoder = EncoderConfig("eva-vit-g-14", {
        # The tower runs eva_args' layers: those of a published tower one block deeper, read at layer -2.
        "depth": eva["num_layers"] + 1, "layer": -2, "embed_dim": h, "num_heads": eva["num_attention_heads"],
        "mlp_ratio": eva.get("inner_hidden_size", 4 * h) / h, "patch_size": eva.get("patch_size", 14),
        "img_size": image_size[0] if isinstance(image_size, list) else image_size,
    })
    qh = qf["hidden_size"]
    layers = qf["num_layers"]
    qformer = QFormerConfig(
        num_queries=qf.get("vocab_size", info.get("image_length", 32)), hidden_size=qh, num_layers=layers,
        num_heads=qf["num_attention_heads"], intermediate_size=qf.get("inner_hidden_size") or 4 * qh,
        cross_attention_every=_cross_every(qf.get("is_decoder") or [i % 2 == 0 for i in range(layers)]),
        encoder_width=qf.get("cross_attn_hidden_size", h), layer_norm_eps=qf.get("layernorm_epsilon", 1e-12),
        dropout=0.0, input_norm=True,
    )
    llm_cfg = LLMConfig(
        arch="chatglm", vocab_size=llm.vocab_size, hidden_size=llm.hidden_size,
        intermediate_size=llm.inner_hidden_size, num_layers=llm.num_layers, num_heads=llm.num_attention_heads,
        num_kv_heads=llm.num_attention_heads, head_dim=llm.head_dim, partial_rotary_factor=1.0,
        max_position_embeddings=llm.max_sequence_length, rms_norm_eps=llm.layernorm_epsilon,
        rope_theta=llm.rotary_base, attention_bias=True, tie_word_embeddings=llm.tie_word_embeddings,
        template="visualglm",
    )
    return MMConfig(name=preset_name, image_encoder=encoder, audio_encoder=None, image_qformer=qformer,
                    audio_qformer=None, projector="linear", llm=llm_cfg, max_media=1, video=None)


def _llm_config(release: Release) -> ChatGLMv1Config:
    try:
        if release.layout == "sat":
            return ChatGLMv1Config.from_sat_dict(release.config)
        return ChatGLMv1Config.from_hf_dict(release.config)
    except ValueError as e:
        raise InputError(f"{release.root}: {e}") from None


def _tokenizer(release: Release, tokenizer: str | Path | None, config: ChatGLMv1Config) -> Any:
    where = Path(tokenizer) if tokenizer is not None else release.root
    if where.is_file():
        where = where.parent
    if not (where / "ice_text.model").is_file():
        hint = ("the SAT release ships no tokenizer: pass tokenizer=DIR (--tokenizer) with ChatGLM-6B's "
                "ice_text.model and tokenizer_config.json (from THUDM/chatglm-6b)")
        raise InputError(f"{where}: no ice_text.model; {hint}")
    return load_tokenizer(where, config)


def load_visualglm(path: str | Path, *, preset_name: str = "visualglm-6b", tokenizer: str | Path | None = None,
                   strict: bool = True, bridge: str | Path | None = None, dtype: torch.dtype | None = None):
    """(MMModel, tokenizer) from a whole VisualGLM-6B release; `bridge` replaces the release's own bridge."""
    from mm.checkpoint import bridge_view, load_bridge_file
    from mm.model import MMModel

    release = find_release(path)
    llm_config = _llm_config(release)
    tok = _tokenizer(release, tokenizer, llm_config)
    state = read_state_dict(release.weights)
    image_prefix = IMAGE_PREFIX[release.layout]
    image_state = {k: v for k, v in state.items() if k.startswith(image_prefix)}
    if not image_state:
        raise InputError(f"{release.weights}: no `{image_prefix}*` tensors; not a VisualGLM-6B release "
                         "(for a ChatGLM-6B checkpoint alone use llm=)")
    llm_state = {k: v for k, v in state.items() if not k.startswith(image_prefix)}
    llm_state = from_sat_state_dict(llm_state) if release.layout == "sat" else from_hf_state_dict(llm_state)
    del state
    llm = build_chatglm_v1(llm_config, llm_state, source=release.weights, dtype=dtype, strict=strict)
    cfg = mm_config(release, llm.config, preset_name)

    with init_empty_weights():  # parameters on the meta device; buffers (e.g. timm's zero key bias) real
        encoder = create_encoder(cfg.image_encoder.name, **cfg.image_encoder.options)
    encoder.load_state(image_state, source=release.weights, strict=strict)
    with torch.random.fork_rng(devices=[]):  # the bridge's initial values are replaced; keep the caller's RNG
        model = MMModel(cfg, llm=llm, encoders={"image": encoder})
    weights = bridge_state_from_checkpoint(image_state)
    if weights.unused and strict:
        raise InputError(f"{release.weights}: {len(weights.unused)} image-side tensors belong to no component "
                         f"(e.g. {sorted(weights.unused)[:5]}); pass strict=False to ignore them")
    if weights.unused:
        logger.warning("%s: loaded with strict=False; %d image-side tensors belong to no component and were not "
                       "used (e.g. %s)", release.weights, len(weights.unused), sorted(weights.unused)[:5])
    load_into(bridge_view(model), weights.state, component="image bridge (Q-Former, ln_vision, glm_proj)",
              source=release.weights, strict=strict)
    if bridge is not None:
        load_bridge_file(model, bridge, strict)
    logger.info("loaded VisualGLM-6B (%s layout) from %s", release.layout, release.root)
    return model, tok
