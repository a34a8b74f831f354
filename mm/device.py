"""The one place that turns user strings into torch devices and dtypes (chosen at entry points).

A device this machine does not have, or a dtype we do not know, is an `InputError` naming the choices,
raised here rather than as a driver error deep inside the first `.to(device)`.
"""

from __future__ import annotations

import torch

from mm.errors import InputError

_DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None`/"auto" picks CUDA, then MPS, then CPU; anything else is passed to `torch.device` and must exist here."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise InputError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:1', 'mps' or 'auto'") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {str(dev)!r}: this machine has no CUDA GPU that torch can use; "
                             "use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= count:
            raise InputError(f"device {str(dev)!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps" and not _mps_available():
        raise InputError(f"device {str(dev)!r}: Apple's MPS backend is not available here; use 'cpu' or 'auto'")
    return dev


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device | None = None) -> torch.dtype:
    """`None`/"auto" is bf16 on CUDA devices that support it, fp32 elsewhere (CPU half math is slow)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device is not None and device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise InputError(f"unknown dtype {dtype!r}: use one of {sorted(set(_DTYPES))} or 'auto'") from None
