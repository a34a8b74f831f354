"""A tiny hybrid image tower: a convolutional stem under a few ViT blocks (timm's `HybridEmbed` + `ConvStem`).

Shape letters: B batch, N tokens (CLS, then the stem's feature-map cells row by row), D width.

The 64 px patch-8 tiny ViT reads colour and position perfectly but confuses shapes: an 8x8 patch sees
a few edge pixels of a small star or triangle and linear patch embedding cannot tell corners from curves.
Here four 3x3 stride-2 convolutions and one stride-1 (LayerNorm2d + GELU between them) look at 128 px and
hand an 8x8 grid of 63 px receptive fields to the transformer, so the token count and width match the old
tower's (65 tokens of 128): a Q-Former built for one reads the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

from timm.layers import LayerNorm2d
from timm.layers.hybrid_embed import HybridEmbed
from timm.models.vision_transformer_hybrid import ConvStem
from torch import nn

from encoders.image_timm import TimmImageEncoder
from encoders.registry import register_encoder


class ConvStemImageEncoder(TimmImageEncoder):
    """timm ViT blocks over a stride-2 convolutional stem; returns CLS + grid tokens after block `layer`.

    LayerNorm2d, not BatchNorm, in the stem: the tower trains while its frozen wrapper keeps it in eval
    mode, where BatchNorm would never update its statistics.
    """

    def __init__(self, img_size: int = 128, stem_channels: Sequence[int] = (32, 64, 128, 128), embed_dim: int = 128,
                 depth: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0, layer: int = -1,
                 stem_strides: Sequence[int] | None = None) -> None:
        channels = tuple(int(c) for c in stem_channels)
        if not channels:
            raise ValueError(f"stem_channels={stem_channels!r}: the stem needs at least one convolution")
        strides = tuple(int(s) for s in stem_strides) if stem_strides is not None else (2,) * len(channels)
        if len(strides) != len(channels) or any(s not in (1, 2) for s in strides):
            raise ValueError(f"stem_strides={stem_strides!r}: one stride of 1 or 2 per stem convolution")
        reduction = math.prod(strides)
        if img_size % reduction:
            raise ValueError(f"img_size={img_size} is not a multiple of the stem's reduction {reduction}")
        stem = ConvStem(in_chans=3, depth=len(channels), channels=channels, kernel_size=3,
                        stride=strides, norm_layer=LayerNorm2d, act_layer=nn.GELU)
        stem.num_features = channels[-1]  # HybridEmbed reads the feature width from its backbone
        embed = partial(HybridEmbed, backbone=stem, patch_size=1, feature_size=img_size // reduction,
                        feature_ratio=reduction)
        super().__init__("vit_tiny_patch16_224", layer=layer, prune=False, depth=depth, img_size=img_size,
                         patch_size=1, embed_dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         embed_layer=embed)
        self.stem_channels = channels
        self.stem_strides = strides


def _register(name: str, **defaults: Any) -> None:
    def build(**overrides: Any) -> ConvStemImageEncoder:
        kwargs = {**defaults, **overrides}
        if "stem_channels" in overrides and "stem_strides" not in overrides:
            kwargs["stem_strides"] = None  # other channels, the default strides (all 2) for them
        return ConvStemImageEncoder(**kwargs)

    build.modality = "image"  # type: ignore[attr-defined]
    build.__doc__ = f"convolutional stem + ViT blocks: {defaults}"
    register_encoder(name)(build)


# The embedded default's tower: 128 px -> 8x8 grid + CLS = 65 tokens of width 128, 4 blocks (~1.2 M). The
# fifth, stride-1 convolution widens each cell's receptive field from 31 to 63 px, so the cell under a
# large shape (up to about 52 px across at 128 px) sees all of its outline.
_register("tiny-convvit", img_size=128, stem_channels=(32, 64, 128, 128, 128), stem_strides=(2, 2, 2, 2, 1),
          embed_dim=128, depth=4, num_heads=4, mlp_ratio=4.0)
