"""ChatGLM-6B's tokenizer: SentencePiece (`ice_text.model`) with GLM's whitespace and special tokens.

The published behaviour (THUDM's `tokenization_chatglm.py`):
- before SentencePiece, "\\n" becomes "<n>", a tab "<|tab|>" and each run of 2..80 spaces "<|blank_N|>"
  (longest first); decoding turns them back;
- SentencePiece puts its dummy prefix "▁" before every text it encodes; text encoded without one is encoded
  after "<n>" and the two leading pieces ("▁", "<n>") dropped;
- ids are SentencePiece ids plus `num_image_tokens` (ids below it are `<image_N>`); tokenizer_config.json
  says how many (0 for the 130528-row releases, 20000 for the first 150528-row one);
- [MASK] [gMASK] [sMASK] <sop> <eop> are pieces of the SentencePiece model; bos is <sop>, eos <eop>, pad
  <pad>, unk <unk>; `build_inputs_with_special_tokens` appends [gMASK] <sop>; padding goes on the left.

Special tokens typed in text stay text when tokenized with `split_special_tokens=True`: SentencePiece would
match its user-defined pieces ([gMASK], <sop>, ...) inside plain text, so they are broken in two (the first
character encoded on its own) and decode back to the same characters.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import sentencepiece as spm
from transformers import PreTrainedTokenizer

# GLM's special pieces (THUDM's SPTokenizer.special_tokens); typed by a user they are text.
GLM_SPECIALS = ("[MASK]", "[gMASK]", "[sMASK]", "<unused_0>", "<sop>", "<eop>", "<ENC>", "<dBLOCK>")
TAB = "<|tab|>"
_BLANK_RE = re.compile(r"<\|blank_(\d+)\|>")
_IMAGE_RE = re.compile(r"<image_(\d+)>")


class ChatGLMv1Tokenizer(PreTrainedTokenizer):
    vocab_files_names = {"vocab_file": "ice_text.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str,
        num_image_tokens: int = 20000,
        max_blank_length: int = 80,
        remove_space: bool = False,
        bos_token: str = "<sop>",
        eos_token: str = "<eop>",
        end_token: str = "</s>",
        mask_token: str = "[MASK]",
        gmask_token: str = "[gMASK]",
        pad_token: str = "<pad>",
        unk_token: str = "<unk>",
        padding_side: str = "left",
        **kwargs,
    ) -> None:
        # The vocabulary must exist before the base class registers the special tokens.
        self.vocab_file = vocab_file
        self.sp = spm.SentencePieceProcessor(model_file=str(vocab_file))
        self.num_image_tokens = num_image_tokens
        self.max_blank_length = max_blank_length
        self.remove_space = remove_space
        self.end_token = end_token
        self.gmask_token = gmask_token
        self._base_vocab: dict[str, int] | None = None
        extra = list(kwargs.pop("additional_special_tokens", None) or [])
        names = {str(t) for t in extra}
        extra += [t for t in (gmask_token, "[sMASK]", end_token) if t not in names and self._is_piece(t)]
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(
            bos_token=bos_token, eos_token=eos_token, mask_token=mask_token, pad_token=pad_token,
            unk_token=unk_token, additional_special_tokens=extra, padding_side=padding_side,
            num_image_tokens=num_image_tokens, max_blank_length=max_blank_length, remove_space=remove_space,
            end_token=end_token, gmask_token=gmask_token, **kwargs,
        )
        protected = {t for t in (*GLM_SPECIALS, *self.all_special_tokens) if self._is_piece(t, text_only=True)}
        self._protected_re = (re.compile("(" + "|".join(map(re.escape, sorted(protected, key=len, reverse=True))) + ")")
                              if protected else None)

    def _is_piece(self, token: str, text_only: bool = False) -> bool:
        """Whether `token` is a piece of the SentencePiece model (with `text_only`: one that plain text can
        produce, i.e. not a control symbol like </s>)."""
        pid = self.sp.piece_to_id(token)
        if pid == self.sp.unk_id() or self.sp.id_to_piece(pid) != token:
            return False
        return not (text_only and self.sp.is_control(pid))

    # -- vocabulary --------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size() + self.num_image_tokens

    @property
    def gmask_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.gmask_token)

    @property
    def end_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.end_token)

    def get_vocab(self) -> dict[str, int]:
        if self._base_vocab is None:
            self._base_vocab = {self._convert_id_to_token(i): i for i in range(self.vocab_size)}
        return {**self._base_vocab, **self.added_tokens_encoder}

    def _convert_token_to_id(self, token: str) -> int:
        m = _IMAGE_RE.fullmatch(token)
        if m and int(m.group(1)) < self.num_image_tokens:
            return int(m.group(1))
        return self.sp.piece_to_id(token) + self.num_image_tokens

    def _convert_id_to_token(self, index: int) -> str:
        if index < self.num_image_tokens:
            return f"<image_{index}>"
        if index < self.vocab_size:
            return self.sp.id_to_piece(index - self.num_image_tokens)
        return self.unk_token

    # -- text <-> pieces ---------------------------------------------------------------------------

    def _preprocess(self, text: str) -> str:
        text = text.replace("\n", "<n>").replace("\t", TAB)
        # Greedy runs of 2..max spaces: the same as replacing the longest runs first.
        return re.sub(f" {{2,{self.max_blank_length}}}", lambda m: f"<|blank_{len(m.group())}|>", text)

    @staticmethod
    def _postprocess(text: str) -> str:
        text = text.replace("<n>", "\n").replace(TAB, "\t")
        return _BLANK_RE.sub(lambda m: " " * int(m.group(1)), text)

    def _pieces(self, text: str, dummy_prefix: bool) -> list[str]:
        if dummy_prefix:
            return self.sp.encode_as_pieces(text)
        return self.sp.encode_as_pieces("<n>" + text)[2:]  # the published way to skip the dummy prefix

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        if self.remove_space:
            text = " ".join(text.strip().split())
        text = self._preprocess(text)
        parts = [text] if self._protected_re is None else self._protected_re.split(text)
        chunks: list[str] = []
        for k, part in enumerate(parts):  # text, special, text, special, ..., text
            chunks += [part[:1], part[1:]] if k % 2 else [part]
        pieces: list[str] = []
        for chunk in chunks:
            if chunk:
                pieces += self._pieces(chunk, dummy_prefix=not pieces)
        return pieces

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._postprocess(self.sp.decode_pieces([t for t in tokens if not _IMAGE_RE.fullmatch(t)]))

    def _decode(self, token_ids: int | list[int], skip_special_tokens: bool = False,
                clean_up_tokenization_spaces: bool | None = None, **kwargs) -> str:
        ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        skip.add(self.pad_token_id)  # the published decode always drops padding
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if i in skip:
                continue
            if self.num_image_tokens <= i < self.vocab_size:
                run.append(i - self.num_image_tokens)
                continue
            if run:
                out.append(self.sp.decode(run))
                run = []
            if i in self._added_tokens_decoder:  # e.g. media placeholders beyond the vocabulary
                out.append(self._added_tokens_decoder[i].content)
        if run:
            out.append(self.sp.decode(run))
        return self._postprocess("".join(out))

    # -- model inputs and files ---------------------------------------------------------------------

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        """`A [gMASK] <sop>`, or `A [gMASK] <sop> B <eop>` for a (context, answer) pair."""
        ids = list(token_ids_0) + [self.gmask_token_id, self.bos_token_id]
        if token_ids_1 is not None:
            ids += list(token_ids_1) + [self.eos_token_id]
        return ids

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        name = (f"{filename_prefix}-" if filename_prefix else "") + self.vocab_files_names["vocab_file"]
        target = Path(save_directory) / name if Path(save_directory).is_dir() else Path(save_directory)
        if Path(self.vocab_file).resolve() != target.resolve():
            shutil.copyfile(self.vocab_file, target)
        return (str(target),)
