"""Image towers from timm (EVA ViT-g/14 as BLIP-2 and VisualGLM use it, and the tiny ViT)."""

from __future__ import annotations

from typing import Any

import timm
import torch

from encoders.image_base import ImageEncoder
from encoders.registry import register_encoder
from encoders.weights import strip_prefix


class TimmImageEncoder(ImageEncoder):
    """A timm ViT-family model; returns prefix + patch tokens after block `layer`, without final norm."""

    def __init__(self, model_name: str, layer: int = -1, **model_kwargs: Any) -> None:
        super().__init__()
        self.model_name = model_name
        self.model = timm.create_model(model_name, pretrained=False, num_classes=0, **model_kwargs)
        self.num_layers = len(self.model.blocks)
        self.layer = layer
        self._index = self._block_index(layer, self.num_layers)
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

    def convert_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accepts timm checkpoints, LAVIS/BLIP-2 (`visual_encoder.`), open_clip (`visual.trunk.`) and ours."""
        state = strip_prefix(state, ("module.",))
        if any(k.startswith("model.") for k in state):
            return state
        for prefix in ("visual_encoder.", "visual.trunk.", "visual."):
            if any(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
                break
        module = type(self.model).__module__
        filter_fn = getattr(__import__(module, fromlist=["checkpoint_filter_fn"]), "checkpoint_filter_fn", None)
        if filter_fn is not None:
            state = filter_fn(state, self.model)
        # Heads and final norms beyond the chosen layer are not part of this tower.
        own = self.model.state_dict()
        return {"model." + k: v for k, v in state.items() if k in own}


def _register(name: str, model_name: str, **defaults: Any) -> None:
    def build(**overrides: Any) -> TimmImageEncoder:
        kwargs = {**defaults, **overrides}
        return TimmImageEncoder(model_name, **kwargs)

    build.modality = "image"  # type: ignore[attr-defined]
    build.__doc__ = f"timm `{model_name}` tower: {defaults}"
    register_encoder(name)(build)


# BLIP-2 / VisualGLM: EVA ViT-g/14 at 224 px, penultimate block (39 of 40), 257 tokens of width 1408.
_register("eva-vit-g-14", "eva_giant_patch14_224", layer=-2)
# The embedded default's tower: 64 px, 8 px patches -> 64 patches + CLS, width 128.
_register("tiny-vit", "vit_tiny_patch16_224", layer=-1, img_size=64, patch_size=8, embed_dim=128,
          depth=4, num_heads=4, mlp_ratio=4.0)
