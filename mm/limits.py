"""How much work one request may cause: the same limits, with the same defaults, on every surface.

`Limits` is passed explicitly (no global state): `mm.load(..., limits=Limits(...))` / `MMChat(limits=)`
for the Python API, the `--max-*` flags of every CLI command (`mm.cli.common.add_limit_args`), the
server (`mm serve`, which adds its own HTTP limits in `mm.serve.requests.ServerLimits`) and the Gradio
app (which uses the model's). A value past a limit is an `InputError` that names the limit and the flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from mm.errors import InputError


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 512 * 2**20  # bytes read from one media file (regular files only)
    max_image_pixels: int = 7680 * 4320  # width x height of one image or one video frame (8K UHD)
    max_audio_seconds: float = 600.0  # one sound, or a clip's sound track
    max_video_seconds: float = 600.0  # one clip
    max_history_turns: int = 64  # earlier (question, answer) pairs in one conversation
    max_history_bytes: int = 256 * 2**10  # UTF-8 bytes of those pairs together
    max_clip_segments: int = 1000  # segments of one clip in a comparison
    deadline_seconds: float = 300.0  # one request: decoding, encoding and generation together

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type not in ("int", "float", int, float):
                continue  # a subclass's other fields (ServerLimits.url_allowlist) are checked there
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"limit {f.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise InputError(f"limit {f.name} must be a positive number, got {value!r}")
            if f.type in ("int", int) and not float(value).is_integer():
                raise InputError(f"limit {f.name} must be a whole number, got {value!r}")

    def describe(self) -> dict[str, int | float]:
        """Name -> value, for `mm info` and the README table."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULT_LIMITS = Limits()
