"""ChatGLM-6B (v1) architecture, read from a checkpoint's own config.

Two on-disk forms describe the same model: THUDM's transformers `config.json` (model_type "chatglm",
`inner_hidden_size`, `position_encoding_2d`, ...) and SwissArmyTransformer's `model_config.json` of the
VisualGLM-6B release (`model_class`, `layernorm_order`, no MLP width: SAT's default 4 * hidden). ChatGLM2/3
configs share the model_type "chatglm" but not the architecture; they are refused by name.

`rope_fp16_angles`: THUDM's HF code keeps the rotary `inv_freq` in fp16 and builds positions and angles in
its dtype, and SAT's buffer becomes fp16 when the model is halved (both runtimes' default), so the angles
the released models are run with are fp16-rounded: at position ~2000 they are off by up to 0.5 rad. True
reproduces that whatever the model's dtype; False computes exact angles.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

# Keys that only ChatGLM2/3 configs carry (their modeling differs: RMSNorm, multi-query attention, ...).
_V2_KEYS = ("padded_vocab_size", "ffn_hidden_size", "multi_query_attention", "kv_channels", "rmsnorm")


@dataclass
class ChatGLMv1Config:
    vocab_size: int = 130528  # embedding rows (the tokenizer's 130344 ids, padded)
    hidden_size: int = 4096  # model width E
    num_layers: int = 28  # transformer blocks
    num_attention_heads: int = 32  # heads H; head dim D = E / H
    inner_hidden_size: int = 16384  # MLP width
    layernorm_epsilon: float = 1e-5  # LayerNorm eps
    max_sequence_length: int = 2048  # longest sequence the release was trained with
    position_encoding_2d: bool = True  # GLM 2-D rotary positions (position, block position); 1-D is not built
    rotary_base: float = 10000.0  # rotary frequency base
    rope_fp16_angles: bool = True  # rotary angles rounded to fp16, as both published runtimes compute them in fp16
    tie_word_embeddings: bool = False  # output layer reuses the word embeddings (the file has no distinct lm_head)
    bos_token_id: int = 130004  # <sop>: opens the generated block
    eos_token_id: int = 130005  # <eop>: closes the generated block
    mask_token_id: int = 130000  # [MASK]
    gmask_token_id: int = 130001  # [gMASK]: "generate from here", ends the context
    pad_token_id: int = 3  # <pad>

    model_type: ClassVar[str] = "chatglm"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.head_dim % 4:
            raise ValueError(f"head dim {self.head_dim} must be a multiple of 4 (two rotary halves, rotated by halves)")
        if not self.position_encoding_2d:
            raise ValueError("position_encoding_2d=False: only the 2-D positions of the ChatGLM-6B releases are built")
        for name in ("vocab_size", "num_layers", "inner_hidden_size", "max_sequence_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    # -- derived sizes, also under the names other loaders look for ----------------------------------

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def rotary_dim(self) -> int:
        """Width each of the two rotary halves covers: hidden / (heads * 2)."""
        return self.head_dim // 2

    @property
    def num_hidden_layers(self) -> int:
        return self.num_layers

    @property
    def intermediate_size(self) -> int:
        return self.inner_hidden_size

    @property
    def max_position_embeddings(self) -> int:
        return self.max_sequence_length

    # -- reading and writing ---------------------------------------------------------------------

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> ChatGLMv1Config:
        """From THUDM's transformers `config.json`; keys that are not architecture (auto_map, torch_dtype,
        VisualGLM's eva/qformer configs, ...) are ignored, unsupported variants raise `ValueError`."""
        if d.get("model_type", "chatglm") != "chatglm":
            raise ValueError(f"model_type {d.get('model_type')!r} is not ChatGLM-6B ('chatglm')")
        v2 = [k for k in _V2_KEYS if k in d]
        if v2:
            raise ValueError(f"this is a ChatGLM2/3 config (it has {', '.join(v2)}), not ChatGLM-6B v1; "
                             "convert it with `mm convert chatglm3`")
        if d.get("quantization_bit"):
            raise ValueError(f"quantization_bit={d['quantization_bit']}: quantized (int4/int8) releases are not "
                             "supported; use the fp16 checkpoint")
        if d.get("pre_seq_len") is not None:
            raise ValueError(f"pre_seq_len={d['pre_seq_len']}: P-tuning prefix checkpoints are not supported")
        hidden = d.get("hidden_size", cls.hidden_size)
        known = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        if known.get("inner_hidden_size") is None:
            known["inner_hidden_size"] = 4 * hidden
        return cls(**known)

    @classmethod
    def from_sat_dict(cls, d: dict[str, Any]) -> ChatGLMv1Config:
        """From SAT's `model_config.json` (VisualGLM-6B release): SAT defaults fill what it omits."""
        if d.get("layernorm_order", "post") != "post":
            raise ValueError(f"layernorm_order {d['layernorm_order']!r}: ChatGLM's residual needs 'post'")
        hidden = d.get("hidden_size", cls.hidden_size)
        names = ("vocab_size", "hidden_size", "num_layers", "num_attention_heads", "inner_hidden_size",
                 "layernorm_epsilon", "max_sequence_length", "bos_token_id", "eos_token_id", "mask_token_id",
                 "gmask_token_id")
        known = {k: d[k] for k in names if d.get(k) is not None}
        known.setdefault("inner_hidden_size", 4 * hidden)
        return cls(**known)

    @classmethod
    def from_json(cls, path: str | Path) -> ChatGLMv1Config:
        """From a `config.json` (transformers) or `model_config.json` (SAT) file."""
        d = json.loads(Path(path).read_text())
        return cls.from_sat_dict(d) if "model_class" in d else cls.from_hf_dict(d)

    def to_hf_dict(self) -> dict[str, Any]:
        """The transformers `config.json` form (what `from_hf_dict` reads back)."""
        return {"model_type": self.model_type, **asdict(self)}
