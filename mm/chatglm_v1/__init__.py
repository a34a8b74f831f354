"""ChatGLM-6B (v1), VisualGLM-6B's LLM, built natively (transformers has no class for it; no remote code)."""

from mm.chatglm_v1.config import ChatGLMv1Config
from mm.chatglm_v1.modeling import ChatGLMv1ForCausalLM
from mm.chatglm_v1.tokenizer import ChatGLMv1Tokenizer
from mm.chatglm_v1.weights import (
    build_chatglm_v1,
    from_hf_state_dict,
    from_sat_state_dict,
    load_chatglm_v1,
)

__all__ = [
    "ChatGLMv1Config",
    "ChatGLMv1ForCausalLM",
    "ChatGLMv1Tokenizer",
    "build_chatglm_v1",
    "from_hf_state_dict",
    "from_sat_state_dict",
    "load_chatglm_v1",
]
