"""Reading checkpoints without unpickling arbitrary objects."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

# Prefixes under which common checkpoints keep the tower we want, tried in order.
_PREFIXES = ("module.", "state_dict.", "model.")


def read_state_dict(path: str | Path, prefix: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, a directory holding `*.safetensors`, or a torch checkpoint.

    Torch files are read with `weights_only=True`; a `{"state_dict": ...}` or `{"model": ...}` wrapper
    is unwrapped. With `prefix`, only keys starting with it are kept (prefix removed).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors files in {path}")
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(load_file(str(f)))
    elif path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model", "module"):
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
        state = obj
    if prefix is not None:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def strip_prefix(state: dict[str, torch.Tensor], prefixes: tuple[str, ...] = _PREFIXES) -> dict[str, torch.Tensor]:
    """Remove a wrapper prefix shared by every key (DDP's `module.`, Lightning's `model.`)."""
    for p in prefixes:
        if state and all(k.startswith(p) for k in state):
            return {k[len(p):]: v for k, v in state.items()}
    return state
