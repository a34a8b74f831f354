"""Frozen feature extractors: image towers (timm, open_clip) and audio encoders (Whisper).

`create_encoder(name, **overrides)` builds one without weights; `encoder.load_weights(path)` loads a
local checkpoint. Preprocessing is pure functions: `load_image`, `image_transform`, `load_audio`,
`log_mel`.
"""

from encoders.audio_io import load_audio, log_mel
from encoders.image_io import image_transform, load_image
from encoders.registry import create_encoder, list_encoders, register_encoder

__all__ = [
    "create_encoder",
    "image_transform",
    "list_encoders",
    "load_audio",
    "load_image",
    "log_mel",
    "register_encoder",
]
