"""The one exception users see for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad user input (a file that is not an image, an unknown preset, an empty question, ...).

    The message says what is wrong and, where possible, which file and what to do about it.
    """


def describe_source(source: Any) -> str:
    """How an error message names a media source: its path, its size in bytes, or its type."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"
