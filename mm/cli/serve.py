"""Serve the model over HTTP: OpenAI-compatible /v1/chat/completions, VisualGLM's POST /, /v1/captions.

Binds 127.0.0.1 by default; pass --host 0.0.0.0 to expose it (and set --api-key). Every flag is checked
before the model loads: a bad port or a limit that is zero, negative or NaN is a one-line error.

Examples:
  mm serve --port 8000
  mm serve --model runs/tiny/model --api-key secret --max-queue 16
  mm serve --allow-url-host images.example.com --fetch-timeout 5 --deadline-seconds 60
"""

from __future__ import annotations

import dataclasses
import os

from mm.cli.common import (
    add_limit_args,
    add_model_args,
    limits_from_args,
    load_model,
    parser,
    port_number,
    positive_float,
    positive_int,
)


def main(argv: list[str]) -> int:
    p = parser("serve", __doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=8000, help="1 to 65535 (default: %(default)s)")
    p.add_argument("--api-key", default=os.environ.get("MM_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $MM_API_KEY; none when unset)")
    p.add_argument("--name", default=None, help="model name reported by the API (default: --model)")
    g = p.add_argument_group("server limits")
    g.add_argument("--max-queue", type=positive_int, default=8,
                   help="requests waiting for the model before 429 (default: %(default)s)")
    g.add_argument("--max-body-mb", type=positive_float, default=32.0, help="request body (default: %(default)g MB)")
    g.add_argument("--max-tokens", type=positive_int, default=1024,
                   help="cap on a request's max_tokens; a request that omits it gets min(256, this) "
                   "(default: %(default)s)")
    g.add_argument("--max-items", type=positive_int, default=8, help="media items per chat request (default: %(default)s)")
    g.add_argument("--max-batch", type=positive_int, default=64, help="items per /v1/captions request (default: %(default)s)")
    g.add_argument("--max-text-kb", type=positive_float, default=64.0,
                   help="UTF-8 size of a question or caption prompt (default: %(default)g KB)")
    g.add_argument("--allow-url-host", action="append", default=[], metavar="HOST[:PORT]",
                   help="host image_url may fetch http(s) URLs from (repeatable; default: none, only data: URLs)")
    g.add_argument("--fetch-timeout", type=positive_float, default=10.0,
                   help="seconds to fetch one remote image, redirects included (default: %(default)g)")
    add_limit_args(p)
    add_model_args(p)
    args = p.parse_args(argv)

    from mm.serve import ServerLimits

    shared = limits_from_args(args)  # InputError ("mm serve: error: ...") when a limit is out of range
    limits = ServerLimits(**dataclasses.asdict(shared), max_body_bytes=max(1, round(args.max_body_mb * 2**20)),
                          max_new_tokens=args.max_tokens, max_items=args.max_items, max_batch=args.max_batch,
                          max_text_bytes=max(1, round(args.max_text_kb * 2**10)),
                          fetch_timeout=args.fetch_timeout, url_allowlist=tuple(args.allow_url_host))
    import uvicorn

    from mm.serve import create_app

    app = create_app(load_model(args), model_name=args.name or str(args.model), api_key=args.api_key,
                     limits=limits, max_queue=args.max_queue)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
