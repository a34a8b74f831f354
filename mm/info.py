"""Architecture summary built on the meta device: parameters and memory per component, no weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mm.config import LLMConfig, MMConfig
from mm.llm import build_llm, chatglm_v1_parameters
from mm.modality import MODALITY_TYPES
from mm.quant import QuantName, check_quant, estimate_bytes, estimate_bytes_from_shapes

# Columns of the table: how the LLM is stored (int8/int4 as bitsandbytes stores them: scales included,
# embeddings and norms in bf16). Encoders and bridges are fp32 in the fp32 column, bf16 in the others.
_COLUMNS: dict[str, tuple[QuantName | None, torch.dtype]] = {
    "fp32": (None, torch.float32), "bf16": (None, torch.bfloat16),
    "int8": ("int8", torch.bfloat16), "int4": ("int4", torch.bfloat16),
}

# VisualGLM-6B's published GPU memory (weights + activations + CUDA context), in GB. INT4: "INT4量化级别下
# 最低只需8.7G显存" (THUDM/VisualGLM-6B README.md, introduction; every copy of that README we could read says
# 8.7G; the 6.3 GB sometimes quoted is not in it). FP16: "模型默认以 FP16 精度加载，运行上述代码需要大概
# 15GB 显存" (same README, section 模型量化).
PUBLISHED_GPU_GB: dict[str, dict[str, float]] = {"visualglm-6b": {"int4": 8.7, "fp16": 15.0}}


@dataclass
class Component:
    name: str
    params: int
    trainable: bool  # trained in this project's recipe (bridges); encoders and LLM stay frozen


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def components(cfg: MMConfig) -> list[Component]:
    """Build each part on the meta device and count its parameters."""
    out: list[Component] = []
    with torch.device("meta"):
        if cfg.llm.arch == "glm":
            llm_params = _count(build_llm(cfg.llm))
        else:
            llm_params = chatglm_v1_parameters(cfg.llm)
        for m in cfg.modalities:
            parts = MODALITY_TYPES[m].build_parts(cfg, cfg.llm.hidden_size)
            if parts.encoder is not None:
                out.append(Component(parts.encoder_label, _count(parts.encoder), False))
            out.append(Component(f"{m} {parts.qformer_label}", _count(parts.qformer), True))
            out.append(Component(f"{m} projection", _count(parts.projector), True))
    out.append(Component(f"LLM ({cfg.llm.arch}, {cfg.llm.num_layers} layers)", llm_params, False))
    return out


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f}"


def format_table(cfg: MMConfig) -> str:
    """Text table: params per component and memory for fp32 / bf16 / int8 / int4 LLM weights.

    Encoders and bridges are counted at bf16 in the quantised columns (only the LLM is quantised), at
    fp32 in the fp32 column; the quantised LLM keeps its embeddings, norms and output layer in bf16.
    """
    comps = components(cfg)
    llm_bytes = llm_weight_bytes(cfg)
    heads = ["component", "params", *[f"{k} GiB" for k in _COLUMNS]]
    rows = []
    totals = [0.0] * len(_COLUMNS)
    for c in comps:
        if c.name.startswith("LLM"):
            mem = [float(llm_bytes(q, dt)) for q, dt in _COLUMNS.values()]
        else:
            mem = [c.params * (4.0 if k == "fp32" else 2.0) for k in _COLUMNS]
        totals = [t + m for t, m in zip(totals, mem)]
        rows.append([c.name + (" *" if c.trainable else ""), f"{c.params / 1e6:,.1f}M", *map(_gib, mem)])
    total = sum(c.params for c in comps)
    rows.append(["total", f"{total / 1e6:,.1f}M", *map(_gib, totals)])
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    lines = [f"{cfg.name}: parameters and weight memory (* = trained bridge)"]
    for r in [heads, *rows]:
        lines.append("  ".join(r[0].ljust(widths[0]) if i == 0 else r[i].rjust(widths[i]) for i in range(len(r))))
        if r is heads:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def chatglm_v1_linear_shapes(cfg: LLMConfig) -> list[tuple[int, int]]:
    """(out, in) of the Linear weights `quantize_llm` quantizes in a ChatGLM-6B (v1) shaped LLM: per layer
    the fused QKV, the attention output and the two MLP matrices (the output layer is skipped)."""
    h, f = cfg.hidden_size, cfg.intermediate_size
    return [(3 * h, h), (h, h), (f, h), (h, f)] * cfg.num_layers


def llm_weight_bytes(cfg: MMConfig) -> Callable[[QuantName | None, torch.dtype], int]:
    """`f(quant, dtype)`: bytes of the LLM's weights, quantized or not, everything unquantized in `dtype`.

    Built from shapes alone (the GLM on the meta device, ChatGLM-6B v1 from its config), so it works for
    full-scale presets without weights.
    """
    if cfg.llm.arch == "glm":
        with torch.device("meta"):
            llm = build_llm(cfg.llm)
        return lambda quant, dtype: estimate_bytes(llm, quant, dtype)
    shapes = chatglm_v1_linear_shapes(cfg.llm)
    total = chatglm_v1_parameters(cfg.llm)
    rest = total - sum(o * i for o, i in shapes)
    return lambda quant, dtype: (estimate_bytes_from_shapes([], total, None, dtype) if quant is None
                                 else estimate_bytes_from_shapes(shapes, rest, quant, dtype))


@dataclass
class QuantMemory:
    name: str  # preset / model name
    quant: str  # int8 or int4
    dtype: str  # dtype of everything that is not a quantized Linear weight
    llm_bytes: int  # the LLM quantized (embeddings, norms, biases, output layer in `dtype`)
    llm_unquantized_bytes: int  # the same LLM entirely in `dtype`
    other_bytes: int  # encoders, Q-Formers and projections in `dtype`
    published_gb: dict[str, float]  # the published model's GPU memory figures, when there are any

    @property
    def total_bytes(self) -> int:
        return self.llm_bytes + self.other_bytes

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "total_bytes": self.total_bytes}


def quant_memory(cfg: MMConfig, quant: str, dtype: torch.dtype = torch.float16) -> QuantMemory:
    """Weight memory with the LLM quantized by bitsandbytes and the rest in `dtype` (no weights needed)."""
    q = check_quant(quant)
    elt = torch.empty((), dtype=dtype).element_size()
    llm_bytes = llm_weight_bytes(cfg)
    other = sum(c.params for c in components(cfg) if not c.name.startswith("LLM")) * elt
    return QuantMemory(cfg.name, q, str(dtype).removeprefix("torch."), llm_bytes(q, dtype), llm_bytes(None, dtype),
                       other, PUBLISHED_GPU_GB.get(cfg.name, {}))


def format_quant(mem: QuantMemory) -> str:
    kind = "NF4, 4 bits + an fp32 scale per 64 weights" if mem.quant == "int4" else "LLM.int8(), fp32 scale per row"
    full = mem.llm_unquantized_bytes + mem.other_bytes
    lines = [
        f"{mem.name} with the LLM in {mem.quant} (bitsandbytes {kind}); embeddings, norms, output layer, "
        f"encoders and bridge in {mem.dtype}:",
        f"  LLM weights          {_gib(mem.llm_bytes)} GiB  (unquantized {_gib(mem.llm_unquantized_bytes)} GiB)",
        f"  encoders and bridge  {_gib(mem.other_bytes)} GiB",
        f"  total weights        {_gib(mem.total_bytes)} GiB = {mem.total_bytes / 1e9:.2f} GB  "
        f"(all in {mem.dtype}: {_gib(full)} GiB = {full / 1e9:.2f} GB)",
    ]
    if mem.published_gb:
        pub = mem.published_gb
        lines.append(f"  published for VisualGLM-6B (GPU memory, weights + activations): INT4 at least "
                     f"{pub['int4']:g} GB, FP16 about {pub['fp16']:g} GB")
    return "\n".join(lines)
