"""SentencePiece BPE models (`tokenizer.model`) as `tokenizers` fast tokenizers that give the same ids.

SentencePiece's BPE encoder normalizes a string (optional character map, optional whitespace cleanup, a
"▁" dummy prefix, spaces written as "▁"), splits it into characters and then keeps merging the adjacent
pair whose concatenation is the highest-scoring piece of the vocabulary; characters outside the
vocabulary become their UTF-8 bytes (`<0x41>` pieces) when the model was trained with byte fallback.
A `tokenizers` BPE model over the same vocabulary, with one merge per way of splitting each piece
into two pieces, ranked by the score of the piece it makes, does the same on the same normalized text.
No pre-tokenizer: SentencePiece does not split BPE input into words either.

The model file is a protobuf; `read_sentencepiece` decodes the few fields needed with a small
wire-format reader (field numbers from sentencepiece's `sentencepiece_model.proto`), so converting needs
no protobuf package. `mismatches` compares a converted tokenizer with SentencePiece itself; conversion
runs it on `PROBE_TEXTS` and refuses a tokenizer that disagrees.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers
from tokenizers.models import BPE

from mm.errors import InputError

SPACE = "\u2581"  # "▁", SentencePiece's visible space

# SentencePiece.Type in sentencepiece_model.proto.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# TrainerSpec.ModelType.
UNIGRAM, BPE_MODEL = 1, 2

# Texts every converted tokenizer must encode exactly as SentencePiece does: English, Chinese, mixed
# scripts, whitespace runs (leading, trailing, inner), tabs and newlines, digits, punctuation, code,
# emoji and rare characters (byte fallback).
PROBE_TEXTS = (
    "Hello world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "你好，世界！今天天气怎么样？",
    "图片里有一个红色的圆形和两个蓝色的正方形。",
    "ChatGLM3-6B 是一个开源的中英双语对话模型。",
    "  two leading spaces",
    "trailing spaces   ",
    "inner    runs   of     spaces",
    "tab\there\tand\nnew\nlines\n\n\nend",
    "\n",
    " ",
    "digits 0123456789 and 3.14159, 2024-01-31, 1,000,000",
    "code: def f(x):\n    return x ** 2  # square\n",
    "emoji 😀🎉👍🏽 and symbols ©®™ §¶ ∑∫√ ≈≠",
    "rare: Ωμέγα Привет שלום مرحبا こんにちは 안녕하세요 ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "people said sop and eop, [MASK] </s> <s> <unk>",
)


@dataclass(frozen=True)
class SentencePieceModel:
    """What the conversion needs from a SentencePiece model file."""

    pieces: tuple[tuple[str, float, int], ...]  # (piece, score, type) in id order
    model_type: int = UNIGRAM  # TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char
    byte_fallback: bool = False  # unknown characters become <0xXX> byte pieces
    unk_id: int = 0
    eos_id: int = 2  # -1 when the model has no end-of-sequence piece
    treat_whitespace_as_suffix: bool = False  # "▁" at the end of pieces instead of the start
    normalizer_name: str = ""  # "identity", "nmt_nfkc", ... (informative)
    precompiled_charsmap: bytes = b""  # the compiled normalization rules (empty for identity)
    add_dummy_prefix: bool = True  # a "▁" before every encoded text
    remove_extra_whitespaces: bool = True  # strip ends and collapse inner runs of spaces
    escape_whitespaces: bool = True  # write spaces as "▁"

    @property
    def unk_piece(self) -> str:
        return self.pieces[self.unk_id][0]


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for the other wire types."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield field, value
            continue
        if wire == 1:
            size = 8
        elif wire == 5:
            size = 4
        elif wire == 2:
            size, i = _varint(buf, i)
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i + size > len(buf):
            raise ValueError("truncated field")
        yield field, buf[i:i + size]
        i += size


def _int32(value: int | bytes) -> int:
    assert isinstance(value, int)
    return value - (1 << 64) if value >= 1 << 63 else value


def read_sentencepiece(path: str | Path) -> SentencePieceModel:
    """Decode a SentencePiece `ModelProto` (pieces, trainer and normalizer options)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return _parse(path.read_bytes())
    except (ValueError, UnicodeDecodeError, struct.error, AssertionError, IndexError):
        raise InputError(
            f"{path}: not a SentencePiece model (GLM-4 checkpoints, for example, ship a tiktoken vocabulary "
            "under this name; transformers loads the '-hf' GLM-4 releases natively)"
        ) from None


def _parse(data: bytes) -> SentencePieceModel:
    pieces: list[tuple[str, float, int]] = []
    trainer: dict[str, int] = {}
    norm: dict[str, object] = {}
    seen = set()
    for field, value in _fields(data):
        seen.add(field)
        if field == 1:  # repeated SentencePiece pieces
            assert isinstance(value, bytes)
            piece, score, kind = "", 0.0, NORMAL
            for f, v in _fields(value):
                if f == 1:
                    assert isinstance(v, bytes)
                    piece = v.decode("utf-8")
                elif f == 2:
                    assert isinstance(v, bytes)
                    score = struct.unpack("<f", v)[0]
                elif f == 3:
                    kind = _int32(v)
            if not NORMAL <= kind <= BYTE:
                raise ValueError(f"piece type {kind}")
            pieces.append((piece, score, kind))
        elif field == 2:  # TrainerSpec
            assert isinstance(value, bytes)
            names = {3: "model_type", 24: "treat_whitespace_as_suffix", 35: "byte_fallback", 40: "unk_id", 42: "eos_id"}
            trainer.update({names[f]: _int32(v) for f, v in _fields(value) if f in names})
        elif field == 3:  # NormalizerSpec
            assert isinstance(value, bytes)
            for f, v in _fields(value):
                if f == 1:
                    norm["name"] = bytes(v).decode("utf-8")  # type: ignore[arg-type]
                elif f == 2:
                    norm["charsmap"] = bytes(v)  # type: ignore[arg-type]
                elif f in (3, 4, 5):
                    norm[{3: "prefix", 4: "extra", 5: "escape"}[f]] = bool(v)
    if not pieces or not {2, 3} <= seen:
        raise ValueError("no pieces, trainer spec or normalizer spec")
    model = SentencePieceModel(
        pieces=tuple(pieces),
        model_type=trainer.get("model_type", UNIGRAM),
        byte_fallback=bool(trainer.get("byte_fallback", 0)),
        unk_id=trainer.get("unk_id", 0),
        eos_id=trainer.get("eos_id", 2),
        treat_whitespace_as_suffix=bool(trainer.get("treat_whitespace_as_suffix", 0)),
        normalizer_name=str(norm.get("name", "")),
        precompiled_charsmap=norm.get("charsmap", b""),  # type: ignore[arg-type]
        add_dummy_prefix=bool(norm.get("prefix", True)),
        remove_extra_whitespaces=bool(norm.get("extra", True)),
        escape_whitespaces=bool(norm.get("escape", True)),
    )
    if not 0 <= model.unk_id < len(pieces):
        raise ValueError("unk_id out of range")
    return model


def bpe_merges(model: SentencePieceModel) -> list[tuple[str, str]]:
    """Every (left, right) split of a normal piece into two normal pieces, best-scoring result first.

    SentencePiece ranks candidate merges by the score of the piece they make, so all splits of one piece
    share a rank there (the leftmost candidate wins); here they follow each other, ordered by the ids of
    their halves. The two agree except when one string offers two different splits of the same piece at
    once, which the probe texts check does not happen in practice.
    """
    ids = {p: i for i, (p, _, kind) in enumerate(model.pieces) if kind == NORMAL}
    ranked: list[tuple[float, int, int, int, tuple[str, str]]] = []
    for piece, i in ids.items():
        score = model.pieces[i][1]
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in ids and right in ids:
                ranked.append((-score, i, ids[left], ids[right], (left, right)))
    ranked.sort()
    return [pair for *_, pair in ranked]


def sentencepiece_tokenizer(model: SentencePieceModel) -> Tokenizer:
    """A `tokenizers.Tokenizer` that encodes and decodes like this SentencePiece BPE model.

    Control pieces (`<s>`, `</s>`) and the unknown piece keep their ids and become special tokens; the
    caller adds its own special tokens after the vocabulary.
    """
    if model.model_type != BPE_MODEL:
        kind = {UNIGRAM: "unigram", 3: "word", 4: "char"}.get(model.model_type, str(model.model_type))
        raise InputError(f"only SentencePiece BPE models can be converted; this one is a {kind} model")
    if model.treat_whitespace_as_suffix or not model.escape_whitespaces:
        raise InputError("SentencePiece models with treat_whitespace_as_suffix or without escape_whitespaces "
                         "are not supported")
    user_defined = [p for p, _, kind in model.pieces if kind == USER_DEFINED]
    if user_defined:
        raise InputError(f"SentencePiece user-defined symbols are not supported ({user_defined[:5]})")
    vocab = {piece: i for i, (piece, _, _) in enumerate(model.pieces)}
    if len(vocab) != len(model.pieces):
        raise InputError("the SentencePiece model repeats a piece")
    tok = Tokenizer(BPE(vocab, bpe_merges(model), unk_token=model.unk_piece, fuse_unk=True,
                        byte_fallback=model.byte_fallback))
    steps: list[normalizers.Normalizer] = []
    if model.precompiled_charsmap:
        steps.append(normalizers.Precompiled(model.precompiled_charsmap))
    if model.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex("^ +| +$"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if model.add_dummy_prefix:
        steps.append(normalizers.Prepend(SPACE))  # only on non-empty text, as SentencePiece does
    steps.append(normalizers.Replace(" ", SPACE))
    tok.normalizer = normalizers.Sequence(steps)
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
        + ([decoders.Strip(" ", 1, 0)] if model.add_dummy_prefix else [])
    )
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p, _, kind in model.pieces
                            if kind in (CONTROL, UNKNOWN)])
    return tok


def mismatches(
    tokenizer: Tokenizer, sentencepiece_file: str | Path, texts: Iterable[str] = PROBE_TEXTS,
) -> list[tuple[str, Sequence[int], Sequence[int]]]:
    """(text, ours, sentencepiece's) for each text the two tokenizers encode differently.

    Special tokens are not matched in the text (SentencePiece knows none), so this compares the
    SentencePiece part alone.
    """
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(sentencepiece_file))
    was = tokenizer.encode_special_tokens
    tokenizer.encode_special_tokens = True
    try:
        out = []
        for text in texts:
            ours = tokenizer.encode(text, add_special_tokens=False).ids
            theirs = sp.encode(text)
            if ours != theirs:
                out.append((text, ours, theirs))
        return out
    finally:
        tokenizer.encode_special_tokens = was
