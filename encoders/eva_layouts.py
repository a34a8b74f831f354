"""Published layouts of the EVA ViT-g/14 tower (BLIP-2, VisualGLM-6B), mapped to timm `Eva` names.

Pure functions on state dicts; no files, no modules. Shape letters: D width, N tokens (CLS + patches).

The layouts hold the same pre-norm ViT (EVA-CLIP-g, 1408 wide, 16 heads, GELU MLP 6144):
- timm `eva_giant_patch14_*` and LAVIS `eva_vit_g.pth` (lavis/models/eva_vit.py, 39 blocks, no final norm)
  share names: `cls_token`, `pos_embed`, `patch_embed.proj`, `blocks.N.{norm1, attn.qkv, attn.q_bias,
  attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2}`; a BLIP-2 checkpoint keeps them under `visual_encoder.`.
- SwissArmyTransformer (VisualGLM-6B `model/blip2.py` EVAViT, under `mixins.eva.model.vit.`; the HF port
  under `image_encoder.vit.`): the CLS token is the 1-word vocabulary `transformer.word_embeddings`,
  positions `transformer.position_embeddings` (N, D), `mixins.patch_embedding.proj`, pre-norm layers
  `transformer.layers.N.{input_layernorm, attention.query_key_value ([q|k|v] rows), attention.dense,
  post_attention_layernorm, mlp.dense_h_to_4h, mlp.dense_4h_to_h}`, and `mixins.cls.ln_vision`.
- transformers BLIP-2 `vision_model.`: `embeddings.{class_embedding, position_embedding, patch_embedding}`,
  `encoder.layers.N.{layer_norm1, self_attn.qkv, self_attn.projection, layer_norm2, mlp.fc1, mlp.fc2}`,
  `post_layernorm`.

Two tensors do not reach the tower, on purpose:
- The key third of a full qkv bias (SAT, transformers). A key bias adds q·b_k to every score of a query's
  row, and softmax ignores a constant per row, so it changes nothing (LAVIS and timm store none).
- BLIP-2's `ln_vision` (SAT `mixins.cls.ln_vision`, transformers `post_layernorm`): in this project it is
  the Q-Former's `input_norm` (see `bridge.layouts`), so the tower returns un-normalised tokens.
Names a conversion does not know pass through unchanged, so strict loading reports them by their own name.
"""

from __future__ import annotations

import re
from typing import Literal

import torch

from encoders.weights import rename_first

Layout = Literal["timm", "sat", "hf-blip2"]

# Where whole-model checkpoints keep the tower, tried in order: VisualGLM SAT release, VisualGLM HF port,
# transformers BLIP-2, LAVIS BLIP-2, open_clip (timm trunk), open_clip.
TOWER_PREFIXES = ("mixins.eva.model.vit.", "image_encoder.vit.", "vision_model.", "visual_encoder.",
                  "visual.trunk.", "visual.")

_SAT_RENAMES = [
    (r"^mixins\.patch_embedding\.proj\.", "patch_embed.proj."),
    (r"^transformer\.layers\.(\d+)\.input_layernorm\.", r"blocks.\1.norm1."),
    (r"^transformer\.layers\.(\d+)\.attention\.query_key_value\.weight$", r"blocks.\1.attn.qkv.weight"),
    (r"^transformer\.layers\.(\d+)\.attention\.dense\.", r"blocks.\1.attn.proj."),
    (r"^transformer\.layers\.(\d+)\.post_attention_layernorm\.", r"blocks.\1.norm2."),
    (r"^transformer\.layers\.(\d+)\.mlp\.dense_h_to_4h\.", r"blocks.\1.mlp.fc1."),
    (r"^transformer\.layers\.(\d+)\.mlp\.dense_4h_to_h\.", r"blocks.\1.mlp.fc2."),
    (r"^transformer\.final_layernorm\.", "norm."),  # use_final_layernorm=True variants; beyond BLIP-2's layer
    (r"^mixins\.cls\.classifier\.", "head."),  # a plain SAT ViTModel's classifier
]
_SAT_QKV_BIAS = re.compile(r"^transformer\.layers\.(\d+)\.attention\.query_key_value\.bias$")
_SAT_LN_VISION = "mixins.cls.ln_vision."

_HF_RENAMES = [
    (r"^embeddings\.patch_embedding\.", "patch_embed.proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm1\.", r"blocks.\1.norm1."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.qkv\.weight$", r"blocks.\1.attn.qkv.weight"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.([qv])_bias$", r"blocks.\1.attn.\2_bias"),  # older ports
    (r"^encoder\.layers\.(\d+)\.self_attn\.projection\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm2\.", r"blocks.\1.norm2."),
    (r"^encoder\.layers\.(\d+)\.mlp\.fc([12])\.", r"blocks.\1.mlp.fc\2."),
]
_HF_QKV_BIAS = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.qkv\.bias$")
_HF_POST_LAYERNORM = "post_layernorm."


def tower_subtree(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """The tower's tensors of a whole-model checkpoint (prefix removed) and the prefix ('' if none).

    Tensors outside the prefix belong to other components (Q-Former, LLM) and are not returned."""
    for prefix in TOWER_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, prefix
    return dict(state), ""


def eva_layout(state: dict[str, torch.Tensor]) -> Layout:
    """Which layout a tower state dict (prefix removed) is in; LAVIS is timm's."""
    if any(k.startswith(("transformer.layers.", "mixins.patch_embedding.")) for k in state):
        return "sat"
    if any(k.startswith(("embeddings.class_embedding", "encoder.layers.")) for k in state):
        return "hf-blip2"
    return "timm"


def _split_qkv_bias(out: dict[str, torch.Tensor], block: str, bias: torch.Tensor) -> None:
    """A full [q|k|v] bias (3D,) -> timm's q_bias and v_bias; the key third is dropped (see module doc)."""
    q, _, v = bias.chunk(3)
    out[f"blocks.{block}.attn.q_bias"] = q
    out[f"blocks.{block}.attn.v_bias"] = v


def eva_state_from_lavis(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LAVIS `eva_vit_g.pth` (bare, or under `visual_encoder.` in a BLIP-2 checkpoint) -> timm names.

    LAVIS's VisionTransformer uses timm's names already, so only the prefix goes (and with it every
    tensor of other components)."""
    prefix = "visual_encoder."
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def eva_state_from_sat(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SAT EVAViT (VisualGLM-6B) -> timm names; takes a whole VisualGLM state dict or the ViT's own.

    `mixins.cls.ln_vision` is left out (it is the bridge's `input_norm`), as is the key third of the qkv
    bias. `transformer.final_layernorm` becomes `norm.` (beyond BLIP-2's penultimate layer)."""
    for prefix in ("mixins.eva.model.vit.", "image_encoder.vit."):
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_SAT_LN_VISION):
            continue
        if key == "transformer.word_embeddings.weight":  # (1, D): the CLS token is the 1-word vocabulary
            out["cls_token"] = value.reshape(1, 1, -1)
        elif key == "transformer.position_embeddings.weight":  # (N, D)
            out["pos_embed"] = value.unsqueeze(0)  # (1, N, D)
        elif m := _SAT_QKV_BIAS.match(key):
            _split_qkv_bias(out, m.group(1), value)
        else:
            out[rename_first(key, _SAT_RENAMES) or key] = value
    return out


def eva_state_from_hf_blip2(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers `Blip2VisionModel` (bare, or under `vision_model.`) -> timm names.

    `post_layernorm` (BLIP-2's ln_vision) is left out: it is the bridge's `input_norm`."""
    prefix = "vision_model."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_HF_POST_LAYERNORM):
            continue
        if key == "embeddings.class_embedding":  # (1, 1, D)
            out["cls_token"] = value
        elif key == "embeddings.position_embedding":  # (1, N, D)
            out["pos_embed"] = value
        elif m := _HF_QKV_BIAS.match(key):
            _split_qkv_bias(out, m.group(1), value)
        else:
            out[rename_first(key, _HF_RENAMES) or key] = value
    return out


def is_bridge_tensor(layout: Layout, key: str) -> bool:
    """True for the tower-side tensor that belongs to the bridge (ln_vision) in a tower subtree."""
    return (layout == "sat" and key.startswith(_SAT_LN_VISION)) or (
        layout == "hf-blip2" and key.startswith(_HF_POST_LAYERNORM))
