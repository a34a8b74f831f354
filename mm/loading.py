"""`mm.load`: a preset name or a saved directory -> `MMChat`, with optional local weight paths.

Nothing is downloaded: presets with shipped weights load them from the package (mm/weights/NAME/);
full-scale presets take the user's checkpoints through `llm=`, `image_encoder=`, `audio_encoder=` and
`bridge=`.
"""

from __future__ import annotations

import dataclasses
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from bridge.qformer import qformer_state_from_blip2
from encoders.weights import read_state_dict
from mm.chat import MMChat
from mm.config import MMConfig, apply_overrides, preset
from mm.device import resolve_device, resolve_dtype
from mm.errors import InputError
from mm.llm import llm_config_from_hf, load_llm
from mm.model import MMModel
from mm.tokenizer import build_tokenizer

logger = logging.getLogger(__name__)

# Seed for the initial weights of a model built from a config alone, so an untrained model is reproducible.
INIT_SEED = 0


def shipped_weights(name: str) -> Path | None:
    """The package directory holding a preset's trained weights, if it ships any."""
    d = resources.files("mm") / "weights" / name
    return Path(str(d)) if d.is_dir() and (d / "config.json").is_file() else None


def _load_matching(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor whose name and shape match; log what stays freshly initialised."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(k for k in state if k not in usable)
    model.load_state_dict(usable, strict=False)
    fresh = sorted(k for k in own if k not in usable)
    if skipped:
        logger.warning("%s: %d tensors do not fit this architecture and were not loaded (e.g. %s)",
                       source, len(skipped), skipped[:3])
    if fresh and state:
        logger.warning("%s: %d parameters keep their initial values (e.g. %s)", source, len(fresh), fresh[:3])


def bridge_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Bridge weights from our bridge-only file or a BLIP-2 / VisualGLM checkpoint (image bridge)."""
    state = read_state_dict(path)
    if any(k.startswith(("qformers.", "projectors.")) for k in state):
        return {k: v for k, v in state.items() if k.startswith(("qformers.", "projectors."))}
    out = {f"qformers.image.{k}": v for k, v in qformer_state_from_blip2(state).items()}
    for proj in ("glm_proj", "llm_proj", "opt_proj", "language_projection"):
        for suffix in ("weight", "bias"):
            if f"{proj}.{suffix}" in state:
                out[f"projectors.image.net.{suffix}"] = state[f"{proj}.{suffix}"]
    if not out:
        raise InputError(f"{path}: no Q-Former or projection weights found")
    return out


def load(
    name_or_dir: str | Path = "mm-tiny",
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    llm: str | Path | None = None,
    image_encoder: str | Path | None = None,
    audio_encoder: str | Path | None = None,
    bridge: str | Path | None = None,
    trust_remote_code: bool = False,
    **overrides: Any,
) -> MMChat:
    """Load a model by preset name (`mm-tiny`, `visualglm-6b`, `mm-6b`) or from a saved directory.

    Keyword overrides change the architecture (`num_queries=16`, `llm.num_layers=2`); weights that no
    longer fit are left at their initial values, with a warning.
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
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

    if llm is None and weights_dir is not None and (weights_dir / "llm" / "config.json").is_file():
        llm = weights_dir / "llm"  # a full save of a model whose LLM is not built from LLMConfig
    if llm is not None:
        llm_model, tokenizer = load_llm(llm, trust_remote_code=trust_remote_code, dtype=dt)
        # The checkpoint's own chat template wins over the preset's, unless the preset names a GLM format.
        template = cfg.llm.template
        if getattr(tokenizer, "chat_template", None) and template not in ("chatglm", "chatglm3"):
            template = "auto"
        cfg = dataclasses.replace(cfg, llm=llm_config_from_hf(llm_model.config, template))
    elif cfg.llm.arch != "glm" or (weights_dir is None and cfg.llm.hidden_size > 1024):
        raise InputError(
            f"{cfg.name} is a full-scale model: pass the LLM checkpoint directory with llm=PATH (and "
            "image_encoder=, audio_encoder=, bridge= for the other weights); nothing is downloaded"
        )
    else:
        llm_model = None
        if weights_dir is not None:
            tokenizer = AutoTokenizer.from_pretrained(weights_dir, local_files_only=True)
        else:
            tokenizer = build_tokenizer()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = MMModel(cfg, llm=llm_model)

    if weights_dir is not None:
        for fname in ("model.safetensors", "bridge.safetensors"):
            if (weights_dir / fname).is_file():
                _load_matching(model, load_file(str(weights_dir / fname)), str(weights_dir / fname))
    elif llm is None:
        logger.warning("%s: no trained weights ship with this preset; the model is untrained", cfg.name)
    for modality, source in (("image", image_encoder), ("audio", audio_encoder)):
        if source is not None:
            if modality not in model.encoders:
                raise InputError(f"{cfg.name} has no {modality} encoder to load {source} into")
            model.encoders[modality].load_weights(source)
    if bridge is not None:
        _load_matching(model, bridge_state(bridge), str(bridge))
    if weights_dir is not None and (weights_dir / "lora" / "adapter_config.json").is_file():
        from mm.train.lora import load_lora

        load_lora(model, weights_dir)  # adapters saved apart (mm train --stage instruct without --merge-lora)

    model.to(device=dev, dtype=dt)
    return MMChat(model, tokenizer)
