"""Encoder registry: a name maps to a builder function (timm's `register_model` / `create_model`).

Builders take keyword overrides and return an unloaded, frozen encoder; weights are a separate step
(`encoder.load_weights(path)`), so building never reads files or downloads anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str) -> Callable[[Builder], Builder]:
    """Decorator: `@register_encoder("tiny-vit") def tiny_vit(**overrides) -> ImageEncoder`."""

    def wrap(fn: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"encoder {name!r} is already registered")
        _BUILDERS[name] = fn
        return fn

    return wrap


def _load_builtin() -> None:
    # Importing the family modules runs their @register_encoder decorators.
    from encoders import audio_whisper, image_convstem, image_openclip, image_timm  # noqa: F401


def list_encoders(modality: str | None = None) -> list[str]:
    """Registered names, sorted; `modality` ("image" or "audio") filters by the builder's modality."""
    _load_builtin()
    names = sorted(_BUILDERS)
    if modality is not None:
        names = [n for n in names if getattr(_BUILDERS[n], "modality", None) == modality]
    return names


def create_encoder(name: str, **overrides: Any) -> nn.Module:
    """Build the encoder registered as `name`; unknown names raise ValueError listing the known ones."""
    _load_builtin()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; known encoders: {', '.join(sorted(_BUILDERS))}") from None
    return builder(**overrides)
