"""ChatGLM-6B (v1) checkpoints: THUDM's transformers layout and SwissArmyTransformer's, loaded strictly.

Both layouts name the transformer alike (`transformer.word_embeddings`, `transformer.layers.N.*`,
`transformer.final_layernorm`) and pack `query_key_value` per head in the same way: SAT's ChatGLM replaces
its generic attention (three contiguous q | k | v blocks) with a per-head view, and THUDM's own SAT -> HF
conversion copies the tensors unchanged. What differs:
- HF: `lm_head.weight`; fp16 `*.attention.rotary_emb.inv_freq` buffers (recomputed here, so dropped).
- SAT: `mixins.chatglm-final.lm_head.weight`; an unused `transformer.position_embeddings.weight` (SAT's
  base model always builds one, ChatGLM never reads it); possibly `mixins.chatglm-attn.rotary_emb.inv_freq`.

The model is built on the meta device and the file's tensors are assigned to it, so a 6B checkpoint is
never held twice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch
from torch import nn

from encoders.weights import load_into, read_state_dict
from mm.chatglm_v1.config import ChatGLMv1Config
from mm.chatglm_v1.modeling import ChatGLMv1ForCausalLM
from mm.chatglm_v1.tokenizer import ChatGLMv1Tokenizer
from mm.errors import InputError

logger = logging.getLogger(__name__)

SAT_LM_HEAD = "mixins.chatglm-final.lm_head.weight"
SAT_UNUSED = ("transformer.position_embeddings.weight", "mixins.chatglm-attn.rotary_emb.inv_freq")


def _is_rotary_buffer(name: str) -> bool:
    return name.endswith("rotary_emb.inv_freq")


def from_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """THUDM's transformers names are ours; only the rotary buffers go."""
    return {k: v for k, v in state.items() if not _is_rotary_buffer(k)}


def from_sat_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SAT names -> ours. Keys of other parts (VisualGLM's `mixins.eva.*`) pass through unchanged, so a
    strict load names them: split them off first when loading the LLM of a whole release."""
    out = {}
    for k, v in state.items():
        if k in SAT_UNUSED or _is_rotary_buffer(k):
            continue
        out["lm_head.weight" if k == SAT_LM_HEAD else k] = v
    return out


def is_sat_state_dict(state: dict[str, torch.Tensor]) -> bool:
    return SAT_LM_HEAD in state or "transformer.position_embeddings.weight" in state


def resolve_tied(config: ChatGLMv1Config, state: dict[str, torch.Tensor]) -> ChatGLMv1Config:
    """The output layer is tied when the file has no `lm_head.weight` or one equal to the embeddings
    (then it is dropped from `state`, saving a vocabulary-sized matrix); otherwise it is its own tensor."""
    head, emb = state.get("lm_head.weight"), state.get("transformer.word_embeddings.weight")
    tied = head is None or (emb is not None and head.shape == emb.shape and torch.equal(head, emb))
    if tied:
        state.pop("lm_head.weight", None)
    if tied != config.tie_word_embeddings:
        config = dataclasses.replace(config, tie_word_embeddings=tied)
    return config


def _materialize(model: nn.Module) -> None:
    """Give tensors still on the meta device (not in the file, strict=False) real fresh values."""
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            if p.device.type != "meta":
                continue
            fresh = torch.empty(p.shape, dtype=p.dtype)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(fresh) if name == "weight" else nn.init.zeros_(fresh)
            elif name == "bias":
                nn.init.zeros_(fresh)
            else:
                nn.init.normal_(fresh, std=0.02)
            setattr(module, name, nn.Parameter(fresh, requires_grad=p.requires_grad))


def build_chatglm_v1(config: ChatGLMv1Config, state: dict[str, torch.Tensor], *, source: str | Path,
                     dtype: torch.dtype | None = None, strict: bool = True) -> ChatGLMv1ForCausalLM:
    """The model from a state dict in our (HF) names: built on meta, the tensors assigned, no copy
    unless `dtype` asks for a cast."""
    config = resolve_tied(config, state)
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    with torch.device("meta"):
        model = ChatGLMv1ForCausalLM(config)
    load_into(model, state, component="LLM", source=source, strict=strict)
    _materialize(model)
    return model.eval()


# tokenizer_config.json keys of THUDM's ChatGLMTokenizer that mean the same to ours.
_TOKENIZER_KEYS = ("num_image_tokens", "max_blank_length", "remove_space", "bos_token", "eos_token", "end_token",
                   "mask_token", "gmask_token", "pad_token", "unk_token", "padding_side")


def read_tokenizer(directory: str | Path, **overrides) -> ChatGLMv1Tokenizer:
    """Our tokenizer from a directory we saved, or from THUDM's files (`ice_text.model` and the published
    keys of its tokenizer_config.json; its remote-code class is not used)."""
    directory = Path(directory)
    config_file = directory / "tokenizer_config.json"
    info = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if info.get("tokenizer_class") == ChatGLMv1Tokenizer.__name__:
        return ChatGLMv1Tokenizer.from_pretrained(str(directory), **overrides)
    kwargs = {k: info[k]["content"] if isinstance(info[k], dict) else info[k]  # AddedToken form
              for k in _TOKENIZER_KEYS if info.get(k) is not None}
    return ChatGLMv1Tokenizer(vocab_file=str(directory / "ice_text.model"), **{**kwargs, **overrides})


def load_tokenizer(directory: Path, config: ChatGLMv1Config) -> ChatGLMv1Tokenizer:
    if not (directory / "ice_text.model").is_file():
        raise InputError(f"{directory}: no ice_text.model (ChatGLM-6B's SentencePiece tokenizer) next to the weights")
    tokenizer = read_tokenizer(directory)
    # The image-token offset must agree with the model's special ids (it is 0 for the 130528-row
    # releases, 20000 for the first 150528-row one); when tokenizer_config.json disagrees, the ids win.
    offset = config.gmask_token_id - tokenizer.sp.piece_to_id(tokenizer.gmask_token)
    if offset != tokenizer.num_image_tokens:
        if offset < 0:
            raise InputError(f"{directory}: the tokenizer's [gMASK] ({tokenizer.gmask_token_id}) cannot match "
                             f"config.json's gmask_token_id ({config.gmask_token_id})")
        logger.warning("%s: tokenizer num_image_tokens=%d disagrees with config.json's special ids; using %d",
                       directory, tokenizer.num_image_tokens, offset)
        tokenizer = read_tokenizer(directory, num_image_tokens=offset)
    return tokenizer


def load_chatglm_v1(path: str | Path, dtype: torch.dtype | None = None,
                    strict: bool = True) -> tuple[ChatGLMv1ForCausalLM, ChatGLMv1Tokenizer]:
    """Model and tokenizer from a THUDM transformers-layout directory: `config.json`, weights
    (`pytorch_model-0000N-of-0000M.bin` shards with or without their index, or safetensors),
    `ice_text.model` and `tokenizer_config.json`. `dtype=None` keeps the file's dtype."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise InputError(f"{path}: not a ChatGLM-6B directory (no config.json)")
    try:
        config = ChatGLMv1Config.from_json(config_file)
    except ValueError as e:
        raise InputError(f"{config_file}: {e}") from None
    tokenizer = load_tokenizer(path, config)
    state = read_state_dict(path)
    state = from_sat_state_dict(state) if is_sat_state_dict(state) else from_hf_state_dict(state)
    model = build_chatglm_v1(config, state, source=path, dtype=dtype, strict=strict)
    logger.info("loaded ChatGLM-6B (%d layers, width %d) from %s", config.num_layers, config.hidden_size, path)
    return model, tokenizer
