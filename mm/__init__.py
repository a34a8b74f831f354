"""mm: a vision-audio-language chat model (frozen encoders, Q-Former bridges, a GLM-family LLM).

    import mm
    model = mm.load("mm-tiny")
    answer, history = model.chat("What colour is the circle?", image="shapes.png")

Heavy modules load on first use, so `import mm` and `mm --help` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mm.errors import InputError

if TYPE_CHECKING:
    from mm.chat import MMChat
    from mm.compare import ClipComparison, compare_clips
    from mm.config import MMConfig
    from mm.loading import load

__all__ = ["ClipComparison", "InputError", "MMChat", "MMConfig", "compare_clips", "load"]
__version__ = "0.1.0"

_LAZY = {"MMChat": "mm.chat", "load": "mm.loading", "MMConfig": "mm.config", "compare_clips": "mm.compare",
         "ClipComparison": "mm.compare"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mm' has no attribute {name!r}")
