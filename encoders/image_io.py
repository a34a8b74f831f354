"""Image loading and preprocessing: pure functions from user input to a normalised tensor.

Accepts a path, bytes, a PIL image or an array (H, W), (H, W, C) of uint8/uint16/float. EXIF orientation
is honoured; grayscale, palette, 16-bit, CMYK and alpha images become 8-bit RGB (alpha composited on
white, as a viewer would show it).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from encoders.av_guard import check_pixels
from encoders.source_bytes import read_source
from mm.errors import InputError, describe_source

# Decompression-bomb guard: PIL warns above ~89 Mpx; we refuse above this many pixels.
MAX_PIXELS = 16384 * 16384


def _from_array(arr: np.ndarray, name: str) -> Image.Image:
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise InputError(f"{name}: an image array must be (H, W) or (H, W, 3|4), got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: the image array is empty")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"{name}: the image array holds NaN or infinite values")
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    else:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if image.mode.startswith("I;16"):
            lo, hi = 0.0, 65535.0
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        image = Image.fromarray((arr * 255).round().astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(source: Any, *, max_pixels: int | None = None, max_bytes: int | None = None) -> Image.Image:
    """A path, bytes, PIL image or numpy array -> upright 8-bit RGB PIL image.

    `max_pixels` (default `MAX_PIXELS`, the decompression-bomb guard) is checked against the file's
    header before any pixel is decoded; `max_bytes` caps what is read (regular files only, see
    `encoders.source_bytes`). Raises `InputError` naming the file and what is wrong.
    """
    name = describe_source(source)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source, name)
    elif isinstance(source, torch.Tensor):
        image = _from_array(source.detach().cpu().numpy(), name)
    elif isinstance(source, (str, Path, bytes, bytearray)) or hasattr(source, "read"):
        data = read_source(source, max_bytes, name)
        try:
            image = Image.open(io.BytesIO(data))
            check_pixels(image.width, image.height, limit, name)  # from the header, before decoding
            image.load()
        except InputError:
            raise
        except UnidentifiedImageError:
            raise InputError(f"{name}: not a readable image (unknown or corrupt format)") from None
        except Exception as e:  # noqa: BLE001 - PIL's plugins raise many types; all mean "corrupt file"
            raise InputError(f"{name}: not a readable image ({type(e).__name__}: {e})") from None
    else:
        raise InputError(f"{name}: expected an image path, bytes, PIL image or array")
    if image.width < 1 or image.height < 1:
        raise InputError(f"{name}: the image has no pixels")
    check_pixels(image.width, image.height, limit, name)
    try:
        image = ImageOps.exif_transpose(image) or image
        return to_rgb(image)
    except Exception as e:  # noqa: BLE001 - a corrupt EXIF block or an odd mode
        raise InputError(f"{name}: not a readable image ({type(e).__name__}: {e})") from None


def check_image_header(data: bytes, max_pixels: int, name: str, *, readable: bool = False) -> None:
    """Refuse image bytes whose header declares more than `max_pixels`, without decoding a pixel.

    With `readable`, bytes PIL cannot identify are an `InputError` too; otherwise they pass, for the
    loader to report later with the full message.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise InputError(f"{name}: the image has too many pixels; the limit is {max_pixels}") from None
    except Exception:  # noqa: BLE001 - PIL's plugins raise many kinds of errors on bad headers
        if readable:
            raise InputError(f"{name}: not an image ({len(data)} bytes)") from None
        return
    check_pixels(w, h, max_pixels, name)


def image_transform(
    image: Image.Image,
    size: int,
    mean: Sequence[float] = (0.48145466, 0.4578275, 0.40821073),
    std: Sequence[float] = (0.26862954, 0.26130258, 0.27577711),
) -> torch.Tensor:
    """RGB image -> (3, size, size) float tensor, normalised.

    Resized straight to a square with bicubic filtering, as BLIP-2 / VisualGLM's eval processor does:
    no centre crop, so nothing near the edges is lost. Defaults are CLIP's mean and std.
    """
    image = image.resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0  # (3, H, W)
    mean_t = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (x - mean_t) / std_t
