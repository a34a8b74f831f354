"""Serve the model over HTTP: OpenAI-compatible /v1/chat/completions, VisualGLM's POST /, /v1/captions.

Binds 127.0.0.1 by default; pass --host 0.0.0.0 to expose it (and set --api-key).

Examples:
  mm serve --port 8000
  mm serve --model runs/tiny/model --api-key secret --max-queue 16
"""

from __future__ import annotations

import os

from mm.cli.common import add_model_args, load_model, parser


def main(argv: list[str]) -> int:
    p = parser("serve", __doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("MM_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $MM_API_KEY; none when unset)")
    p.add_argument("--max-queue", type=int, default=8, help="requests waiting for the model before 429")
    p.add_argument("--max-body-mb", type=float, default=32.0)
    p.add_argument("--max-image-pixels", type=int, default=4096 * 4096)
    p.add_argument("--max-audio-seconds", type=float, default=600.0)
    p.add_argument("--max-video-seconds", type=float, default=600.0, help="longest video /v1/captions takes")
    p.add_argument("--max-tokens", type=int, default=1024, help="cap on a request's max_tokens")
    p.add_argument("--allow-url-host", action="append", default=[], help="host image_url may fetch from (repeatable)")
    p.add_argument("--name", default=None, help="model name reported by the API (default: --model)")
    add_model_args(p)
    args = p.parse_args(argv)
    import uvicorn

    from mm.serve import Limits, create_app

    limits = Limits(max_body_bytes=int(args.max_body_mb * 2**20), max_image_pixels=args.max_image_pixels,
                    max_audio_seconds=args.max_audio_seconds, max_video_seconds=args.max_video_seconds,
                    max_new_tokens=args.max_tokens,
                    url_allowlist=tuple(args.allow_url_host))
    app = create_app(load_model(args), model_name=args.name or str(args.model), api_key=args.api_key,
                     limits=limits, max_queue=args.max_queue)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
