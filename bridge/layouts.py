"""Bridge checkpoints of BLIP-2 and VisualGLM-6B -> this project's Q-Former and projector names.

Shape letters: Q queries, D Q-Former width, De encoder width, E LLM width.

`bridge_state_from_checkpoint` is the one dispatch: it recognises the layout, converts the image bridge
(Q-Former with BLIP-2's ln_vision as `input_norm`, and the projection into the LLM) and accounts for
every other tensor, either as belonging elsewhere on purpose (`ignored`, with the reason) or as unknown
(`unused`: the caller's "unexpected").

VisualGLM-6B's Q-Former is a SwissArmyTransformer (SAT) `BaseModel` (model/blip2.py `QFormer`,
model_config.json `qformer_args`: 12 layers, 768 wide, vocab 32, layernorm_order "post", is_decoder on even
layers, cross_attn_hidden_size 1408, eps 1e-12, exact GELU). Its layer i (sat transformer_defaults
`layer_forward_default`, post order) computes
    a = input_layernorm(h); h = a + dense(attn(a)); m = post_attention_layernorm(h)
    [cross layers] h = m + dense(cross(m, enc)); m = post_cross_attention_layernorm(h)
    out = m + mlp(m)                      # no norm at the end of the layer
and `final_layernorm` follows the last layer. That is BERT's post-norm layer with each layer's output
LayerNorm moved to the start of the next one: BERT's embeddings LayerNorm (on the queries) is
`layers.0.input_layernorm`, layer i's output LayerNorm is `layers.{i+1}.input_layernorm`, the last one
`final_layernorm`. The queries are the 32-word vocabulary `transformer.word_embeddings` (no position
embeddings). `query_key_value` packs rows [q|k|v] and `cross_attention.key_value` rows [k|v] (SAT's
`split_tensor_along_last_dim`, one model-parallel rank). ln_vision is the ViT's `mixins.cls.ln_vision`
(EVAViT's final_forward), the projection `glm_proj` (Linear 768 -> 4096).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import torch

from bridge.names import BRIDGE_PREFIXES, PROJECTORS, QFORMERS, is_bridge_key
from bridge.qformer import QFormerConfig, blip2_qformer_name
from mm.errors import InputError

Layout = Literal["ours", "visualglm-sat", "visualglm-hf", "visualglm-blip2", "lavis", "hf-blip2"]

IMAGE_QFORMER = f"{QFORMERS}.image."
IMAGE_PROJECTOR = f"{PROJECTORS}.image.net."

# Why a tensor of a foreign checkpoint is not part of the bridge.
IMAGE_ENCODER = "image encoder"
LLM = "LLM"
TEXT_BRANCH = "Q-Former text branch (text embeddings, text feed-forward, MLM / contrastive / matching heads)"
UNUSED_BY_QFORMER = "not read by VisualGLM's QFormer (its position_embedding_forward returns None)"

_SAT_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.(.+)$")
_SAT_PARTS = {  # SAT layer sub-module -> ours; input_layernorm, query_key_value and key_value are special
    "attention.dense.": "self_attn.out.",
    "post_attention_layernorm.": "self_attn.norm.",
    "cross_attention.query.": "cross_attn.query.",
    "cross_attention.dense.": "cross_attn.out.",
    "post_cross_attention_layernorm.": "cross_attn.norm.",
    "mlp.dense_h_to_4h.": "ffn.fc1.",
    "mlp.dense_4h_to_h.": "ffn.fc2.",
}
_BLIP2_PROJECTION = re.compile(r"^(?:llm_proj|opt_proj|t5_proj|language_projection)\.(weight|bias)$")
_BLIP2_TEXT = re.compile(
    r"^(?:Qformer\.bert\.|qformer\.)(?:embeddings\.|encoder\.layer\.\d+\.(?:intermediate|output)\.)"
    r"|^Qformer\.cls\.|^(?:vision_proj|text_proj|itm_head|vision_projection|text_projection|embeddings)\.|^temp$"
)
_BLIP2_IMAGE = re.compile(r"^(?:visual_encoder|vision_model)\.")
_BLIP2_LLM = re.compile(r"^(?:opt_model|t5_model|llm_model|language_model)\.")
_OURS_OTHER = {"encoders.image.": IMAGE_ENCODER, "encoders.audio.": "audio encoder", "llm.": LLM}


@dataclass
class BridgeWeights:
    """The image bridge of a checkpoint in our names, and what became of every other tensor."""

    state: dict[str, torch.Tensor]  # `qformers.image.*`, `projectors.image.net.*` (ours: all qformers./projectors.)
    layout: Layout  # the recognised layout
    ignored: dict[str, str] = field(default_factory=dict)  # source name -> where it belongs (left out on purpose)
    unused: list[str] = field(default_factory=list)  # source names neither converted nor known: unexpected


def _sat_qformer(state: dict[str, torch.Tensor],
                 ) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """SAT Q-Former (`transformer.*`) -> (our QFormer names, names ignored on purpose, unknown names)."""
    layers = {int(m.group(1)) for k in state if (m := _SAT_LAYER.match(k))}
    last = max(layers, default=0)
    out: dict[str, torch.Tensor] = {}
    ignored: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in state.items():
        m = _SAT_LAYER.match(key)
        suffix = key.rsplit(".", 1)[-1]
        if key == "transformer.word_embeddings.weight":  # (Q, D): the queries are the Q-word vocabulary
            out["query_tokens"] = value.unsqueeze(0)  # (1, Q, D)
        elif key.startswith("transformer.position_embeddings."):
            ignored[key] = UNUSED_BY_QFORMER
        elif suffix not in ("weight", "bias"):
            unknown.append(key)
        elif key.startswith("transformer.final_layernorm."):
            out[f"layers.{last}.ffn.norm.{suffix}"] = value
        elif m is None:
            unknown.append(key)
        else:
            i, rest = int(m.group(1)), m.group(2)
            part = rest[: -len(suffix)]
            if part == "input_layernorm.":
                out[("query_norm." if i == 0 else f"layers.{i - 1}.ffn.norm.") + suffix] = value
            elif part == "attention.query_key_value.":
                for name, t in zip(("query", "key", "value"), value.chunk(3, dim=0)):  # rows [q|k|v]
                    out[f"layers.{i}.self_attn.{name}.{suffix}"] = t
            elif part == "cross_attention.key_value.":
                for name, t in zip(("key", "value"), value.chunk(2, dim=0)):  # rows [k|v]
                    out[f"layers.{i}.cross_attn.{name}.{suffix}"] = t
            elif part in _SAT_PARTS:
                out[f"layers.{i}.{_SAT_PARTS[part]}{suffix}"] = value
            else:
                unknown.append(key)
    return out, ignored, unknown


def qformer_state_from_sat(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """VisualGLM's SAT Q-Former -> our QFormer names (see the module docstring for the mapping).

    Takes the Q-Former's own state dict (`transformer.*`) or a whole VisualGLM one (SAT release:
    `mixins.eva.model.qformer.*`; HF port: `image_encoder.qformer.*`), where ln_vision
    (`...vit.mixins.cls.ln_vision`) becomes `input_norm`. Tensors with no counterpart are left out;
    `bridge_state_from_checkpoint` accounts for each of them.
    """
    for prefix in ("mixins.eva.model.", "image_encoder."):
        if any(k.startswith(prefix + "qformer.") for k in state):
            weights = bridge_state_from_checkpoint(state)
            return {k[len(IMAGE_QFORMER):]: v for k, v in weights.state.items() if k.startswith(IMAGE_QFORMER)}
    return _sat_qformer(state)[0]


def projector_state_from_visualglm(state: dict[str, torch.Tensor], prefix: str = "mixins.eva.model.",
                                   ) -> dict[str, torch.Tensor]:
    """VisualGLM's `glm_proj` (Linear D -> E) -> our linear `Projector` names (`net.weight`, `net.bias`).

    `prefix` is where BLIP2 sits: `mixins.eva.model.` (SAT release), `image_encoder.` (HF port), `''`."""
    return {f"net.{s}": state[f"{prefix}glm_proj.{s}"] for s in ("weight", "bias") if f"{prefix}glm_proj.{s}" in state}


def bridge_layout(state: dict[str, torch.Tensor]) -> Layout:
    """Which bridge layout a checkpoint is in; InputError if none."""
    keys = list(state)

    def has(*prefixes: str) -> bool:
        return any(k.startswith(prefixes) for k in keys)

    if has(*BRIDGE_PREFIXES):
        return "ours"
    if has("mixins.eva.model."):
        return "visualglm-sat"
    if has("image_encoder.qformer.", "image_encoder.vit.", "image_encoder.glm_proj."):
        return "visualglm-hf"
    if has("qformer.transformer."):
        return "visualglm-blip2"  # a saved VisualGLM `BLIP2` module: vit., qformer., glm_proj.
    if has("Qformer.bert."):
        return "lavis"
    if has("qformer.encoder.", "qformer.layernorm."):
        return "hf-blip2"
    raise InputError(
        f"no Q-Former weights found (neither ours, VisualGLM-6B, LAVIS BLIP-2 nor transformers BLIP-2); "
        f"the checkpoint starts with: {', '.join(sorted(keys)[:5])}"
    )


def _ours(state: dict[str, torch.Tensor]) -> BridgeWeights:
    weights = BridgeWeights({k: v for k, v in state.items() if is_bridge_key(k)}, "ours")
    for key in state:
        if key in weights.state:
            continue
        reason = next((r for p, r in _OURS_OTHER.items() if key.startswith(p)), None)
        if reason is None:
            weights.unused.append(key)
        else:
            weights.ignored[key] = reason
    return weights


def _visualglm(state: dict[str, torch.Tensor], layout: Layout) -> BridgeWeights:
    prefix = {"visualglm-sat": "mixins.eva.model.", "visualglm-hf": "image_encoder.", "visualglm-blip2": ""}[layout]
    # Everything outside the image mixin (SAT: `mixins.eva.`) or module (HF: `image_encoder.`) is the LLM's.
    owner = {"visualglm-sat": "mixins.eva.", "visualglm-hf": "image_encoder.", "visualglm-blip2": ""}[layout]
    q_prefix = prefix + "qformer."
    qformer, ignored, unknown = _sat_qformer(
        {k[len(q_prefix):]: v for k, v in state.items() if k.startswith(q_prefix)})
    weights = BridgeWeights({IMAGE_QFORMER + k: v for k, v in qformer.items()}, layout,
                            {q_prefix + k: r for k, r in ignored.items()}, [q_prefix + k for k in unknown])
    used: set[str] = set()
    for suffix in ("weight", "bias"):
        for source, target in ((f"{prefix}vit.mixins.cls.ln_vision.{suffix}", f"{IMAGE_QFORMER}input_norm.{suffix}"),
                               (f"{prefix}glm_proj.{suffix}", f"{IMAGE_PROJECTOR}{suffix}")):
            if source in state:
                weights.state[target] = state[source]
                used.add(source)
    for key in state:
        if key.startswith(q_prefix) or key in used:
            continue
        if key.startswith(prefix + "vit."):
            weights.ignored[key] = IMAGE_ENCODER
        elif not key.startswith(owner):
            weights.ignored[key] = LLM
        else:
            weights.unused.append(key)
    return weights


def _blip2(state: dict[str, torch.Tensor], layout: Layout) -> BridgeWeights:
    weights = BridgeWeights({}, layout)
    for key, value in state.items():
        new = blip2_qformer_name(key)
        if new is not None:
            weights.state[IMAGE_QFORMER + new] = value
        elif m := _BLIP2_PROJECTION.match(key):
            weights.state[IMAGE_PROJECTOR + m.group(1)] = value
        elif _BLIP2_TEXT.match(key):
            weights.ignored[key] = TEXT_BRANCH
        elif _BLIP2_IMAGE.match(key):
            weights.ignored[key] = IMAGE_ENCODER
        elif _BLIP2_LLM.match(key):
            weights.ignored[key] = LLM
        else:
            weights.unused.append(key)
    return weights


def bridge_state_from_checkpoint(state: dict[str, torch.Tensor]) -> BridgeWeights:
    """The image bridge of any supported checkpoint, in our names, with every tensor accounted for.

    Layouts: ours (`qformers.*`, `projectors.*`), VisualGLM-6B SAT (`mixins.eva.model.{qformer, vit.mixins.
    cls.ln_vision, glm_proj}`), its HF port (the same under `image_encoder.`), LAVIS BLIP-2 (`Qformer.bert.*`,
    `query_tokens`, `ln_vision`, `llm_proj`/`opt_proj`/`t5_proj`) and transformers BLIP-2 (`qformer.*`,
    `query_tokens`, `vision_model.post_layernorm`, `language_projection`). Raises `InputError` when no
    layout is recognised; the caller decides what to do with `unused`.
    """
    layout = bridge_layout(state)
    if layout == "ours":
        return _ours(state)
    if layout.startswith("visualglm"):
        return _visualglm(state, layout)
    return _blip2(state, layout)


def qformer_config_from_state(state: dict[str, torch.Tensor], num_heads: int, **overrides: object,
                              ) -> QFormerConfig:
    """The QFormerConfig whose module `state` (our QFormer names, prefix removed) fills exactly.

    Sizes come from the tensors; the head count is not in them. `overrides` set the other fields
    (e.g. `layer_norm_eps`)."""
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"^layers\.(\d+)\.", k))})
    cross = [i for i in layers if f"layers.{i}.cross_attn.query.weight" in state]
    every = cross[1] - cross[0] if len(cross) > 1 else (len(layers) if cross == [0] else 1)
    if cross != [i for i in layers if i % every == 0]:
        raise InputError(f"cross-attention in layers {cross} is not every k-th layer from 0; not a BLIP-2 Q-Former")
    queries = state["query_tokens"]  # (1, Q, D)
    fields = dict(
        num_queries=queries.shape[1], hidden_size=queries.shape[2], num_layers=len(layers), num_heads=num_heads,
        intermediate_size=state["layers.0.ffn.fc1.weight"].shape[0], cross_attention_every=every,
        encoder_width=state[f"layers.{cross[0]}.cross_attn.key.weight"].shape[1] if cross else queries.shape[2],
        input_norm="input_norm.weight" in state,
    )
    return QFormerConfig(**{**fields, **overrides})  # type: ignore[arg-type]
