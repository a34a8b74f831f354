"""The on-disk format of a saved model, both ways, and which weights form the trainable bridge.

A model directory (`save_model` writes it, `read_model_dir` + `load_weights` read it back; the shipped
weights under mm/weights/NAME/ are one):

    config.json            `MMConfig`: the architecture only
    model.safetensors      every tensor of the `MMModel`, under its state-dict names (`llm.*` left out when
                           llm/ holds the LLM), or instead
    bridge.safetensors     the trainable bridge only (`is_bridge_key`): full-scale models whose encoders and
                           LLM are loaded from their own checkpoints
    tokenizer files        transformers' `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`
    llm/                   optional: an LLM that `LLMConfig` cannot rebuild (arch "chatglm" or "hf"), in its
                           own transformers format with its tokenizer
    lora/                  optional: PEFT LoRA adapters on the LLM, kept apart from its base weights

When both weight files are there, model.safetensors is read. Tensors are written as the model holds them
(dtype included), contiguous, on the CPU, with no safetensors metadata.

The bridge is the modules of `BRIDGE_MODULES` (Q-Formers and projections into the LLM, one per modality):
what stage-1/2 training updates and a bridge-only save keeps. Everything that needs to know which
tensors are the bridge asks `is_bridge_key` / `BRIDGE_PREFIXES`.

This module reads and writes files only; building models is `mm.loading`'s (resolve -> build -> load).
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from safetensors.torch import save_file
from torch import nn

from bridge.layouts import bridge_state_from_checkpoint
from bridge.names import BRIDGE_MODULES, PROJECTORS, QFORMERS, is_bridge_key
from encoders.weights import load_into, read_state_dict
from mm.config import MMConfig
from mm.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
BRIDGE_FILE = "bridge.safetensors"
LLM_DIR = "llm"
LORA_DIR = "lora"
LORA_CONFIG = "adapter_config.json"  # PEFT's marker file of an adapter directory
LLM_PREFIX = "llm."  # the LLM's tensors in the model's state dict

# The trainable bridge (`QFORMERS`, `PROJECTORS`, `BRIDGE_PREFIXES`, `is_bridge_key`) is declared in
# bridge.names, below this module, so that bridge.layouts can use it too; it is re-exported here.


def bridge_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The bridge's tensors of `model`, under the model's own state-dict names."""
    return {k: v for k, v in model.state_dict().items() if is_bridge_key(k)}


def bridge_modalities(names: Iterable[str]) -> tuple[str, ...]:
    """The modalities whose bridge some of these state-dict names belong to (`qformers.image.x` -> image)."""
    return tuple(sorted({k.split(".")[1] for k in names if is_bridge_key(k)}))


def bridge_view(model: nn.Module, modalities: tuple[str, ...] | None = None) -> nn.Module:
    """The bridge as one module whose state-dict names are the model's (`qformers.image.*`,
    `projectors.image.*`), optionally restricted to some modalities; it shares the model's parameters."""
    keep = modalities or tuple(getattr(model, QFORMERS).keys())
    view = nn.Module()
    for name in BRIDGE_MODULES:
        setattr(view, name, nn.ModuleDict({m: part for m, part in getattr(model, name).items() if m in keep}))
    return view


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelDir:
    """A saved model directory, as `read_model_dir` found it."""

    path: Path
    config: MMConfig  # from config.json
    weights: Path  # model.safetensors, or bridge.safetensors for a bridge-only save
    llm: Path | None = None  # llm/: the LLM in its own transformers format
    lora: Path | None = None  # lora/: LoRA adapters saved apart

    @property
    def bridge_only(self) -> bool:
        return self.weights.name == BRIDGE_FILE


def shipped_weights(name: str) -> Path | None:
    """The package directory holding a preset's trained weights (mm/weights/NAME/), if it ships any."""
    d = resources.files("mm") / "weights" / name
    return Path(str(d)) if d.is_dir() and (d / CONFIG_FILE).is_file() else None


def read_config(path: str | Path) -> MMConfig:
    """The `MMConfig` of a saved model's config.json; InputError when it is not one."""
    path = Path(path)
    try:
        return MMConfig.load(path)
    except (ValueError, TypeError) as e:  # JSON syntax, unknown or mistyped fields, failed validation
        raise InputError(f"{path}: not the config of a saved mm model ({e})") from None


def read_model_dir(path: str | Path) -> ModelDir:
    """What a saved model directory holds; InputError when it is not one or its weights are missing."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise InputError(f"{path}: not a saved model (no config.json)")
    weights = next((path / f for f in (MODEL_FILE, BRIDGE_FILE) if (path / f).is_file()), None)
    if weights is None:
        raise InputError(f"{path}: holds config.json but no model.safetensors or bridge.safetensors")
    llm, lora = path / LLM_DIR, path / LORA_DIR
    return ModelDir(path, read_config(path / CONFIG_FILE), weights,
                    llm=llm if (llm / CONFIG_FILE).is_file() else None,
                    lora=lora if (lora / LORA_CONFIG).is_file() else None)


# A fast tokenizer keeps its last call's truncation and padding on its Rust backend, and save_pretrained
# writes them into tokenizer.json; loading such a file turns them into init kwargs, which the next save
# writes into tokenizer_config.json (a model saved after a `max_length=96` training collator carried both).
# Keyword -> the backend state's field it is derived from, as transformers derives it when loading.
_FROM_TRUNCATION = {"max_length": "max_length", "truncation_side": "direction", "stride": "stride",
                    "truncation_strategy": "strategy"}
_FROM_PADDING = {"pad_token_type_id": "pad_type_id", "padding_side": "direction", "max_length": "length",
                 "pad_to_multiple_of": "pad_to_multiple_of"}
_ABSENT = object()


def read_tokenizer(directory: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved beside a model (or in its llm/ folder), without a saved call's truncation/padding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        for state, derived in ((backend.truncation, _FROM_TRUNCATION), (backend.padding, _FROM_PADDING)):
            for key, source in derived.items() if state else ():
                value = tokenizer.init_kwargs.get(key, _ABSENT)
                # A side is dropped only where it is the default: a tokenizer that pads on the left keeps it.
                if value == state.get(source) and (not key.endswith("_side") or value == "right"):
                    del tokenizer.init_kwargs[key]
    _clear_call_state(tokenizer)
    return tokenizer


def _clear_call_state(tokenizer: Any) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)  # fast tokenizers only; each call sets its own
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()


def save_tokenizer(tokenizer: Any, directory: str | Path) -> None:
    """`save_pretrained` without the last call's truncation and padding (see `read_tokenizer`)."""
    _clear_call_state(tokenizer)
    tokenizer.save_pretrained(directory)


def load_weights(model: nn.Module, saved: ModelDir, *, llm_separate: bool = False, strict: bool = True) -> None:
    """Fill `model` from a saved directory: its weight file, strictly accounted for, then its LoRA adapters.

    `llm_separate`: the model's LLM came from elsewhere (llm/ or the user's `llm=`), so the file's `llm.*`
    tensors are neither needed nor used. A bridge-only file fills the bridge and nothing else.
    """
    state = read_state_dict(saved.weights)
    if saved.bridge_only:
        load_into(bridge_view(model), state, component="bridge", source=saved.weights, strict=strict)
    else:
        optional = (lambda k: k.startswith(LLM_PREFIX)) if llm_separate else None
        if llm_separate:
            state = {k: v for k, v in state.items() if not k.startswith(LLM_PREFIX)}
        load_into(model, state, component="model", source=saved.weights, strict=strict, optional=optional)
    if saved.lora is not None:
        from mm.lora import load_lora

        load_lora(model, saved.path)


# -- writing ---------------------------------------------------------------------------------------


def _has_lora(model: nn.Module) -> bool:
    peft = sys.modules.get("peft")  # an LLM can only carry adapters once peft is loaded
    return peft is not None and isinstance(model.llm, peft.PeftModel)


def _remove_stale(directory: Path, keep: set[str]) -> None:
    """Drop what an earlier save left that the loader would read instead of (or on top of) this save."""
    for name in (MODEL_FILE, BRIDGE_FILE, LLM_DIR, LORA_DIR):
        old = directory / name
        if name in keep or not old.exists():
            continue
        logger.info("%s: removing %s of an earlier save", directory, name)
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()


def save_model(
    directory: str | Path, model: nn.Module, tokenizer: Any, *, bridge_only: bool = False,
    lora: Literal["merge", "apart"] = "merge",
) -> Path:
    """Write `model` (an `MMModel`) and its tokenizer as a model directory (see the module docstring).

    `bridge_only` keeps the trained bridge only, for full-scale models whose encoders and LLM are loaded
    from their own checkpoints. LoRA adapters on the LLM are folded into its weights (`lora="merge"`) or
    written to lora/ and taken off the LLM (`"apart"`); either way the model is left without adapters.
    Files of an earlier save in `directory` that this save does not write are removed, so that what
    loads is what was saved.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config: MMConfig = model.config
    adapters_apart = lora == "apart" and _has_lora(model)
    llm_apart = not bridge_only and config.llm.arch != "glm"  # an LLM that LLMConfig cannot rebuild
    weights_name = BRIDGE_FILE if bridge_only else MODEL_FILE
    _remove_stale(directory, {weights_name} | ({LORA_DIR} if adapters_apart else set())
                  | ({LLM_DIR} if llm_apart else set()))
    if _has_lora(model):
        from mm.lora import merge_lora, save_lora

        if adapters_apart:
            save_lora(model, directory)  # writes lora/, leaves the base weights on the LLM
        else:
            merge_lora(model)
    config.save(directory / CONFIG_FILE)
    state = bridge_state_dict(model) if bridge_only else model.state_dict()
    if llm_apart:
        model.llm.save_pretrained(directory / LLM_DIR)
        save_tokenizer(tokenizer, directory / LLM_DIR)
        state = {k: v for k, v in state.items() if not k.startswith(LLM_PREFIX)}
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(state, str(directory / weights_name))
    save_tokenizer(tokenizer, directory)
    return directory


# -- bridge files (ours, BLIP-2's, VisualGLM's) --------------------------------------------------------


def bridge_state(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Bridge weights from our bridge file or a BLIP-2 / VisualGLM checkpoint (`bridge.layouts`), and the
    file's tensors that belong nowhere (for the strict check). Tensors of the encoders, the LLM or the
    Q-Former's text branch are left out on purpose."""
    weights = bridge_state_from_checkpoint(read_state_dict(path))
    if weights.ignored:
        logger.info("%s: %d tensors belong to other components and are not part of the bridge",
                    path, len(weights.ignored))
    return weights.state, weights.unused


def load_bridge_file(model: nn.Module, path: str | Path, strict: bool) -> None:
    """Load a bridge file (ours, BLIP-2's or VisualGLM's) into `model`'s Q-Formers and projectors."""
    state, unused = bridge_state(path)
    if unused and strict:
        shown = ", ".join(sorted(unused)[:5])
        raise InputError(f"{path}: {len(unused)} tensors belong to no bridge ({shown}); pass strict=False to ignore them")
    modalities = bridge_modalities(state)
    missing = [m for m in modalities if m not in model.qformers]
    if missing:
        raise InputError(f"{path}: holds a {'/'.join(missing)} bridge, but this model has no {'/'.join(missing)} input")
    view = bridge_view(model, modalities)
    projector_in_file = any(k.startswith(f"{PROJECTORS}.") for k in state)
    optional = None if projector_in_file else (lambda k: k.startswith(f"{PROJECTORS}."))
    load_into(view, state, component=f"{'/'.join(modalities)} bridge", source=path, strict=strict, optional=optional)
    if not projector_in_file:
        logger.warning("%s: holds no LLM projection; projectors.%s keep their initial values until trained "
                       "(mm train --stage bridge)", path, "/".join(modalities))
