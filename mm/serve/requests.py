"""Turning HTTP request bodies (OpenAI chat completions, VisualGLM api.py, captions) into model calls.

Everything here is pure parsing and validation: it raises `InputError` with a message for the client.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from mm.errors import InputError


@dataclass
class Limits:
    max_body_bytes: int = 32 * 2**20  # whole request
    max_image_pixels: int = 4096 * 4096  # per image, after decoding the header
    max_audio_seconds: float = 600.0  # per clip
    max_video_seconds: float = 600.0  # per video
    max_items: int = 8  # media items per request
    max_new_tokens: int = 1024  # cap on max_tokens
    max_batch: int = 64  # caption items per request
    url_allowlist: tuple[str, ...] = ()  # hosts from which image_url may fetch http(s) URLs


@dataclass
class ChatCall:
    query: str
    history: list[tuple[str, str]]
    images: list[bytes] = field(default_factory=list)
    audios: list[bytes] = field(default_factory=list)
    gen: dict[str, Any] = field(default_factory=dict)


def decode_b64(data: Any, what: str) -> bytes:
    if not isinstance(data, str) or not data:
        raise InputError(f"{what}: expected a base64 string")
    if data.startswith("data:"):
        header, _, data = data.partition(",")
        if ";base64" not in header:
            raise InputError(f"{what}: only base64 data: URLs are supported")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{what}: not valid base64") from None


def _fetch(url: str, limits: Limits) -> bytes:
    host = urllib.parse.urlparse(url).hostname or ""
    if host not in limits.url_allowlist:
        raise InputError(
            "remote image URLs are refused; send the image inline as a data: URL "
            "(or start the server with --allow-url-host HOST)"
        )
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - host is allowlisted
        data = r.read(limits.max_body_bytes + 1)
    if len(data) > limits.max_body_bytes:
        raise InputError(f"{url}: larger than {limits.max_body_bytes} bytes")
    return data


def _gen(body: dict[str, Any], limits: Limits, default_max: int = 256) -> dict[str, Any]:
    """Generation settings from OpenAI names. Defaults are greedy: set temperature for sampling."""
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens")) or default_max
    out: dict[str, Any] = {}
    for name, key, kind in (("max_new_tokens", None, int), ("temperature", "temperature", float),
                            ("top_p", "top_p", float), ("top_k", "top_k", int), ("seed", "seed", int),
                            ("repetition_penalty", "repetition_penalty", float)):
        value = max_tokens if key is None else body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{key or 'max_tokens'} must be a number")
        out[name] = kind(value)
    if out["max_new_tokens"] > limits.max_new_tokens:
        raise InputError(f"max_tokens is {out['max_new_tokens']}; this server allows at most {limits.max_new_tokens}")
    return out


def _parts(content: Any, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return content
    raise InputError(f"{role} message content must be a string or a list of content parts")


def parse_chat_completion(body: Any, limits: Limits) -> ChatCall:
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InputError("'messages' must be a non-empty list")
    if body.get("n", 1) != 1:
        raise InputError("only n=1 is supported")
    turns: list[list[str]] = []  # [query, answer] pairs being built
    images: list[bytes] = []
    audios: list[bytes] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg:
            raise InputError(f"messages[{i}] must be an object with a 'role'")
        role = msg["role"]
        if role in ("system", "developer"):
            continue  # the chat templates of this model have no system turn
        parts = _parts(msg.get("content"), role)
        texts = []
        for part in parts:
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("text", "")))
            elif kind == "image_url" and role == "user":
                url = (part.get("image_url") or {}).get("url", "")
                images.append(_fetch(url, limits) if url.startswith(("http://", "https://"))
                              else decode_b64(url, f"messages[{i}] image_url"))
            elif kind == "input_audio" and role == "user":
                audios.append(decode_b64((part.get("input_audio") or {}).get("data"), f"messages[{i}] input_audio"))
            else:
                raise InputError(f"messages[{i}]: unsupported content part {kind!r} for role {role!r}")
        text = "\n".join(t for t in texts if t)
        if role == "user":
            if turns and turns[-1][1] is None:
                turns[-1][0] += "\n" + text  # consecutive user messages form one query
            else:
                turns.append([text, None])
        elif role == "assistant":
            if not turns or turns[-1][1] is not None:
                raise InputError(f"messages[{i}]: an assistant message must follow a user message")
            turns[-1][1] = text
        else:
            raise InputError(f"messages[{i}]: unknown role {role!r}")
    if not turns or turns[-1][1] is not None:
        raise InputError("the last message must come from the user")
    if len(images) + len(audios) > limits.max_items:
        raise InputError(f"{len(images) + len(audios)} media items; this server takes at most {limits.max_items}")
    query = turns[-1][0]
    history = [(q, a) for q, a in turns[:-1]]
    return ChatCall(query, history, images, audios, _gen(body, limits))


def parse_visualglm(body: Any, limits: Limits) -> ChatCall:
    """VisualGLM-6B api.py: {"image": base64 | null, "text": str, "history": [[q, a], ...]}."""
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError("'text' must be a non-empty string")
    history = body.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, (list, tuple)) and len(h) == 2 for h in history):
        raise InputError("'history' must be a list of [query, response] pairs")
    images = [decode_b64(body["image"], "image")] if body.get("image") else []
    gen = {"max_tokens": min(int(body.get("max_length", 256)), limits.max_new_tokens)}
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            gen[key] = body[key]
    return ChatCall(text, [(str(q), str(a)) for q, a in history], images, [], _gen(gen, limits))


def parse_captions(body: Any, limits: Limits) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """{"items": [{"image": b64} | {"audio": b64} | {"video": b64}], "prompt"?, "lang"?, "max_tokens"?}."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list) or not body["items"]:
        raise InputError("'items' must be a non-empty list of {\"image\" | \"audio\" | \"video\": base64}")
    if len(body["items"]) > limits.max_batch:
        raise InputError(f"{len(body['items'])} items; this server captions at most {limits.max_batch} per request")
    items = []
    for i, it in enumerate(body["items"]):
        kinds = [k for k in ("image", "audio", "video") if isinstance(it, dict) and it.get(k)]
        if len(kinds) != 1:
            raise InputError(f"items[{i}] must have exactly one of 'image', 'audio' or 'video'")
        items.append((kinds[0], decode_b64(it[kinds[0]], f"items[{i}].{kinds[0]}")))
    options = {"prompt": body.get("prompt"), "lang": body.get("lang", "en"), **_gen(body, limits, default_max=64)}
    return items, options
