"""Image towers from open_clip (OpenAI CLIP ViT-L/14 and any open_clip ViT config)."""

from __future__ import annotations

from typing import Any

import open_clip
import torch
from open_clip.model import _build_vision_tower

from encoders.image_base import ImageEncoder
from encoders.registry import register_encoder
from encoders.weights import strip_prefix


class OpenCLIPImageEncoder(ImageEncoder):
    """The vision tower of an open_clip model config; prefix + patch tokens after block `layer`."""

    def __init__(self, config_name: str, layer: int = -2, **vision_overrides: Any) -> None:
        super().__init__()
        cfg = open_clip.get_model_config(config_name)
        if cfg is None:
            raise ValueError(f"open_clip has no model config {config_name!r}")
        vision_cfg = {**cfg["vision_cfg"], **vision_overrides}
        if "timm_model_name" in vision_cfg:
            raise ValueError(f"{config_name!r} is a timm tower in open_clip; register it with image_timm")
        self.config_name = config_name
        self.model = _build_vision_tower(cfg["embed_dim"], vision_cfg)
        self.num_layers = len(self.model.transformer.resblocks)
        self.layer = layer
        self._index = self._block_index(layer, self.num_layers)
        self.width = self.model.transformer.width
        self.image_size = self.model.image_size[0]
        grid = self.model.grid_size
        self.num_tokens = grid[0] * grid[1] + 1
        self.freeze()

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.forward_intermediates(
            pixels, indices=[self._index], stop_early=True, intermediates_only=True, output_fmt="NLC",
            output_extra_tokens=True,
        )
        return torch.cat([out["image_intermediates_prefix"][0], out["image_intermediates"][0]], dim=1)

    def convert_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accepts a full open_clip checkpoint (`visual.*`), a tower-only one, or ours."""
        state = strip_prefix(state, ("module.",))
        if any(k.startswith("model.") for k in state):
            return state
        if any(k.startswith("visual.") for k in state):
            state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
        return {"model." + k: v for k, v in state.items()}


def _register(name: str, config_name: str, **defaults: Any) -> None:
    def build(**overrides: Any) -> OpenCLIPImageEncoder:
        return OpenCLIPImageEncoder(config_name, **{**defaults, **overrides})

    build.modality = "image"  # type: ignore[attr-defined]
    build.__doc__ = f"open_clip `{config_name}` vision tower: {defaults}"
    register_encoder(name)(build)


# LLaVA-style: OpenAI CLIP ViT-L/14 at 224 px, penultimate block, 257 tokens of width 1024.
_register("openai-vit-l-14", "ViT-L-14", layer=-2)
