"""Turning HTTP request bodies (OpenAI chat completions, VisualGLM api.py, captions) into model calls.

Everything here is pure parsing and validation (types and ranges come from `mm.serve.validate`): it
raises `InputError` with a message for the client. Remote images are only checked here (scheme, host);
`mm.serve.fetch` downloads them later, off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from mm.errors import InputError
from mm.limits import Limits
from mm.serve.validate import boolean, generation, mapping, string


@dataclass(frozen=True)
class ServerLimits(Limits):
    """`mm.limits.Limits` (same fields, same defaults) plus what only the HTTP server needs."""

    max_body_bytes: int = 32 * 2**20  # whole request body
    max_items: int = 8  # media items per chat request
    max_new_tokens: int = 1024  # cap on a request's max_tokens
    max_batch: int = 64  # caption items per request
    max_json_depth: int = 64  # nesting of the request body
    max_text_bytes: int = 64 * 2**10  # UTF-8 bytes of the question (or caption prompt); the context is far smaller
    fetch_timeout: float = 10.0  # seconds for fetching one remote image, redirects included
    url_allowlist: tuple[str, ...] = ()  # "host" or "host:port" that image_url may fetch http(s) URLs from

    def __post_init__(self) -> None:
        super().__post_init__()
        hosts = self.url_allowlist
        if isinstance(hosts, str) or not all(isinstance(h, str) and h.strip() for h in hosts):
            raise InputError(f"url_allowlist must be a list of host names, got {hosts!r}")
        object.__setattr__(self, "url_allowlist", tuple(h.strip().lower() for h in hosts))

    @property
    def max_fetch_bytes(self) -> int:
        """The most a remote image may weigh: a file limit, but never more than a request body."""
        return min(self.max_file_bytes, self.max_body_bytes)


@dataclass(frozen=True)
class RemoteImage:
    url: str  # http(s) URL whose host is allowlisted; fetched by mm.serve.fetch


@dataclass
class ChatCall:
    query: str
    history: list[tuple[str, str]]
    images: list[bytes | RemoteImage] = field(default_factory=list)
    audios: list[bytes] = field(default_factory=list)
    gen: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False


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


def allowed_url(url: str, limits: ServerLimits) -> str:
    """`url` when its scheme is http(s) and its host (or host:port) is allowlisted; InputError otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        raise InputError(f"{url[:200]!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InputError(f"{url[:200]!r}: only http and https URLs can be fetched")
    default_port = 443 if parts.scheme == "https" else 80
    if host not in limits.url_allowlist and f"{host}:{port or default_port}" not in limits.url_allowlist:
        raise InputError(
            "remote image URLs are refused; send the image inline as a data: URL "
            "(or start the server with --allow-url-host HOST)"
            if not limits.url_allowlist else
            f"{url[:200]}: host {host!r} is not in this server's --allow-url-host list"
        )
    return url


def image_source(url: Any, what: str, limits: ServerLimits) -> bytes | RemoteImage:
    url = string(url, f"{what}.url")
    if url.startswith("data:"):
        return decode_b64(url, what)
    scheme = url.partition(":")[0].lower()
    if scheme in ("http", "https"):
        return RemoteImage(allowed_url(url, limits))
    if ":" in url[:12] and scheme.isalpha():
        raise InputError(f"{what}: {scheme}: URLs are refused; send a data: URL or an http(s) URL")
    return decode_b64(url, what)  # bare base64, as some clients send


def check_history(history: list[tuple[str, str]], limits: Limits) -> None:
    if len(history) > limits.max_history_turns:
        raise InputError(f"the history has {len(history)} turns; this server takes at most "
                         f"{limits.max_history_turns} (--max-history-turns)")
    size = sum(len(q.encode()) + len(a.encode()) for q, a in history)
    if size > limits.max_history_bytes:
        raise InputError(f"the history is {size} bytes of text; this server takes at most "
                         f"{limits.max_history_bytes} (--max-history-kb)")


def check_text(text: str, what: str, limits: ServerLimits) -> str:
    """Refuse a question far longer than any context before the tokenizer spends seconds on it."""
    size = len(text.encode())
    if size > limits.max_text_bytes:
        raise InputError(f"{what} is {size} bytes; this server takes at most {limits.max_text_bytes} (--max-text-kb)")
    return text


def _parts(content: Any, role: str, i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
        return content
    raise InputError(f"messages[{i}].content must be a string or a non-empty list of content parts")


def parse_chat_completion(body: Any, limits: ServerLimits) -> ChatCall:
    body = mapping(body, "the request body")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InputError("'messages' must be a non-empty list")
    n = body.get("n", 1)
    if n is not None and (isinstance(n, bool) or n != 1):
        raise InputError("only n=1 is supported")
    turns: list[list[Any]] = []  # [[query parts], answer or None] being built
    images: list[bytes | RemoteImage] = []
    audios: list[bytes] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise InputError(f"messages[{i}] must be an object with a string 'role'")
        role = msg["role"]
        if role not in ("system", "developer", "user", "assistant"):
            raise InputError(f"messages[{i}]: unknown role {role[:40]!r}")
        if role in ("system", "developer"):
            continue  # the chat templates of this model have no system turn
        content = msg.get("content")
        if role == "assistant" and content is None:
            content = ""
        texts = []
        for j, part in enumerate(_parts(content, role, i)):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type")
            if kind == "text":
                texts.append(string(part.get("text"), f"{where}.text"))
            elif kind == "image_url" and role == "user":
                ref = mapping(part.get("image_url"), f"{where}.image_url")
                images.append(image_source(ref.get("url"), f"{where}.image_url", limits))
            elif kind == "input_audio" and role == "user":
                ref = mapping(part.get("input_audio"), f"{where}.input_audio")
                audios.append(decode_b64(ref.get("data"), f"{where}.input_audio.data"))
            else:
                shown = kind[:40] if isinstance(kind, str) else kind if kind is None else type(kind).__name__
                raise InputError(f"messages[{i}]: unsupported content part {shown!r} for role {role!r}")
            if len(images) + len(audios) > limits.max_items:
                raise InputError(f"more than {limits.max_items} media items; this server takes at most "
                                 f"{limits.max_items}")
        text = "\n".join(t for t in texts if t)
        if role == "user":
            if turns and turns[-1][1] is None:
                turns[-1][0].append(text)  # consecutive user messages form one query (joined once, below)
            else:
                turns.append([[text], None])
        else:
            if not turns or turns[-1][1] is not None:
                raise InputError(f"messages[{i}]: an assistant message must follow a user message")
            turns[-1][1] = text
    if not turns or turns[-1][1] is not None:
        raise InputError("the last message must come from the user")
    query = check_text("\n".join(turns[-1][0]), "the question", limits)
    history = [("\n".join(q), a) for q, a in turns[:-1]]
    check_history(history, limits)
    options = mapping(body.get("stream_options") or {}, "'stream_options'")
    return ChatCall(query, history, images, audios,
                    generation(body, cap=limits.max_new_tokens, default_max=256),
                    stream=boolean(body, "stream"), include_usage=boolean(options, "include_usage"))


def parse_visualglm(body: Any, limits: ServerLimits) -> ChatCall:
    """VisualGLM-6B api.py: {"image": base64 | null, "text": str, "history": [[q, a], ...], "max_length"?}.

    `max_length` caps the tokens generated, with the rules of `max_tokens`.
    """
    body = mapping(body, "the request body")
    text = check_text(string(body.get("text"), "'text'", empty=False), "'text'", limits)
    history = body.get("history") or []
    if not isinstance(history, list) or not all(
            isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in history):
        raise InputError("'history' must be a list of [query, response] pairs of strings")
    history = [(q, a) for q, a in history]
    check_history(history, limits)
    images = [decode_b64(body["image"], "'image'")] if body.get("image") is not None else []
    gen = generation(body, cap=limits.max_new_tokens, default_max=256, max_key="max_length")
    return ChatCall(text, history, images, [], gen)


def parse_captions(body: Any, limits: ServerLimits) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """{"items": [{"image": b64} | {"audio": b64} | {"video": b64}], "prompt"?, "lang"?, "max_tokens"?}."""
    body = mapping(body, "the request body")
    if not isinstance(body.get("items"), list) or not body["items"]:
        raise InputError("'items' must be a non-empty list of {\"image\" | \"audio\" | \"video\": base64}")
    if len(body["items"]) > limits.max_batch:
        raise InputError(f"{len(body['items'])} items; this server captions at most {limits.max_batch} per request")
    items = []
    for i, it in enumerate(body["items"]):
        kinds = [k for k in ("image", "audio", "video") if isinstance(it, dict) and it.get(k) is not None]
        if len(kinds) != 1:
            raise InputError(f"items[{i}] must have exactly one of 'image', 'audio' or 'video'")
        items.append((kinds[0], decode_b64(it[kinds[0]], f"items[{i}].{kinds[0]}")))
    prompt = body.get("prompt")
    if prompt is not None:
        check_text(string(prompt, "'prompt'", empty=False), "'prompt'", limits)
    lang = body.get("lang", "en")
    if lang not in ("en", "zh"):
        raise InputError(f"'lang' must be 'en' or 'zh', got {str(lang)[:40]!r}")
    options = {"prompt": prompt, "lang": lang, **generation(body, cap=limits.max_new_tokens, default_max=64)}
    return items, options
