"""Which file extensions name an image, a sound or a video: the one table chat, captioning, the training
readers and the media checks all read.

It sits at the bottom of the layering (no imports from `mm`), so any module may use it.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Literal

Modality = Literal["image", "audio", "video"]

# What Pillow decodes (plus TIFF), what libsndfile / the bundled FFmpeg decode as sound, and the containers
# the bundled FFmpeg reads as video. An audio-only container (.m4a, .aac) is a sound, not a video.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac"})
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg",
                                              ".ts"})

# Read-only: the table is not a place to register extensions at run time.
MEDIA_EXTENSIONS: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS, "video": VIDEO_EXTENSIONS})


def modality_of_path(path: str | Path) -> Modality | None:
    """"image", "audio" or "video" from the file's extension (any case); None for any other extension."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None
