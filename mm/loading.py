"""`mm.load`: a preset name or a saved directory -> `MMChat`, with optional local weight paths.

Nothing is downloaded: presets with shipped weights load them from the package (mm/weights/NAME/);
full-scale presets take the user's checkpoints: `checkpoint=` for a whole VisualGLM-6B release (SAT or
Hugging Face port), or `llm=`, `image_encoder=`, `audio_encoder=`, `bridge=` for one component each.

Loading is resolve (a name or directory -> the config and where its weights are: `resolve`) -> build
(the model and its tokenizer: `build`) -> load weights (`mm.checkpoint` for a saved directory, the user's
component files after it). Components whose weights come from a file are built on the meta device and
receive the file's tensors by assignment, so a 6B checkpoint is never held twice.
Every file the user names is accounted for strictly (`encoders.weights.load_into`): it fills its
component exactly or loading fails naming what is missing and unexpected; `strict=False` opts out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from torch import nn
from transformers import PreTrainedModel

from encoders.base import FrozenEncoder
from encoders.registry import create_encoder
from mm.chat import MMChat
from mm.checkpoint import (
    ModelDir,
    bridge_state,
    bridge_view,
    load_bridge_file,
    load_weights,
    read_model_dir,
    read_tokenizer,
    shipped_weights,
)
from mm.config import MMConfig, apply_overrides, preset
from mm.device import resolve_device, resolve_dtype
from mm.errors import InputError
from mm.limits import Limits
from mm.llm import llm_config_from_hf, load_llm
from mm.modality import MODALITY_TYPES
from mm.model import MMModel
from mm.tokenizer import build_tokenizer

logger = logging.getLogger(__name__)

# Seed for the initial weights of a model built from a config alone, so an untrained model is reproducible.
INIT_SEED = 0
QUANTS = ("int8", "int4")
# `bridge_view` and `shipped_weights` live in mm.checkpoint; older code imports them from here.
__all__ = ["INIT_SEED", "QUANTS", "bridge_state", "bridge_view", "build", "load", "resolve", "shipped_weights"]


def _build_encoders(cfg: MMConfig, sources: dict[str, str | Path | None], strict: bool) -> dict[str, FrozenEncoder]:
    """Each encoder of the config; those with a weight file are built on the meta device, then loaded.

    A modality has an encoder of its own when the config has a `<name>_encoder` for it; one that reads
    through a peer's encoder (video: the image encoder) has no such field."""
    out: dict[str, FrozenEncoder] = {}
    for m in MODALITY_TYPES:
        enc_cfg = getattr(cfg, f"{m}_encoder", None)
        source = sources.get(m)
        if enc_cfg is None:
            if source is not None:
                raise InputError(f"{cfg.name} has no {m} encoder to load {source} into")
            continue
        with init_empty_weights() if source is not None else contextlib.nullcontext():
            encoder = create_encoder(enc_cfg.name, **enc_cfg.options)
        if encoder.modality != m:
            raise InputError(f"{m}_encoder {enc_cfg.name!r} is a {encoder.modality} encoder")
        if source is not None:
            encoder.load_weights(source, strict=strict)
        out[m] = encoder
    return out


def _check_materialised(model: nn.Module) -> None:
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise InputError(f"{len(left)} tensors were given no weights (e.g. {left[:3]}); pass the checkpoint "
                         "that holds them")


def load(
    name_or_dir: str | Path = "mm-tiny",
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    checkpoint: str | Path | None = None,
    llm: str | Path | None = None,
    tokenizer: str | Path | None = None,
    image_encoder: str | Path | None = None,
    audio_encoder: str | Path | None = None,
    bridge: str | Path | None = None,
    quant: str | None = None,
    strict: bool = True,
    trust_remote_code: bool = False,
    limits: Limits | None = None,
    **overrides: Any,
) -> MMChat:
    """Load a model by preset name (`mm-tiny`, `visualglm-6b`, `mm-6b`) or from a saved directory.

    `checkpoint` is a whole VisualGLM-6B release (the SAT `mp_rank_00_model_states.pt`, its directory,
    or the Hugging Face port's directory); `tokenizer` a directory or file with ChatGLM-6B's
    `ice_text.model` when the checkpoint has none. `quant="int8"|"int4"` quantizes the LLM with
    bitsandbytes (the encoders and bridge stay in `dtype`). Keyword overrides change the architecture
    (`num_queries=16`, `llm.num_layers=2`); weights that no longer fit keep their initial values, with a
    warning. `limits` bounds the work of each call (`mm.limits.Limits`; default `DEFAULT_LIMITS`).
    """
    if limits is not None and not isinstance(limits, Limits):
        raise InputError(f"limits must be an mm.limits.Limits, got {type(limits).__name__}")
    if quant is not None and quant not in QUANTS:
        raise InputError(f"unknown quantization {quant!r}; use one of {', '.join(QUANTS)}")
    try:
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
    except ValueError as e:
        raise InputError(str(e)) from None
    if checkpoint is not None:
        if overrides:
            raise InputError(f"checkpoint= takes its architecture from the checkpoint; drop {sorted(overrides)}")
        from mm.formats.visualglm import load_visualglm

        model, tok = load_visualglm(checkpoint, preset_name=str(name_or_dir), tokenizer=tokenizer, strict=strict,
                                    bridge=bridge, dtype=dt)
        return _finish(model, tok, dev, dt, quant=quant, limits=limits)

    cfg, saved = resolve(name_or_dir, overrides)
    llm_given = llm is not None or (saved is not None and saved.llm is not None)  # not built from the config
    _require_weights(cfg, saved, llm_given, {"image": image_encoder, "audio": audio_encoder})
    model, tok = build(cfg, saved, llm=llm, image_encoder=image_encoder, audio_encoder=audio_encoder, strict=strict,
                       trust_remote_code=trust_remote_code, dtype=dt, quant=quant)
    if saved is not None:
        load_weights(model, saved, llm_separate=llm_given, strict=strict and not overrides)
    elif llm is None:
        logger.warning("%s: no trained weights ship with this preset; the model is untrained", cfg.name)
    if bridge is not None:
        load_bridge_file(model, bridge, strict)
    llm_quantized = quant is not None and llm_given  # transformers quantized it while loading
    return _finish(model, tok, dev, dt, quant=None if llm_quantized else quant, llm_quantized=llm_quantized,
                   limits=limits)


def _require_weights(cfg: MMConfig, saved: ModelDir | None, llm_given: bool,
                     encoders: dict[str, str | Path | None]) -> None:
    """A bridge-only save, or a full-scale preset, holds no LLM or encoder weights: each must come from its
    own file, or the model would answer with untrained parts (nothing is downloaded)."""
    if saved is not None and not saved.bridge_only:
        return
    if saved is None and not cfg.full_scale:
        return  # an untrained tiny preset: asked for (load warns)
    missing = [] if llm_given else ["llm=PATH (the LLM)"]
    missing += [f"{m}_encoder=PATH" for m in MODALITY_TYPES
                if getattr(cfg, f"{m}_encoder", None) is not None and encoders.get(m) is None]
    if not missing:
        return
    where = f"{saved.path} holds the trained bridge only" if saved is not None else f"{cfg.name} is a full-scale model"
    raise InputError(f"{where}: pass {', '.join(missing)} for the other weights (or checkpoint=PATH for a whole "
                     "VisualGLM-6B release); nothing is downloaded, and untrained parts would answer nonsense")


def resolve(name_or_dir: str | Path, overrides: dict[str, Any] | None = None) -> tuple[MMConfig, ModelDir | None]:
    """A preset name or a saved directory -> its config (with `overrides` applied) and the saved directory
    whose weights it loads: the directory itself, a preset's shipped weights, or None (untrained)."""
    path = Path(name_or_dir)
    saved: ModelDir | None
    if path.is_dir():
        saved = read_model_dir(path)
        cfg = saved.config
    elif path.suffix or "/" in str(name_or_dir):
        raise InputError(f"{name_or_dir}: no such model directory")
    else:
        cfg = preset(str(name_or_dir))
        shipped = shipped_weights(cfg.name)
        saved = read_model_dir(shipped) if shipped is not None else None
        if saved is not None:  # the shipped weights carry the exact config they were trained with
            cfg = saved.config
    try:
        cfg = apply_overrides(cfg, overrides or {})
    except ValueError as e:
        raise InputError(str(e)) from None
    return cfg, saved


def build(
    cfg: MMConfig, saved: ModelDir | None = None, *, llm: str | Path | None = None,
    image_encoder: str | Path | None = None, audio_encoder: str | Path | None = None, strict: bool = True,
    trust_remote_code: bool = False, dtype: torch.dtype = torch.float32, quant: str | None = None,
) -> tuple[MMModel, Any]:
    """The model of `cfg` and its tokenizer. Components with a file of their own (the LLM from `llm=` or the
    saved llm/ folder, encoders from `image_encoder=` / `audio_encoder=`) come loaded; the rest have
    reproducible initial values until `mm.checkpoint.load_weights` fills them."""
    llm_model, tok, cfg = _resolve_llm(cfg, llm, saved, trust_remote_code, dtype, quant)
    with torch.random.fork_rng(devices=[]):  # initial weights are reproducible and leave the caller's RNG alone
        torch.manual_seed(INIT_SEED)
        encoders = _build_encoders(cfg, {"image": image_encoder, "audio": audio_encoder}, strict)
        model = MMModel(cfg, llm=llm_model, encoders=encoders)
    return model, tok


def _resolve_llm(
    cfg: MMConfig, llm: str | Path | None, saved: ModelDir | None, trust_remote_code: bool, dt: torch.dtype,
    quant: str | None,
) -> tuple[PreTrainedModel | None, Any, MMConfig]:
    """The LLM from its own checkpoint (any transformers causal LM, ChatGLM-6B v1), or None to build it from
    the config, and the tokenizer that goes with it."""
    if llm is None and saved is not None and saved.llm is not None:
        llm = saved.llm  # a full save of a model whose LLM is not built from LLMConfig
    if llm is not None:
        llm_model, tok = load_llm(llm, trust_remote_code=trust_remote_code, dtype=dt, quant=quant)
        # The checkpoint's own chat template wins over the preset's, unless the preset names a GLM format.
        template = cfg.llm.template
        if getattr(tok, "chat_template", None) and template not in ("chatglm", "chatglm3", "visualglm"):
            template = "auto"
        return llm_model, tok, dataclasses.replace(cfg, llm=llm_config_from_hf(llm_model.config, template))
    if cfg.llm.arch != "glm" or (saved is None and cfg.full_scale):
        raise InputError(
            f"{cfg.name} is a full-scale model: pass checkpoint=PATH for a whole VisualGLM-6B release, or the LLM "
            "checkpoint directory with llm=PATH (and image_encoder=, audio_encoder=, bridge= for the other "
            "weights); nothing is downloaded"
        )
    return None, read_tokenizer(saved.path) if saved is not None else build_tokenizer(), cfg


def _finish(model: MMModel, tok: Any, dev: torch.device, dt: torch.dtype, *, quant: str | None,
            llm_quantized: bool = False, limits: Limits | None = None) -> MMChat:
    """Quantize the LLM if asked, move to the device and dtype, wrap for chat."""
    _check_materialised(model)
    if quant is not None:
        from mm.quant import quantize_llm

        model.llm = quantize_llm(model.llm, quant, compute_dtype=dt if dt != torch.float32 else torch.bfloat16)
        llm_quantized = True
    # Quantized layers stay as bitsandbytes made them; everything else moves to the device and dtype.
    model.to(device=dev)
    for name, module in model.named_children():
        if name != "llm" or not llm_quantized:
            module.to(dtype=dt)
    return MMChat(model, tok, limits=limits)
