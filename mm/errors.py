"""The one exception users see for bad input."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (a file that is not an image, an unknown preset, an empty question, ...).

    The message says what is wrong and, where possible, which file and what to do about it.
    """
