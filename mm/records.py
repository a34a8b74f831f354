"""`Record`: one sample of a dataset, as every reader yields it (media references + captions or dialogues).

The readers of training formats (`mm.train.sources`) and of WebDataset shards (`mm.webdataset`, which
`mm caption` reads too) all produce these; nothing here opens a media file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Record:
    id: str
    media: list[tuple[str, Any]]  # (modality, path or bytes)
    captions: list[str] = field(default_factory=list)  # any language
    conversations: list[list[tuple[str, str]]] = field(default_factory=list)  # dialogues of (query, answer)
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific (synthetic world: qa, captions by lang)


def turns_from_sharegpt(conv: list[dict]) -> list[tuple[str, str]]:
    """LLaVA / ShareGPT `[{"from": "human", "value"}, {"from": "gpt", "value"}, ...]` -> turns.

    The `<image>` / `<audio>` markers are removed: this project places media before the first query.
    """
    turns, query = [], None
    for msg in conv:
        who, text = msg.get("from", msg.get("role")), msg.get("value", msg.get("content", ""))
        text = text.replace("<image>", "").replace("<audio>", "").strip()
        if who in ("human", "user"):
            query = text
        elif who in ("gpt", "assistant") and query is not None:
            turns.append((query, text))
            query = None
    return turns
