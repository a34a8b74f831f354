"""LoRA adapters (PEFT) on the LLM for instruction tuning; merged into the weights or saved apart.

`model` is an `MMModel` (any module whose `.llm` is the language model): typed `nn.Module` because
`mm.checkpoint`, a layer below `mm.model`, calls these.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

# GLM / Llama / Qwen-style projection names; whichever exist in the LLM are adapted.
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "gate_proj", "up_proj", "down_proj")


def add_lora(model: nn.Module, r: int = 8, alpha: int | None = None, dropout: float = 0.0, seed: int = 0) -> None:
    """Wrap `model.llm` with trainable LoRA adapters (alpha defaults to 2r); the base weights stay frozen.

    The adapters' random initialisation comes from `seed`, not from whatever the process drew before, so the
    same call gives the same adapters (the global RNG is left as it was)."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.llm.named_modules()}
    targets = [t for t in TARGETS if t in names]
    if not targets:
        raise ValueError(f"no LoRA target modules found in {type(model.llm).__name__}")
    cfg = LoraConfig(r=r, lora_alpha=alpha or 2 * r, lora_dropout=dropout, target_modules=targets, bias="none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.llm = get_peft_model(model.llm, cfg)


def has_lora(model: nn.Module) -> bool:
    return isinstance(model.llm, PeftModel)


def merge_lora(model: nn.Module) -> None:
    """Fold the adapters into the base weights (plain transformers model again)."""
    if has_lora(model):
        model.llm = model.llm.merge_and_unload()


def save_lora(model: nn.Module, directory: str | Path) -> None:
    """Write the adapters to DIR/lora and take them off the LLM (its base weights are saved as usual)."""
    model.llm.save_pretrained(str(Path(directory) / "lora"))
    model.llm = model.llm.unload()


def load_lora(model: nn.Module, directory: str | Path) -> None:
    model.llm = PeftModel.from_pretrained(model.llm, str(Path(directory) / "lora"))
