"""`mm.load`: a preset name or a saved directory -> `MMChat`, with optional local weight paths.

Nothing is downloaded: presets with shipped weights load them from the package (mm/weights/NAME/);
full-scale presets take the user's checkpoints: `checkpoint=` for a whole VisualGLM-6B release (SAT or
Hugging Face port), or `llm=`, `image_encoder=`, `audio_encoder=`, `bridge=` for one component each.

Loading is resolve -> build -> load weights. Components whose weights come from a file are built on
the meta device and receive the file's tensors by assignment, so a 6B checkpoint is never held twice.
Every file the user names is accounted for strictly (`encoders.weights.load_into`): it fills its
component exactly or loading fails naming what is missing and unexpected; `strict=False` opts out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from safetensors.torch import load_file
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel

from bridge.layouts import bridge_state_from_checkpoint
from encoders.base import FrozenEncoder
from encoders.registry import create_encoder
from encoders.weights import load_into, read_state_dict
from mm.chat import MMChat
from mm.config import MMConfig, apply_overrides, preset
from mm.device import resolve_device, resolve_dtype
from mm.errors import InputError
from mm.limits import Limits
from mm.llm import llm_config_from_hf, load_llm
from mm.model import MMModel
from mm.tokenizer import build_tokenizer

logger = logging.getLogger(__name__)

# Seed for the initial weights of a model built from a config alone, so an untrained model is reproducible.
INIT_SEED = 0
QUANTS = ("int8", "int4")


def shipped_weights(name: str) -> Path | None:
    """The package directory holding a preset's trained weights, if it ships any."""
    d = resources.files("mm") / "weights" / name
    return Path(str(d)) if d.is_dir() and (d / "config.json").is_file() else None


def bridge_view(model: MMModel, modalities: tuple[str, ...] | None = None) -> nn.Module:
    """The trainable bridge (Q-Formers + projections) as one module whose state-dict keys are the model's
    (`qformers.image.*`, `projectors.image.*`), optionally restricted to some modalities."""
    keep = modalities or tuple(model.qformers.keys())
    view = nn.Module()
    view.qformers = nn.ModuleDict({m: q for m, q in model.qformers.items() if m in keep})
    view.projectors = nn.ModuleDict({m: p for m, p in model.projectors.items() if m in keep})
    return view


def bridge_state(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Bridge weights from our bridge file or a BLIP-2 / VisualGLM checkpoint (`bridge.layouts`), and the
    file's tensors that belong nowhere (for the strict check). Tensors of the encoders, the LLM or the
    Q-Former's text branch are left out on purpose."""
    weights = bridge_state_from_checkpoint(read_state_dict(path))
    if weights.ignored:
        logger.info("%s: %d tensors belong to other components and are not part of the bridge",
                    path, len(weights.ignored))
    return weights.state, weights.unused


def _load_bridge(model: MMModel, path: str | Path, strict: bool) -> None:
    state, unused = bridge_state(path)
    if unused and strict:
        shown = ", ".join(sorted(unused)[:5])
        raise InputError(f"{path}: {len(unused)} tensors belong to no bridge ({shown}); pass strict=False to ignore them")
    modalities = tuple(sorted({k.split(".")[1] for k in state}))
    missing = [m for m in modalities if m not in model.qformers]
    if missing:
        raise InputError(f"{path}: holds a {'/'.join(missing)} bridge, but this model has no {'/'.join(missing)} input")
    view = bridge_view(model, modalities)
    projector_in_file = any(k.startswith("projectors.") for k in state)
    optional = None if projector_in_file else (lambda k: k.startswith("projectors."))
    load_into(view, state, component=f"{'/'.join(modalities)} bridge", source=path, strict=strict, optional=optional)
    if not projector_in_file:
        logger.warning("%s: holds no LLM projection; projectors.%s keep their initial values until trained "
                       "(mm train --stage bridge)", path, "/".join(modalities))


def _tokenizer_for(weights_dir: Path | None) -> Any:
    if weights_dir is not None:
        return AutoTokenizer.from_pretrained(weights_dir, local_files_only=True)
    return build_tokenizer()


def _build_encoders(cfg: MMConfig, sources: dict[str, str | Path | None], strict: bool) -> dict[str, FrozenEncoder]:
    """Each encoder of the config; those with a weight file are built on the meta device, then loaded."""
    out: dict[str, FrozenEncoder] = {}
    for m in ("image", "audio"):
        enc_cfg = getattr(cfg, f"{m}_encoder")
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

    path = Path(name_or_dir)
    weights_dir: Path | None
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"{path}: not a saved model (no config.json)")
        weights_dir = path
        cfg = MMConfig.load(path / "config.json")
    elif path.suffix or "/" in str(name_or_dir):
        raise InputError(f"{name_or_dir}: no such model directory")
    else:
        cfg = preset(str(name_or_dir))
        weights_dir = shipped_weights(cfg.name)
        if weights_dir is not None:  # the shipped weights carry the exact config they were trained with
            cfg = MMConfig.load(weights_dir / "config.json")
    try:
        cfg = apply_overrides(cfg, overrides)
    except ValueError as e:
        raise InputError(str(e)) from None

    llm_model, tok, cfg = _resolve_llm(cfg, llm, weights_dir, trust_remote_code, dt, quant)
    with torch.random.fork_rng(devices=[]):  # initial weights are reproducible and leave the caller's RNG alone
        torch.manual_seed(INIT_SEED)
        encoders = _build_encoders(cfg, {"image": image_encoder, "audio": audio_encoder}, strict)
        model = MMModel(cfg, llm=llm_model, encoders=encoders)

    if weights_dir is not None:
        _load_saved(model, weights_dir, llm_separate=llm_model is not None, strict=strict and not overrides)
    elif llm is None:
        logger.warning("%s: no trained weights ship with this preset; the model is untrained", cfg.name)
    if bridge is not None:
        _load_bridge(model, bridge, strict)
    if weights_dir is not None and (weights_dir / "lora" / "adapter_config.json").is_file():
        from mm.train.lora import load_lora

        load_lora(model, weights_dir)  # adapters saved apart (mm train --stage instruct without --merge-lora)
    llm_quantized = quant is not None and llm_model is not None  # transformers quantized it while loading
    return _finish(model, tok, dev, dt, quant=None if llm_quantized else quant, llm_quantized=llm_quantized,
                   limits=limits)


def _resolve_llm(
    cfg: MMConfig, llm: str | Path | None, weights_dir: Path | None, trust_remote_code: bool, dt: torch.dtype,
    quant: str | None,
) -> tuple[PreTrainedModel | None, Any, MMConfig]:
    """The LLM from its own checkpoint (any transformers causal LM, ChatGLM-6B v1), or None to build it from
    the config, and the tokenizer that goes with it."""
    if llm is None and weights_dir is not None and (weights_dir / "llm" / "config.json").is_file():
        llm = weights_dir / "llm"  # a full save of a model whose LLM is not built from LLMConfig
    if llm is not None:
        llm_model, tok = load_llm(llm, trust_remote_code=trust_remote_code, dtype=dt, quant=quant)
        # The checkpoint's own chat template wins over the preset's, unless the preset names a GLM format.
        template = cfg.llm.template
        if getattr(tok, "chat_template", None) and template not in ("chatglm", "chatglm3", "visualglm"):
            template = "auto"
        return llm_model, tok, dataclasses.replace(cfg, llm=llm_config_from_hf(llm_model.config, template))
    if cfg.llm.arch != "glm" or (weights_dir is None and cfg.full_scale):
        raise InputError(
            f"{cfg.name} is a full-scale model: pass checkpoint=PATH for a whole VisualGLM-6B release, or the LLM "
            "checkpoint directory with llm=PATH (and image_encoder=, audio_encoder=, bridge= for the other "
            "weights); nothing is downloaded"
        )
    return None, _tokenizer_for(weights_dir), cfg


def _load_saved(model: MMModel, weights_dir: Path, *, llm_separate: bool, strict: bool) -> None:
    """Our own format: model.safetensors (everything but a separately saved LLM) or bridge.safetensors."""
    full, bridge_file = weights_dir / "model.safetensors", weights_dir / "bridge.safetensors"
    if full.is_file():
        optional = (lambda k: k.startswith("llm.")) if llm_separate else None
        state = load_file(str(full))
        if llm_separate:
            state = {k: v for k, v in state.items() if not k.startswith("llm.")}
        load_into(model, state, component="model", source=full, strict=strict, optional=optional)
    elif bridge_file.is_file():
        load_into(bridge_view(model), load_file(str(bridge_file)), component="bridge", source=bridge_file,
                  strict=strict)
    else:
        raise InputError(f"{weights_dir}: holds config.json but no model.safetensors or bridge.safetensors")


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
