"""Model configuration: typed dataclasses, JSON presets under mm/configs/, keyword overrides.

Configs hold architecture only (ints, floats, strings); weight paths, devices and dtypes are
arguments of `mm.load`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from bridge.qformer import QFormerConfig
from mm.errors import InputError

# LLMs wider than this are full scale: built on the meta device for summaries, loaded from the user's disk.
FULL_SCALE_WIDTH = 1024


@dataclass
class EncoderConfig:
    name: str = "tiny-vit"  # encoder registry name (`encoders.list_encoders()`)
    options: dict[str, int | float | str] = field(default_factory=dict)  # builder overrides, e.g. {"layer": -2}


@dataclass
class LLMConfig:
    # glm: transformers GlmForCausalLM built from these fields; chatglm: ChatGLM-6B v1 (remote code);
    # hf: any other transformers causal LM, always loaded from its checkpoint (fields mirror its config)
    arch: Literal["glm", "chatglm", "hf"] = "glm"
    vocab_size: int = 4096  # embedding rows (>= tokenizer size, media placeholders excluded)
    hidden_size: int = 256  # embedding width E
    intermediate_size: int = 768  # MLP inner width
    num_layers: int = 4  # decoder layers
    num_heads: int = 4  # attention heads
    num_kv_heads: int = 2  # key/value heads (grouped-query attention)
    head_dim: int = 64  # width per head
    partial_rotary_factor: float = 0.5  # fraction of each head that is rotated (GLM: half)
    max_position_embeddings: int = 2048  # longest sequence
    rms_norm_eps: float = 1e-5  # RMSNorm epsilon
    rope_theta: float = 10000.0  # rotary base
    attention_bias: bool = True  # bias on q/k/v (ChatGLM3: yes)
    tie_word_embeddings: bool = False  # share input and output embeddings
    template: str = "tiny"  # chat template name (mm.prompt.TEMPLATES)

    def __post_init__(self) -> None:
        if self.arch not in ("glm", "chatglm", "hf"):
            raise ValueError(f"LLMConfig.arch must be 'glm', 'chatglm' or 'hf', got {self.arch!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")


@dataclass
class VideoConfig:
    frames: int = 8  # frames sampled per clip, at the centres of equal slices
    fps: float | None = None  # sample at this rate instead (at most max_frames frames)
    max_frames: int = 32  # length of the frame-position table
    temporal: QFormerConfig = field(default_factory=lambda: QFormerConfig(
        num_queries=8, hidden_size=128, num_layers=2, num_heads=4, intermediate_size=512,
        cross_attention_every=1, encoder_width=128))  # encoder_width is set from the image Q-Former

    def __post_init__(self) -> None:
        if isinstance(self.temporal, dict):
            self.temporal = QFormerConfig(**self.temporal)
        if self.frames < 1 or self.max_frames < 1:
            raise ValueError(f"VideoConfig.frames and max_frames must be >= 1, got {self.frames}, {self.max_frames}")
        if self.frames > self.max_frames:
            raise ValueError(f"VideoConfig.frames={self.frames} exceeds max_frames={self.max_frames}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"VideoConfig.fps must be positive, got {self.fps}")


@dataclass
class MMConfig:
    name: str = "mm-tiny"  # preset name (informational)
    image_encoder: EncoderConfig | None = field(default_factory=EncoderConfig)  # None: no image input
    audio_encoder: EncoderConfig | None = None  # None: no audio input
    image_qformer: QFormerConfig | None = None  # bridge for images (encoder_width set from the encoder)
    audio_qformer: QFormerConfig | None = None  # bridge for audio
    projector: Literal["linear", "mlp"] = "linear"  # Q-Former -> LLM projection
    llm: LLMConfig = field(default_factory=LLMConfig)  # language model shape
    max_media: int = 8  # media items allowed in one conversation
    video: VideoConfig | None = None  # video input: frames through the image path + a temporal Q-Former

    def __post_init__(self) -> None:
        if (self.image_encoder is None) != (self.image_qformer is None):
            raise ValueError("image_encoder and image_qformer must be given together")
        if (self.audio_encoder is None) != (self.audio_qformer is None):
            raise ValueError("audio_encoder and audio_qformer must be given together")
        if self.image_encoder is None and self.audio_encoder is None:
            raise ValueError("a model needs at least one of image_encoder / audio_encoder")
        if self.video is not None and self.image_encoder is None:
            raise ValueError("video input needs an image encoder (frames go through the image path)")

    @property
    def modalities(self) -> list[str]:
        """Media the model reads: "image", "audio" and "video" (a video's sound goes through "audio")."""
        out = [m for m in ("image", "audio") if getattr(self, f"{m}_encoder") is not None]
        return out + (["video"] if self.video is not None else [])

    @property
    def full_scale(self) -> bool:
        """A model whose weights come from the user's disk (no LLM this wide is built from scratch here)."""
        return self.llm.hidden_size > FULL_SCALE_WIDTH

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MMConfig:
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown MMConfig fields {sorted(unknown)}; known: {sorted(known)}")
        for key in ("image_encoder", "audio_encoder"):
            if d.get(key) is not None:
                d[key] = EncoderConfig(**d[key])
        for key in ("image_qformer", "audio_qformer"):
            if d.get(key) is not None:
                d[key] = QFormerConfig(**d[key])
        if "llm" in d:
            d["llm"] = LLMConfig(**d["llm"])
        if d.get("video") is not None:
            d["video"] = VideoConfig(**d["video"])
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> MMConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def list_presets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("mm.configs").iterdir() if p.name.endswith(".json"))


def preset(name: str) -> MMConfig:
    """The named preset from mm/configs/NAME.json."""
    f = resources.files("mm.configs") / f"{name}.json"
    if not f.is_file():
        raise InputError(f"unknown preset {name!r}; presets: {', '.join(list_presets())}")
    return MMConfig.from_dict(json.loads(f.read_text()))


def apply_overrides(cfg: MMConfig, overrides: dict[str, Any]) -> MMConfig:
    """Return a copy with overrides applied.

    A key is a field of MMConfig, a dotted path (`"llm.num_layers"`, `"image_qformer.num_queries"`), or a
    plain field name of the sub-configs, which sets it in every sub-config that has it
    (`num_queries=16` sets both Q-Formers). Unknown keys raise ValueError.
    """
    d = cfg.to_dict()
    subs = ["image_qformer", "audio_qformer", "llm", "video"]
    for key, value in overrides.items():
        if "." in key:
            head, _, tail = key.partition(".")
            if not isinstance(d.get(head), dict) or tail not in d[head]:
                raise ValueError(f"unknown config override {key!r}")
            d[head][tail] = value
        elif key in d:
            d[key] = value
        else:
            hits = [s for s in subs if isinstance(d.get(s), dict) and key in d[s]]
            if not hits:
                fields = sorted({k for s in subs if isinstance(d.get(s), dict) for k in d[s]} | set(d))
                raise ValueError(f"unknown config override {key!r}; known fields: {', '.join(fields)}")
            for s in hits:
                d[s][key] = value
    return MMConfig.from_dict(d)
