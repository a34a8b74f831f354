"""Chat templates and placeholder expansion, as pure functions over token ids.

Prompts are assembled from pieces: template text (which may name special tokens) is tokenized
normally, while user and assistant text is tokenized with special tokens split, so a user who types
"<|image|>", "<image>" or "<|assistant|>" gets text, never a media slot or a role switch. Media
placeholders are inserted as ids, one per item, then `expand_placeholders` repeats each one to the
number of slots its bridge output fills.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm.errors import InputError

if TYPE_CHECKING:  # annotations only: the prompt texts below stay importable without transformers and torch
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # label value the LM loss skips

# Requests for a caption, per modality and language; the first of each list is the default.
CAPTION_PROMPTS = {
    "image": {"en": ["Describe the image.", "What is in this picture?", "Write a caption for this image."],
              "zh": ["描述这张图片。", "图片里有什么？", "为这张图片写一句描述。"]},
    "audio": {"en": ["Describe the sound.", "What do you hear?", "Write a caption for this sound."],
              "zh": ["描述这段声音。", "你听到了什么？", "为这段声音写一句描述。"]},
    "video": {"en": ["Describe the clip.", "What happens in this video?", "Write a caption for this clip."],
              "zh": ["描述这个片段。", "这段视频里发生了什么？", "为这个片段写一句描述。"]},
}

# What `mm compare` asks the model about two clips, per language. The synthetic world's canonical
# "difference" question is this text (`mm.synth.clip_text`), so the model is trained on the question it is asked.
COMPARE_PROMPTS = {"en": "What is the difference between the two clips?", "zh": "这两个片段有什么不同？"}


@dataclass(frozen=True)
class ChatTemplate:
    """A conversation format: `prefix`, then per turn `user` + query + `assistant` + answer + `end`.

    With a `generation_suffix` it is GLM's blank-infilling format (ChatGLM-6B, VisualGLM-6B): everything up
    to the last query's `assistant` is one context, tokenized as one run of text the way the published code
    does (so `user`, `assistant` and `end` must be plain text), then the suffix ("[gMASK]<sop>") and the
    last answer, the only one learned, closed by `final_end`.
    """

    name: str
    prefix: str  # once at the start (e.g. ChatGLM3's "[gMASK]sop")
    user: str  # before each query; "{i}" is replaced by the turn number
    assistant: str  # between query and answer
    end: str  # after each answer (its tokens are learned, so the model knows when to stop)
    stop: tuple[str, ...]  # tokens that end generation
    media_open: str = ""  # before the media placeholders (VisualGLM's "<img>")
    media_close: str = ""  # after them ("</img>")
    generation_suffix: str = ""  # blank infilling: after the last query's `assistant`, before its answer
    final_end: str = ""  # blank infilling: after the answer that follows `generation_suffix` (learned)


TEMPLATES = {
    t.name: t
    for t in (
        ChatTemplate("tiny", "", "<|user|>\n", "<|assistant|>\n", "<|endoftext|>", ("<|endoftext|>", "<|user|>")),
        # ChatGLM3-6B / GLM-4: role tokens, no explicit end (the next <|user|> ends the answer).
        ChatTemplate("chatglm3", "[gMASK]sop", "<|user|>\n", "<|assistant|>\n", "",
                     ("<|user|>", "<|observation|>", "<|endoftext|>")),
        # ChatGLM-6B (VisualGLM-6B's LLM): "[Round i]\n问：...\n答：..." rounds.
        ChatTemplate("chatglm", "", "[Round {i}]\n问：", "\n答：", "\n", ("</s>", "<eop>")),
        # VisualGLM-6B (its model/chat.py and finetune_visualglm.py): "<img>" slots "</img>", then rounds
        # "问：q\n答：a\n", the last "问：q\n答：", then [gMASK] <sop>; the answer ends with <eop>.
        ChatTemplate("visualglm", "", "问：", "\n答：", "\n", ("<eop>", "</s>"), media_open="<img>",
                     media_close="</img>", generation_suffix="[gMASK]<sop>", final_end="<eop>"),
        # Whatever the tokenizer's own `chat_template` says (Qwen, Llama, GLM-4-hf, ...).
        ChatTemplate("auto", "", "", "", "", ()),
    )
}

# Stand-ins for message contents while a tokenizer's Jinja chat template is rendered; they are split
# out again so that user text is tokenized on its own.
_SENTINEL = "\u2063MM{}\u2063"
_SENTINEL_RE = re.compile("\u2063MM([UA]\\d+)\u2063")


def get_template(name: str) -> ChatTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown chat template {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None


def _template_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def _text_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    # split_special_tokens: special-token strings in user text stay text.
    return tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True) if text else []


def build_prompt(
    tokenizer: PreTrainedTokenizerBase,
    template: ChatTemplate,
    turns: Sequence[tuple[str, str | None]],
    media_ids: Sequence[int] = (),
) -> tuple[list[int], list[int]]:
    """Token ids and labels for a conversation.

    `turns` is [(query, answer), ...]; the last answer may be None (a prompt for generation, which then
    ends with the assistant marker). `media_ids` are placeholder token ids, one per media item, placed at
    the start of the first query (VisualGLM puts its image first too), between the template's
    `media_open` and `media_close`. Labels are `IGNORE_INDEX` everywhere except answer tokens and their
    end marker; blank-infilling templates (`generation_suffix`) learn the last answer only.
    """
    if not turns:
        raise ValueError("a conversation needs at least one turn")
    if any(a is None for _, a in turns[:-1]):
        raise ValueError("only the last turn may have no answer")
    if template.name == "auto":
        return _build_with_tokenizer_template(tokenizer, turns, media_ids)
    if template.generation_suffix:
        return _build_blank_infilling(tokenizer, template, turns, media_ids)
    ids: list[int] = _template_ids(tokenizer, template.prefix)
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    for i, (query, answer) in enumerate(turns):
        head = _template_ids(tokenizer, template.user.replace("{i}", str(i)))
        if i == 0 and media_ids:
            head += (_template_ids(tokenizer, template.media_open) + list(media_ids)
                     + _template_ids(tokenizer, template.media_close))
        head += _text_ids(tokenizer, query) + _template_ids(tokenizer, template.assistant)
        ids += head
        labels += [IGNORE_INDEX] * len(head)
        if answer is None:
            break
        tail = _text_ids(tokenizer, answer) + _template_ids(tokenizer, template.end)
        ids += tail
        labels += tail
    return ids, labels


def fit_history(
    tokenizer: PreTrainedTokenizerBase,
    template: ChatTemplate,
    history: Sequence[tuple[str, str]],
    query: str,
    media_ids: Sequence[int],
    limit: int,
    extra: int = 0,
) -> tuple[list[int], int]:
    """The generation prompt for `query` after as many of the most recent `history` turns as fit.

    Returns (ids, dropped): `ids` equals `build_prompt` over `history[dropped:]` + `(query, None)` and
    `len(ids) + extra <= limit` (`extra`: tokens that placeholder expansion adds), with `dropped` as small
    as possible; the oldest turns go first. When not even the query alone fits, that prompt is returned
    (the caller reports it: it knows why the limit is what it is).

    Linear in the history: every query and answer is tokenized once, the number of turns to drop comes
    from running sums (each turn counted with its template text at the position it would end up at, so
    numbered rounds such as ChatGLM's "[Round {i}]" are right), and the prompt is built once. For templates
    that tokenize the conversation as one run (blank infilling, a tokenizer's own chat template) the sums
    are an estimate, corrected by building the prompt again with one turn more or less.
    """
    history = list(history)
    n = len(history)

    def build(dropped: int) -> list[int]:
        return build_prompt(tokenizer, template, [*history[dropped:], (query, None)], media_ids)[0]

    query_ids = build(n)  # the query (and its media) without history
    alone = len(query_ids) + extra
    if alone > limit or not history:
        return query_ids, n
    exact = template.name != "auto" and not template.generation_suffix
    if template.name == "auto":  # the tokenizer's template text per turn, measured once on an empty turn
        ov = len(build_prompt(tokenizer, template, [("", ""), ("", None)])[0])
        ov -= len(build_prompt(tokenizer, template, [("", None)])[0])
        user = [0] * (n + 1)
    else:
        ov = len(_template_ids(tokenizer, template.assistant)) + len(_template_ids(tokenizer, template.end))
        if "{i}" in template.user:
            user = [len(_template_ids(tokenizer, template.user.replace("{i}", str(i)))) for i in range(n + 1)]
        else:
            user = [len(_template_ids(tokenizer, template.user))] * (n + 1)
    # body[j]: tokens of history turn j's own text; after[k]: those of turns k.. together.
    body = [len(_text_ids(tokenizer, q)) + len(_text_ids(tokenizer, a)) for q, a in history]
    after = [0] * (n + 1)
    for j in range(n - 1, -1, -1):
        after[j] = after[j + 1] + body[j]
    # before[m]: template tokens of m history turns at positions 0..m-1.
    before = [0] * (n + 1)
    for m in range(n):
        before[m + 1] = before[m] + user[m] + ov
    dropped = next((k for k in range(n + 1)
                    if alone + user[n - k] - user[0] + before[n - k] + after[k] <= limit), n)
    ids = build(dropped)
    while len(ids) + extra > limit:  # an estimate was short (or, for exact templates, never)
        dropped += 1
        ids = build(dropped)
    while not exact and dropped > 0:  # an estimate may also have dropped a turn that fits
        more = build(dropped - 1)
        if len(more) + extra > limit:
            break
        dropped, ids = dropped - 1, more
    return ids, dropped


def _build_blank_infilling(
    tokenizer: PreTrainedTokenizerBase, template: ChatTemplate, turns: Sequence[tuple[str, str | None]],
    media_ids: Sequence[int],
) -> tuple[list[int], list[int]]:
    """GLM's layout, as VisualGLM-6B builds it: `encode(media_open)`, the placeholders, then one text run
    `media_close + user q1 assistant a1 end ... user q assistant` (special tokens split: user text stays
    text), then `generation_suffix` and the last answer + `final_end`, which alone are learned."""
    ids = _template_ids(tokenizer, template.prefix)
    run = ""
    if media_ids:
        ids += _template_ids(tokenizer, template.media_open) + list(media_ids)
        run = template.media_close
    *history, (query, answer) = turns
    for i, (q, a) in enumerate(history):
        run += template.user.replace("{i}", str(i)) + q + template.assistant + (a or "") + template.end
    run += template.user.replace("{i}", str(len(history))) + query + template.assistant
    ids += _text_ids(tokenizer, run) + _template_ids(tokenizer, template.generation_suffix)
    labels = [IGNORE_INDEX] * len(ids)
    if answer is not None:
        tail = _text_ids(tokenizer, answer) + _template_ids(tokenizer, template.final_end)
        ids += tail
        labels += tail
    return ids, labels


def _build_with_tokenizer_template(
    tokenizer: PreTrainedTokenizerBase, turns: Sequence[tuple[str, str | None]], media_ids: Sequence[int],
) -> tuple[list[int], list[int]]:
    """Render the tokenizer's chat template with sentinels, then tokenize template and content apart.

    Answers are learned together with the first template token after them (the end-of-turn marker).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("template 'auto' needs a tokenizer with a chat_template")
    messages = []
    for i, (_, answer) in enumerate(turns):
        messages.append({"role": "user", "content": _SENTINEL.format(f"U{i}")})
        if answer is not None:
            messages.append({"role": "assistant", "content": _SENTINEL.format(f"A{i}")})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=turns[-1][1] is None)
    parts = _SENTINEL_RE.split(text)  # template, name, template, name, ..., template
    ids: list[int] = []
    labels: list[int] = []
    learn_next = False
    for k, part in enumerate(parts):
        if k % 2 == 0:
            piece = _template_ids(tokenizer, part)
            ids += piece
            labels += [IGNORE_INDEX] * len(piece)
            if learn_next and piece:
                labels[len(ids) - len(piece)] = piece[0]
            learn_next = False
            continue
        kind, turn = part[0], int(part[1:])
        query, answer = turns[turn]
        if kind == "U":
            piece = (list(media_ids) if turn == 0 else []) + _text_ids(tokenizer, query)
            ids += piece
            labels += [IGNORE_INDEX] * len(piece)
        else:
            piece = _text_ids(tokenizer, answer or "")
            ids += piece
            labels += piece
            learn_next = True
    return ids, labels


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, template: ChatTemplate) -> set[int]:
    """Token ids that end an answer: the template's stop tokens, the tokenizer's EOS and, for a tokenizer's
    own chat template, the special token that follows an assistant message (ChatML's <|im_end|>, ...)."""
    specials = set(tokenizer.all_special_ids)
    vocab = tokenizer.get_vocab()
    ids = {vocab[t] for t in template.stop if t in vocab}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if template.name == "auto":
        _, labels = _build_with_tokenizer_template(tokenizer, [("q", "a")], [])
        learned = [t for t in labels if t != IGNORE_INDEX]
        if learned and learned[-1] in specials:
            ids.add(learned[-1])
    return ids


def expand_placeholders(
    ids: Sequence[int], placeholder_ids: set[int] | frozenset[int], counts: Sequence[int],
    labels: Sequence[int] | None = None,
) -> tuple[list[int], list[int] | None]:
    """Repeat the k-th placeholder occurrence `counts[k]` times (labels get IGNORE_INDEX there)."""
    positions = [i for i, t in enumerate(ids) if t in placeholder_ids]
    if len(positions) != len(counts):
        raise InputError(f"the prompt has {len(positions)} media placeholders but {len(counts)} media items")
    out: list[int] = []
    out_labels: list[int] | None = [] if labels is not None else None
    k = 0
    for i, t in enumerate(ids):
        n = counts[k] if t in placeholder_ids else 1
        if t in placeholder_ids:
            k += 1
        out.extend([t] * n)
        if out_labels is not None and labels is not None:
            out_labels.extend([IGNORE_INDEX if t in placeholder_ids else labels[i]] * n)
    return out, out_labels
