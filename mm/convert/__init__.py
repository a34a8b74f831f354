"""One-time conversions of checkpoints that need their own modeling code into transformers-native ones.

`convert_chatglm` turns a ChatGLM2-6B / ChatGLM3-6B release into a `GlmForCausalLM` directory with a fast
tokenizer (`mm convert chatglm3 SRC DST`); the result loads as `llm=DST` with no remote code.
"""

from __future__ import annotations

from mm.convert.chatglm import chatglm_tokenizer, convert_chatglm, glm_config_from_chatglm
from mm.convert.sentencepiece_fast import read_sentencepiece, sentencepiece_tokenizer

__all__ = ["chatglm_tokenizer", "convert_chatglm", "glm_config_from_chatglm", "read_sentencepiece",
           "sentencepiece_tokenizer"]
