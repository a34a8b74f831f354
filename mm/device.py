"""The one place that turns user strings into torch devices and dtypes (chosen at entry points)."""

from __future__ import annotations

from typing import Literal

import torch

DTypeName = Literal["fp32", "fp16", "bf16", "auto"]

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
    """`None`/"auto" picks CUDA, then MPS, then CPU; anything else is passed to `torch.device`."""
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:1', 'mps' or 'auto'") from e


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device | None = None) -> torch.dtype:
    """`None`/"auto" is bf16 on CUDA devices that support it, fp32 elsewhere (CPU half math is slow)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device is not None and device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return _DTYPES[dtype.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {sorted(set(_DTYPES))} or 'auto'") from None
