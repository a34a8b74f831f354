"""The tiny model's tokenizer: byte-level BPE (tokenizers library), Chinese and English alike.

With no training text it is a plain byte tokenizer (256 symbols + specials); `mm train` trains merges on
the synthetic world's text. Placeholder tokens for media are special tokens, so nothing a user types can
produce them.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD = "<|pad|>"
EOS = "<|endoftext|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
SYSTEM = "<|system|>"
IMAGE = "<|image|>"
AUDIO = "<|audio|>"
VIDEO = "<|video|>"
SPECIAL_TOKENS = [PAD, EOS, USER, ASSISTANT, SYSTEM, IMAGE, AUDIO, VIDEO]
MEDIA_TOKENS = {"image": IMAGE, "audio": AUDIO, "video": VIDEO}


def build_tokenizer(texts: Iterable[str] = (), vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts` (no merges when empty), wrapped for transformers."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        eos_token=EOS,
        additional_special_tokens=[USER, ASSISTANT, SYSTEM, IMAGE, AUDIO],
    )


def add_media_tokens(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """Make sure the media placeholders exist as special tokens; returns {modality: token id}.

    The ids may lie beyond the LLM's embedding table: placeholder positions are overwritten by bridge
    outputs before the LLM sees them, so the table is never resized for them.
    """
    missing = [t for t in MEDIA_TOKENS.values() if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_additional_special_tokens=False)
    return {m: tokenizer.convert_tokens_to_ids(t) for m, t in MEDIA_TOKENS.items()}
