"""Common shape of image encoders: (B, 3, H, W) pixels -> (B, N, D) token features of one layer.

Shape letters: B batch, N tokens (prefix tokens such as CLS first, then patches), D width.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from PIL import Image

from encoders.base import FrozenEncoder
from encoders.image_io import image_transform, load_image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageEncoder(FrozenEncoder, ABC):
    modality = "image"
    image_size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    num_tokens: int = 0  # N
    num_layers: int = 0  # blocks in the tower
    layer: int = -1  # which block's output is returned; negative counts from the end

    def _block_index(self, layer: int, num_layers: int) -> int:
        idx = layer if layer >= 0 else num_layers + layer
        if not 0 <= idx < num_layers:
            raise ValueError(f"layer={layer} is out of range for a tower with {num_layers} blocks")
        return idx

    def preprocess(self, image: Image.Image | object) -> torch.Tensor:
        """Any supported image input -> (3, H, W) normalised for this tower."""
        return image_transform(load_image(image), self.image_size, self.mean, self.std)

    @abstractmethod
    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in the tower's dtype -> (B, N, D); each family reads its own layer."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, N, D)."""
        with torch.no_grad():
            dtype = next(self.parameters()).dtype
            return self.tokens(pixels.to(dtype))
