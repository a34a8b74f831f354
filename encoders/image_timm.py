"""Image towers from timm (EVA ViT-g/14 as BLIP-2 and VisualGLM use it, and the tiny ViT).

Shape letters: B batch, N tokens (prefix tokens, then patches), D width.

A tower returns the tokens after block `layer`, counted in the published tower (EVA ViT-g: 40 blocks,
BLIP-2 reads block 38, `layer=-2`). With `prune=True` only the blocks up to that one are built, with no
final norm or head, so BLIP-2's 39-block checkpoints fill it exactly; a longer checkpoint loads too, its
tensors beyond the chosen block left out (logged). Checkpoint layouts: see `encoders.eva_layouts`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import timm
import torch

from encoders.eva_layouts import (
    eva_layout,
    eva_state_from_hf_blip2,
    eva_state_from_sat,
    is_bridge_tensor,
    tower_subtree,
)
from encoders.image_base import ImageEncoder
from encoders.registry import register_encoder
from encoders.weights import strip_prefix

logger = logging.getLogger(__name__)

# Modules after the last block: none of them shapes the returned tokens.
_AFTER_BLOCKS = ("norm.", "fc_norm.", "head.", "attn_pool.")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def _published_depth(model_name: str, model_kwargs: dict[str, Any]) -> int:
    """Blocks of the named architecture, read from a copy built on the meta device (no memory)."""
    with torch.device("meta"):
        return len(timm.create_model(model_name, pretrained=False, num_classes=0, **model_kwargs).blocks)


class TimmImageEncoder(ImageEncoder):
    """A timm ViT-family model; returns prefix + patch tokens after block `layer`, without final norm."""

    def __init__(self, model_name: str, layer: int = -1, prune: bool = True, **model_kwargs: Any) -> None:
        super().__init__()
        self.model_name = model_name
        depth = model_kwargs.pop("depth", None) or _published_depth(model_name, model_kwargs)
        self.num_layers = depth  # of the published tower; `layer` counts in it
        self.layer = layer
        self._index = self._block_index(layer, depth)
        built = self._index + 1 if prune else depth
        self.model = timm.create_model(model_name, pretrained=False, num_classes=0, depth=built, **model_kwargs)
        if prune:
            self.model.prune_intermediate_layers([self._index], prune_norm=True, prune_head=True)
        self.width = self.model.num_features
        self.image_size = self.model.patch_embed.img_size[0]
        self.num_tokens = self.model.patch_embed.num_patches + self.model.num_prefix_tokens
        self.freeze()

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        (patches, prefix), = self.model.forward_intermediates(
            pixels, indices=[self._index], return_prefix_tokens=True, norm=False, stop_early=True,
            output_fmt="NLC", intermediates_only=True,
        )
        return torch.cat([prefix, patches], dim=1)  # (B, N, D)

    def _beyond(self, key: str, own: dict[str, torch.Tensor]) -> bool:
        """A checkpoint tensor of a block after the chosen one, or of the final norm / head."""
        if key in own:
            return False
        m = _BLOCK.match(key)
        if m:
            return int(m.group(1)) >= len(self.model.blocks)
        return key.startswith(_AFTER_BLOCKS)

    def convert_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Ours (`model.*`), timm, LAVIS (`visual_encoder.` or bare), SAT VisualGLM (`mixins.eva.model.vit.`,
        `image_encoder.vit.` or bare), transformers BLIP-2 (`vision_model.`) and open_clip (`visual.trunk.`).

        Tensors of other components (outside the tower's prefix), BLIP-2's ln_vision (the bridge's) and
        tensors beyond the chosen block are left out and logged; every other tensor goes to strict loading."""
        state = strip_prefix(state, ("module.",))
        if any(k.startswith("model.") for k in state):
            return state
        tower, prefix = tower_subtree(state)
        if len(tower) < len(state):
            logger.info("image tower: %d tensors outside `%s` belong to other components and were left out",
                        len(state) - len(tower), prefix)
        layout = eva_layout(tower)
        bridge = [k for k in tower if is_bridge_tensor(layout, k)]
        if bridge:
            logger.info("image tower: %s is BLIP-2's ln_vision, the bridge's input_norm; left out", bridge)
        if layout == "sat":
            tower = eva_state_from_sat(tower)
        elif layout == "hf-blip2":
            tower = eva_state_from_hf_blip2(tower)
        else:  # timm names (LAVIS included): timm's own filter converts older variants of its family
            module = __import__(type(self.model).__module__, fromlist=["checkpoint_filter_fn"])
            filter_fn = getattr(module, "checkpoint_filter_fn", None)
            if filter_fn is not None:
                tower = filter_fn(tower, self.model)
        own = self.model.state_dict()
        beyond = sorted(k for k in tower if self._beyond(k, own))
        if beyond:
            logger.info("image tower: %d tensors beyond block %d (of %d) are not part of this tower, e.g. %s",
                        len(beyond), self._index, self.num_layers, beyond[:3])
        return {"model." + k: v for k, v in tower.items() if k not in beyond}


def _register(name: str, model_name: str, **defaults: Any) -> None:
    def build(**overrides: Any) -> TimmImageEncoder:
        kwargs = {**defaults, **overrides}
        return TimmImageEncoder(model_name, **kwargs)

    build.modality = "image"  # type: ignore[attr-defined]
    build.__doc__ = f"timm `{model_name}` tower: {defaults}"
    register_encoder(name)(build)


# BLIP-2 / VisualGLM: EVA ViT-g/14 at 224 px, penultimate block (39 of 40), 257 tokens of width 1408. Only
# the 39 blocks it runs are built, as in LAVIS's `create_eva_vit_g` and VisualGLM's `eva_args`.
_register("eva-vit-g-14", "eva_giant_patch14_224", layer=-2, depth=40)
# The embedded default's tower: 64 px, 8 px patches -> 64 patches + CLS, width 128. Built whole: the shipped
# weights include its final norm.
_register("tiny-vit", "vit_tiny_patch16_224", layer=-1, prune=False, img_size=64, patch_size=8, embed_dim=128,
          depth=4, num_heads=4, mlp_ratio=4.0)
