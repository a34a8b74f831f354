"""Quantize the LLM with bitsandbytes: int8 (LLM.int8(), per-row scales) or int4 (NF4, per-64-block absmax).

Like VisualGLM-6B ("ViT 量化时误差较大": the error is larger when the ViT is quantized), only the language
model is quantized: `quantize_llm` takes the LLM module alone, and the encoders, Q-Formers and projections
stay in the model's dtype. Embeddings, norms, biases and the output layer (`lm_head` / ChatGLM's
`output_layer`) are not `nn.Linear` weights bitsandbytes quantizes, or are skipped, so they stay in the
compute dtype too.

Two routes, same result:
- `quantize_llm(llm, "int4")` replaces the `nn.Linear` layers of any LLM module in place (our GLM, a
  native ChatGLM-6B module, a loaded transformers model), one layer at a time, so peak memory stays at
  the unquantized model's size.
- `bnb_config("int4")` is the `transformers.BitsAndBytesConfig` that `mm.llm.load_llm(path, quant=...)`
  passes to `from_pretrained`, which quantizes while loading. bitsandbytes >= 0.48 has a CPU backend, and
  transformers accepts it on CPU.

`estimate_bytes` gives the memory the quantized weights will take from shapes alone (the meta device
is enough), `quantized_bytes` measures a real model's weights.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from mm.errors import InputError

if TYPE_CHECKING:
    from transformers import BitsAndBytesConfig

logger = logging.getLogger(__name__)

QuantName = Literal["int8", "int4"]
QUANTS: tuple[str, ...] = ("int8", "int4")
# Output projections stay in the compute dtype (transformers' bnb integration skips lm_head the same way):
# quantizing the layer that produces the logits costs the most accuracy for the least memory.
DEFAULT_SKIP: tuple[str, ...] = ("lm_head", "output_layer")
NF4_BLOCKSIZE = 64  # weights per absmax scale in int4 (bitsandbytes' default blocksize)
INT8_THRESHOLD = 6.0  # LLM.int8() outlier threshold: activation columns above it run in fp16 (bnb/transformers default)
# bitsandbytes' CPU 4-bit kernel repacks weights in tiles of 32 output rows and reads absmax per block of
# inputs; layers of other shapes are left unquantized so they work on every backend.
_INT4_ROW_TILE = 32


def check_quant(quant: str) -> QuantName:
    if quant not in QUANTS:
        raise InputError(f"unknown quantization {quant!r}: use one of {', '.join(QUANTS)}")
    return quant  # type: ignore[return-value]


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def _bnb() -> Any:
    """Import bitsandbytes, or say how to install it.

    Its CPU backend logs at import that the optional `kernels` package (a fused 4-bit GEMM fetched from
    the Hugging Face hub) is missing; the built-in CPU kernel it falls back to works, so that line is
    silenced for the import. LLM.int8() also logs on *every* forward call that fp32/bf16 inputs are cast
    to fp16 (how LLM.int8() works); that one message is filtered out of its logger for good, or a chat
    would print it for every layer of every token.
    """
    quiet = logging.getLogger("bitsandbytes.backends.cpu.ops")
    was = quiet.disabled
    quiet.disabled = True
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise InputError(
            "quantization needs bitsandbytes: pip install 'bitsandbytes>=0.48,<1' (0.48+ runs on CPU too)"
        ) from None
    finally:
        quiet.disabled = was
    matmul_log = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _DropMessage) for f in matmul_log.filters):
        matmul_log.addFilter(_DropMessage("MatMul8bitLt: inputs will be cast"))
    return bnb


def bnb_config(quant: str, compute_dtype: torch.dtype = torch.bfloat16, *,
               skip: tuple[str, ...] = DEFAULT_SKIP) -> BitsAndBytesConfig:
    """The transformers `BitsAndBytesConfig` that quantizes like `quantize_llm` (for `from_pretrained`)."""
    quant = check_quant(quant)
    _bnb()
    from transformers import BitsAndBytesConfig

    if quant == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=INT8_THRESHOLD,
                                  llm_int8_skip_modules=list(skip))
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype,
                              bnb_4bit_use_double_quant=False, llm_int8_skip_modules=list(skip))


def _is_bnb(module: nn.Module) -> bool:
    return type(module).__module__.startswith("bitsandbytes")


def _fits(quant: QuantName, out_features: int, in_features: int) -> bool:
    if quant == "int8":
        return True
    return out_features % _INT4_ROW_TILE == 0 and in_features % NF4_BLOCKSIZE == 0


def _targets(llm: nn.Module, quant: QuantName, skip: tuple[str, ...]) -> list[str]:
    """Names of the `nn.Linear` layers to quantize: not skipped, not LoRA adapters, not already quantized."""
    names = []
    for name, m in llm.named_modules():
        if not isinstance(m, nn.Linear) or _is_bnb(m):
            continue
        parts = name.split(".")
        if any(p in skip or p.startswith("lora_") for p in parts):
            continue
        if not _fits(quant, m.out_features, m.in_features):
            logger.info("%s (%d x %d) stays unquantized: int4 needs rows in multiples of %d and inputs of %d",
                        name, m.out_features, m.in_features, _INT4_ROW_TILE, NF4_BLOCKSIZE)
            continue
        names.append(name)
    return names


def _quantized_linear(old: nn.Linear, quant: QuantName, compute_dtype: torch.dtype, bnb: Any) -> nn.Module:
    weight = old.weight.detach()
    bias = old.bias is not None
    with torch.device("meta"):  # no full-size scratch weights: the real ones come from `old`
        if quant == "int8":
            new = bnb.nn.Linear8bitLt(old.in_features, old.out_features, bias=bias, has_fp16_weights=False,
                                      threshold=INT8_THRESHOLD)
        else:
            new = bnb.nn.Linear4bit(old.in_features, old.out_features, bias=bias, compute_dtype=compute_dtype,
                                    compress_statistics=False, quant_type="nf4")
    if quant == "int8":
        # Quantized here rather than by Int8Params.to(), which only quantizes weights coming from the CPU.
        cb, scb, _ = bnb.functional.int8_vectorwise_quant(weight.to(torch.float16))  # (O, I) int8, (O,) fp32
        new.weight = bnb.nn.Int8Params(cb, requires_grad=False, has_fp16_weights=False, CB=cb, SCB=scb)
    else:
        param = bnb.nn.Params4bit(weight, requires_grad=False, compress_statistics=False, quant_type="nf4",
                                  blocksize=NF4_BLOCKSIZE, module=new)
        new.weight = param.to(weight.device)  # moving a Params4bit to a real device quantizes it
    if bias:
        new.bias = nn.Parameter(old.bias.detach(), requires_grad=False)
    new.train(old.training)
    return new


def quantize_llm(llm: nn.Module, quant: QuantName, *, compute_dtype: torch.dtype = torch.bfloat16,
                 skip: tuple[str, ...] = DEFAULT_SKIP) -> nn.Module:
    """Replace the LLM's `nn.Linear` layers in place with bitsandbytes int8 / NF4 layers; returns `llm`.

    Load the weights first (a module on the meta device has nothing to quantize). Layers whose dotted name
    has a part in `skip` keep their precision, as do LoRA adapter layers. The int4 layers compute in
    `compute_dtype`; int8 layers compute in fp16 internally and return the input's dtype. Moving the
    model afterwards (`.to(device)`, `.to(dtype)`) keeps the quantized weights as they are.
    """
    quant = check_quant(quant)
    bnb = _bnb()
    names = _targets(llm, quant, skip)
    for name in names:  # names, not modules: holding the old layers would keep their weights alive
        parent_name, _, child = name.rpartition(".")
        parent = llm.get_submodule(parent_name)
        old = getattr(parent, child)
        if old.weight.device.type == "meta":
            raise ValueError(f"{name}: the weights are on the meta device; load them before quantizing")
        setattr(parent, child, _quantized_linear(old, quant, compute_dtype, bnb))
        del old
    logger.info("quantized %d linear layers to %s", len(names), quant)
    return llm


def _tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def quantized_bytes(module: nn.Module) -> int:
    """Bytes the module's weights take as stored: parameters, buffers and bitsandbytes' quantization
    statistics (int4 absmax, int8 row scales), each shared tensor counted once. Works on meta modules."""
    seen: set[Any] = set()
    total = 0

    def add(t: Any) -> None:
        nonlocal total
        if not isinstance(t, torch.Tensor):
            return
        key = id(t) if t.device.type == "meta" else (t.device, t.untyped_storage().data_ptr(), t.dtype, t.numel())
        if key not in seen:
            seen.add(key)
            total += _tensor_bytes(t)

    for t in [*module.parameters(), *module.buffers()]:
        add(t)
        state = getattr(t, "quant_state", None)  # Params4bit
        while state is not None:
            add(state.absmax)
            add(state.code)
            add(getattr(state, "offset", None))
            state = getattr(state, "state2", None)  # nested (double-quantized) absmax
        add(getattr(t, "SCB", None))  # Int8Params
    for m in module.modules():
        lt_state = getattr(m, "state", None)  # Linear8bitLt moves CB/SCB here after the first forward
        add(getattr(lt_state, "CB", None))
        add(getattr(lt_state, "SCB", None))
    return total


def linear_bytes(out_features: int, in_features: int, quant: QuantName | None, dtype: torch.dtype) -> int:
    """Bytes of one Linear weight (bias excluded) once quantized as `quantize_llm` does."""
    n = out_features * in_features
    elt = torch.empty((), dtype=dtype).element_size()
    if quant is None or not _fits(quant, out_features, in_features):
        return n * elt
    if quant == "int8":
        return n + 4 * out_features  # int8 weights + one fp32 scale per output row
    blocks = math.ceil(n / NF4_BLOCKSIZE)
    return math.ceil(n / 2) + 4 * blocks + 4 * 16  # packed 4-bit + fp32 absmax per block + NF4 code table


def estimate_bytes_from_shapes(linear_shapes: Iterable[tuple[int, int]], other_params: int,
                               quant: QuantName | None, dtype: torch.dtype) -> int:
    """Weight bytes of an LLM with these quantizable Linear weights (out, in) and `other_params` more
    parameters (embeddings, norms, biases, skipped layers), which stay in `dtype`."""
    elt = torch.empty((), dtype=dtype).element_size()
    return sum(linear_bytes(o, i, quant, dtype) for o, i in linear_shapes) + other_params * elt


def estimate_bytes(llm: nn.Module, quant: QuantName | None, dtype: torch.dtype = torch.bfloat16, *,
                   skip: tuple[str, ...] = DEFAULT_SKIP) -> int:
    """Weight bytes `llm` (meta device is fine) will take after `quantize_llm(llm, quant)` in `dtype`."""
    if quant is not None:
        quant = check_quant(quant)
    targets = set(_targets(llm, quant, skip)) if quant is not None else set()
    shapes = []
    quantized_ids = set()
    for name in targets:
        w = llm.get_submodule(name).weight
        shapes.append(tuple(w.shape))
        quantized_ids.add(id(w))
    others = sum(p.numel() for p in llm.parameters() if id(p) not in quantized_ids)
    others += sum(b.numel() for b in llm.buffers() if b.is_floating_point())
    return estimate_bytes_from_shapes(shapes, others, quant, dtype)
