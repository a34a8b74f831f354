"""Boundary validation for the HTTP server, in one place: request bodies and the fields read from them.

Everything a client sends passes through here before it reaches the model, and anything wrong is an
`InputError` (HTTP 400) that names the field:

- `parse_json`: strict UTF-8, no NaN / Infinity / out-of-range floats (1e400), no integers past Python's
  digit limit, nesting at most `max_depth` deep, no lone surrogates (`"\\ud800"`) in any string.
- `integer` / `number` / `boolean` / `string` / `mapping`: one field with its type and range.
- `generation`: the generation settings of a request (max_tokens, temperature, top_p, top_k, seed,
  repetition_penalty), with the server's cap and default for max_tokens.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mm.errors import InputError

SEED_LIMIT = 2**64  # seeds are unsigned 64-bit, as torch.Generator.manual_seed takes them


def _no_constant(name: str) -> Any:
    raise InputError(f"the request body holds {name}, which JSON does not allow; send a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputError(f"the number {text[:40]} is out of range")
    return value


def parse_json(raw: bytes, max_depth: int = 64) -> Any:
    """The JSON value in `raw`, checked for depth and well-formed text; InputError when it is not valid."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the request body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except InputError:
        raise
    except RecursionError:
        raise InputError(f"the request body is nested too deeply (the limit is {max_depth} levels)") from None
    except ValueError as e:  # JSONDecodeError, or an integer past Python's 4300-digit limit
        if isinstance(e, json.JSONDecodeError):
            raise InputError(f"the request body is not valid JSON: {e.msg} at position {e.pos}") from None
        raise InputError("the request body holds a number too large to read") from None
    _check_tree(value, max_depth)
    return value


def _check_tree(value: Any, max_depth: int) -> None:
    """Nesting at most `max_depth` deep, and every string (keys included) well-formed Unicode: no lone
    surrogates from `\\ud800` escapes. Iterative, so any depth the parser accepted is safe to walk."""
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, str):
            _well_formed(item)
        elif isinstance(item, (list, dict)):
            if depth > max_depth:
                raise InputError(f"the request body is nested too deeply (the limit is {max_depth} levels)")
            if isinstance(item, dict):
                todo.extend((k, depth + 1) for k in item)
                item = item.values()
            todo.extend((x, depth + 1) for x in item)


def _well_formed(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("the request holds text that is not well-formed (a lone UTF-16 surrogate such as "
                         "\\ud800); send valid Unicode") from None


def mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object, got {_kind(value)}")
    return value


def string(value: Any, what: str, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, got {_kind(value)}")
    if not empty and not value.strip():
        raise InputError(f"{what} must be a non-empty string")
    return value


def boolean(body: dict[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InputError(f"'{key}' must be true or false, got {_kind(value)}")
    return value


def integer(body: dict[str, Any], key: str, lo: int, hi: int | None = None, *, name: str | None = None) -> int | None:
    """`body[key]` as an int in [lo, hi] (hi inclusive), or None when absent. 3.0 counts as 3; 2.5 does not."""
    value = body.get(key)
    name = name or key
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"'{name}' must be an integer, got {_kind(value)}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise InputError(f"'{name}' must be {bound}, got {_short(value)}")
    return value


def number(body: dict[str, Any], key: str, lo: float, hi: float | None = None, *, lo_open: bool = False) -> float | None:
    """`body[key]` as a finite float in [lo, hi] (or (lo, hi] with lo_open), or None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"'{key}' must be a number, got {_kind(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise InputError(f"'{key}' is out of range") from None
    if not math.isfinite(value):
        raise InputError(f"'{key}' must be a finite number")
    if (value <= lo if lo_open else value < lo) or (hi is not None and value > hi):
        bound = f"{'(' if lo_open else '['}{lo}, {hi}]" if hi is not None else f"{'>' if lo_open else '>='} {lo}"
        raise InputError(f"'{key}' must be {'in ' if hi is not None else ''}{bound}, got {value}")
    return value


def generation(body: dict[str, Any], *, cap: int, default_max: int, max_key: str = "max_tokens") -> dict[str, Any]:
    """Generation settings from OpenAI names -> `MMChat.respond` keywords. Greedy unless temperature is set.

    max_tokens: omitted -> min(default_max, cap); 0, negative or above `cap` -> InputError.
    """
    keys = ("max_completion_tokens", max_key) if max_key == "max_tokens" else (max_key,)
    max_tokens = None
    for key in keys:
        max_tokens = integer(body, key, 1, name=key)
        if max_tokens is not None:
            if max_tokens > cap:
                raise InputError(f"{key} is {max_tokens}; this server allows at most {cap} (--max-tokens)")
            break
    out: dict[str, Any] = {"max_new_tokens": max_tokens if max_tokens is not None else min(default_max, cap)}
    for key, value in (("temperature", number(body, "temperature", 0.0, 100.0)),
                       ("top_p", number(body, "top_p", 0.0, 1.0, lo_open=True)),
                       ("top_k", integer(body, "top_k", 0, 2**31 - 1)),
                       ("seed", integer(body, "seed", 0, SEED_LIMIT - 1)),
                       ("repetition_penalty", number(body, "repetition_penalty", 0.0, 100.0, lo_open=True))):
        if value is not None:
            out[key] = value
    return out


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _short(value: int) -> str:
    text = str(value) if abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit number"
    return text
