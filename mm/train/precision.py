"""Which autocast a training stage runs under: `TrainConfig.mixed_precision="auto"` picks bf16 only where the
hardware computes it natively.

bf16 autocast halves a step on CUDA GPUs and on CPUs with AVX512-BF16 or AMX. On a CPU without them every
bf16 matrix product is emulated: the recipe's first 12 stage-0 steps took 15.3 s each in bf16 on a 2-core AVX2
machine (AMD EPYC), 0.76 s in fp32 (20x), so "auto" trains those machines in fp32.
"""

from __future__ import annotations

from typing import Literal

import torch

Precision = Literal["no", "bf16", "fp16"]
MODES = ("auto", "no", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products in hardware (AVX512-BF16 or AMX tiles)."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(mode: str, device: torch.device) -> Precision:
    """`mode` as the training loop runs it on `device`: "auto" becomes "bf16" where bf16 is native, else "no"."""
    if mode not in MODES:
        raise ValueError(f"mixed_precision must be one of {', '.join(MODES)}: {mode!r}")
    if mode == "auto":
        return "bf16" if native_bf16(device) else "no"
    return mode  # type: ignore[return-value]
