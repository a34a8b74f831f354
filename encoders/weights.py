"""Reading checkpoints without unpickling arbitrary objects, and loading them with strict accounting.

`read_state_dict` takes every on-disk shape a user may hold: one safetensors or torch file, a directory
of safetensors or `.bin` shards (with or without an index), or a SwissArmyTransformer (SAT) release
directory (`latest` + `N/mp_rank_00_model_states.pt`). Torch files are read with `weights_only=True` and
memory-mapped, so a 15 GB checkpoint is not copied into RAM before it is used.

`load_into` is the one way a named file reaches a module: every tensor of the module must be in the
file with its shape and every tensor of the file must be used, or an `InputError` lists what is missing,
unexpected and mis-shaped. `strict=False` is the explicit opt-in to load what fits.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from mm.errors import InputError

logger = logging.getLogger(__name__)

# Prefixes under which common checkpoints keep the tower we want, tried in order.
_PREFIXES = ("module.", "state_dict.", "model.")
# Wrappers around a state dict in torch checkpoints: Lightning/timm, LAVIS, SAT/DeepSpeed, OpenAI Whisper.
_WRAPPERS = ("state_dict", "model", "module", "model_state_dict")
# How many names an error message shows of each kind.
SHOWN = 5


def _torch_file(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):  # an old (pre-zip) file cannot be memory-mapped; read it plainly
            raise InputError(f"{path}: not a readable torch checkpoint ({str(e).splitlines()[0]})") from None
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle errors come in many types
        raise InputError(f"{path}: not a readable torch checkpoint ({str(e).splitlines()[0][:200]})") from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw object of a torch file (e.g. OpenAI Whisper's `{"dims", "model_state_dict"}`)."""
    return _torch_file(Path(path))


def sat_checkpoint_file(directory: Path) -> Path | None:
    """The model file of a SAT release directory: `latest` names the iteration folder."""
    latest = directory / "latest"
    if latest.is_file():
        f = directory / latest.read_text().strip() / "mp_rank_00_model_states.pt"
        if f.is_file():
            return f
    found = sorted(directory.glob("*/mp_rank_00_model_states.pt"))
    return found[-1] if found else None


def _shards(directory: Path) -> list[Path]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.is_file():
            names = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
            missing = [n for n in names if not (directory / n).is_file()]
            if missing:
                raise InputError(f"{directory}: {index_name} names shards that are not there: {missing[:SHOWN]}")
            return [directory / n for n in names]
    files = sorted(directory.glob("*.safetensors"))
    return files or sorted(directory.glob("*.bin"))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a file or a checkpoint directory (see the module docstring).

    A `{"state_dict"|"model"|"module"|"model_state_dict": ...}` wrapper is unwrapped; non-tensor entries
    (DeepSpeed's bookkeeping) are dropped.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint not found: {path}")
    if path.is_dir():
        sat = sat_checkpoint_file(path)
        files = [sat] if sat is not None else _shards(path)
        if not files:
            raise InputError(f"{path}: no weights found (*.safetensors, *.bin or a SAT release with 'latest')")
    else:
        files = [path]
    state: dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            try:
                state.update(load_file(str(f)))
            except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
                raise InputError(f"{f}: not a readable safetensors file ({e})") from None
            continue
        obj: Any = _torch_file(f)
        for key in _WRAPPERS:
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if not isinstance(obj, dict):
            raise InputError(f"{f}: holds a {type(obj).__name__}, not a state dict")
        state.update({k: v for k, v in obj.items() if isinstance(v, torch.Tensor)})
    if not state:
        raise InputError(f"{path}: the checkpoint holds no tensors")
    return state


def rename_first(key: str, renames: Iterable[tuple[str, str]]) -> str | None:
    """`key` renamed by the first (regex, replacement) pair that matches it, None if none does."""
    for pattern, repl in renames:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return None


def strip_prefix(state: dict[str, torch.Tensor], prefixes: tuple[str, ...] = _PREFIXES) -> dict[str, torch.Tensor]:
    """Remove a wrapper prefix shared by every key (DDP's `module.`, Lightning's `model.`)."""
    for p in prefixes:
        if state and all(k.startswith(p) for k in state):
            return {k[len(p):]: v for k, v in state.items()}
    return state


def _listing(kind: str, names: Iterable[str]) -> str:
    names = sorted(names)
    more = f", ... ({len(names)} in all)" if len(names) > SHOWN else ""
    return f"{len(names)} {kind}: {', '.join(names[:SHOWN])}{more}"


def load_into(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    component: str,
    source: str | Path,
    strict: bool = True,
    optional: Callable[[str], bool] | None = None,
) -> list[str]:
    """Load `state` into `module` (assigning tensors, so modules built on the meta device work).

    Strict: every tensor of the module is in `state` with its shape and every tensor of `state` is
    used, else `InputError` naming the component, the file, and the missing / unexpected / mis-shaped
    tensors (first few and counts). `optional(name)` marks module tensors that may be absent (buffers a
    format does not store); they keep their current values. With `strict=False` whatever fits is
    loaded and one warning names the component and what stays fresh. Returns the module tensors that
    were not loaded.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not (optional and optional(k))]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if strict and (missing or unexpected or shapes):
        parts = [_listing(kind, names) for kind, names in
                 (("missing", missing), ("unexpected", unexpected), ("with the wrong shape (file vs model)", shapes))
                 if names]
        raise InputError(
            f"{source}: does not match the {component} ({'; '.join(parts)}). Check that the file is a "
            f"{component} checkpoint of this architecture, or pass strict=False to load what fits."
        )
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    module.load_state_dict(usable, strict=False, assign=True)
    fresh = [k for k in own if k not in usable]
    if not strict and (fresh or unexpected):
        logger.warning("%s: %s loaded with strict=False; %d of its tensors keep their initial values (e.g. %s), "
                       "%d file tensors were not used", source, component, len(fresh), fresh[:3], len(unexpected))
    return fresh
