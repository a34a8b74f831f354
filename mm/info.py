"""Architecture summary built on the meta device: parameters and memory per component, no weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from bridge.projector import Projector, ProjectorConfig
from bridge.qformer import QFormer
from bridge.temporal import TemporalQFormer
from encoders.registry import create_encoder
from mm.config import MMConfig
from mm.llm import build_llm, chatglm_v1_parameters

# Bytes per LLM parameter in each weight format (int8/int4 as weight-only quantisation, scales ignored).
LLM_BYTES = {"fp32": 4.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}


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
            if m == "video":
                image_q = cfg.image_qformer.hidden_size
                t_cfg = dataclasses.replace(cfg.video.temporal, encoder_width=image_q)
                out.append(Component("video temporal Q-Former", _count(TemporalQFormer(t_cfg, cfg.video.max_frames)), True))
                proj = Projector(ProjectorConfig(cfg.projector, t_cfg.hidden_size, cfg.llm.hidden_size))
                out.append(Component("video projection", _count(proj), True))
                continue
            enc_cfg = getattr(cfg, f"{m}_encoder")
            encoder = create_encoder(enc_cfg.name, **enc_cfg.options)
            q_cfg = dataclasses.replace(getattr(cfg, f"{m}_qformer"), encoder_width=encoder.width)
            out.append(Component(f"{m} encoder ({enc_cfg.name})", _count(encoder), False))
            out.append(Component(f"{m} Q-Former", _count(QFormer(q_cfg)), True))
            proj = Projector(ProjectorConfig(cfg.projector, q_cfg.hidden_size, cfg.llm.hidden_size))
            out.append(Component(f"{m} projection", _count(proj), True))
    out.append(Component(f"LLM ({cfg.llm.arch}, {cfg.llm.num_layers} layers)", llm_params, False))
    return out


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f}"


def format_table(cfg: MMConfig) -> str:
    """Text table: params per component and memory for fp32 / bf16 / int8 / int4 LLM weights.

    Encoders and bridges are counted at bf16 in the quantised columns (they are small and usually kept
    in half precision), at fp32 in the fp32 column.
    """
    comps = components(cfg)
    heads = ["component", "params", *[f"{k} GiB" for k in LLM_BYTES]]
    rows = []
    for c in comps:
        is_llm = c.name.startswith("LLM")
        mem = [c.params * (b if is_llm or k == "fp32" else 2.0) for k, b in LLM_BYTES.items()]
        rows.append([c.name + (" *" if c.trainable else ""), f"{c.params / 1e6:,.1f}M", *map(_gib, mem)])
    total = sum(c.params for c in comps)
    totals = []
    for k, b in LLM_BYTES.items():
        totals.append(sum(c.params * (b if c.name.startswith("LLM") or k == "fp32" else 2.0) for c in comps))
    rows.append(["total", f"{total / 1e6:,.1f}M", *map(_gib, totals)])
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    lines = [f"{cfg.name}: parameters and weight memory (* = trained bridge)"]
    for r in [heads, *rows]:
        lines.append("  ".join(r[0].ljust(widths[0]) if i == 0 else r[i].rjust(widths[i]) for i in range(len(r))))
        if r is heads:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
