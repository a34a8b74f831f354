"""The HTTP server: OpenAI-compatible chat completions, VisualGLM's api.py, captions, health.

`create_app(chat, ...) -> FastAPI`; `mm serve` runs it with uvicorn. Generation runs on one worker thread
behind a bounded queue (429 when full), so a long answer never blocks /health. Bad input is a 4xx with
OpenAI's error shape `{"error": {"message", "type", "param", "code"}}`, never a 500.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from encoders.audio_io import SAMPLE_RATE, load_audio
from encoders.video_io import probe_duration
from mm.errors import InputError
from mm.media import prepare, prepare_media
from mm.prompt import CAPTION_PROMPTS
from mm.serve.requests import ChatCall, Limits, parse_captions, parse_chat_completion, parse_visualglm
from mm.serve.worker import QueueFull, Worker

logger = logging.getLogger(__name__)

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
               500: "server_error"}


def error(status: int, message: str, param: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _check_images(images: list[bytes], limits: Limits) -> None:
    for i, data in enumerate(images):
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
        except Exception:  # noqa: BLE001 - decoding errors are reported by load_image later
            continue
        if w * h > limits.max_image_pixels:
            raise InputError(f"image {i} is {w}x{h}; this server takes at most {limits.max_image_pixels} pixels")


def _audio(audios: list[bytes], limits: Limits) -> list[tuple[Any, int]]:
    out = []
    for i, data in enumerate(audios):
        wave = load_audio(data)
        if wave.shape[0] / SAMPLE_RATE > limits.max_audio_seconds:
            raise InputError(f"audio {i} is {wave.shape[0] / SAMPLE_RATE:.0f} s; this server takes at most "
                             f"{limits.max_audio_seconds:.0f} s")
        out.append((wave, SAMPLE_RATE))
    return out


def create_app(chat: Any, *, model_name: str = "mm-tiny", api_key: str | None = None,
               limits: Limits | None = None, max_queue: int = 8) -> FastAPI:
    limits = limits or Limits()
    worker = Worker(max_queue)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        worker.close()

    app = FastAPI(title="mm", description="Vision-audio-language chat model server", version="1", lifespan=lifespan)
    app.state.worker = worker

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path != "/health" and api_key is not None:
            auth = request.headers.get("authorization", "")
            if not secrets.compare_digest(auth.encode(), f"Bearer {api_key}".encode()):
                return error(401, "missing or wrong API key: send 'Authorization: Bearer KEY'")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_body_bytes:
            return error(413, f"request body is {length} bytes; the limit is {limits.max_body_bytes}")
        return await call_next(request)

    @app.exception_handler(InputError)
    async def _input_error(_: Request, e: InputError) -> JSONResponse:
        return error(400, str(e))

    @app.exception_handler(HTTPError)
    async def _http_error(_: Request, e: HTTPError) -> JSONResponse:
        return error(e.status, str(e))

    @app.exception_handler(QueueFull)
    async def _busy(_: Request, e: QueueFull) -> JSONResponse:
        return error(429, f"the server is busy ({max_queue} requests queued); retry shortly")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        return error(400, f"invalid request: {e.errors()[0].get('msg', 'bad field')}")

    @app.exception_handler(StarletteHTTPException)
    async def _starlette(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail))

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > limits.max_body_bytes:
            raise HTTPError(413, f"request body is {len(raw)} bytes; the limit is {limits.max_body_bytes}")
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError("the request body is not valid JSON") from None

    def replies(call: ChatCall):
        _check_images(call.images, limits)
        audio = _audio(call.audios, limits)
        return chat.respond(call.query, image=call.images or None, audio=audio or None, history=call.history,
                            **call.gen)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "queued": worker.pending}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "mm"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await json_body(request)
        call = parse_chat_completion(body, limits)
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        stream = worker.stream(lambda: replies(call))
        if not body.get("stream"):
            last = await _last(stream)
            return {"id": rid, "object": "chat.completion", "created": created, "model": model_name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": last.text},
                                 "finish_reason": last.finish_reason}],
                    "usage": {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens,
                              "total_tokens": last.prompt_tokens + last.completion_tokens}}
        # Wait for the first step, so bad input is still a clean 400 rather than a broken stream.
        first = await stream.__anext__()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> str:
            payload = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model_name,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []}
            if usage is not None:
                payload["usage"] = usage
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            sent, reply = "", first
            try:
                while True:
                    if reply.text.startswith(sent) and reply.text != sent:
                        yield chunk({"content": reply.text[len(sent):]})
                        sent = reply.text
                    if reply.finish_reason is not None:
                        break
                    reply = await stream.__anext__()
                yield chunk({}, reply.finish_reason)
                if include_usage:
                    yield chunk({}, usage={"prompt_tokens": reply.prompt_tokens,
                                           "completion_tokens": reply.completion_tokens,
                                           "total_tokens": reply.prompt_tokens + reply.completion_tokens})
            except Exception as e:  # noqa: BLE001 - the status line is already sent; report in-band
                logger.exception("stream failed")
                yield f"data: {json.dumps({'error': {'message': str(e), 'type': 'server_error'}})}\n\n"
            finally:
                await stream.aclose()
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/")
    async def visualglm(request: Request):
        call = parse_visualglm(await json_body(request), limits)
        reply = await _last(worker.stream(lambda: replies(call)))
        return {"result": reply.text, "history": [list(h) for h in reply.history], "status": 200,
                "time": time.strftime("%Y-%m-%d %H:%M:%S")}

    @app.post("/v1/captions")
    async def captions(request: Request):
        items, options = parse_captions(await json_body(request), limits)
        prompt, lang = options.pop("prompt"), options.pop("lang")
        if lang not in ("en", "zh"):
            raise InputError(f"lang must be 'en' or 'zh', got {lang!r}")

        def work() -> list[str]:
            _check_images([b for m, b in items if m == "image"], limits)
            requests = []
            for i, (modality, data) in enumerate(items):
                if modality == "video":
                    seconds = probe_duration(data)
                    if seconds > limits.max_video_seconds:
                        raise InputError(f"items[{i}].video is {seconds:.0f} s; this server takes at most "
                                         f"{limits.max_video_seconds:.0f} s")
                    media = prepare_media(chat.model, "video", data)
                else:
                    source = _audio([data], limits)[0] if modality == "audio" else data
                    media = [prepare(chat.model, modality, source)]
                requests.append((prompt or CAPTION_PROMPTS[modality][lang][0], [], media))
            return chat.answer_batch(requests, **options)

        texts = await worker.run(work)
        return {"object": "list", "model": model_name,
                "data": [{"index": i, "modality": m, "caption": t} for i, ((m, _), t) in enumerate(zip(items, texts))]}

    return app


async def _last(items: AsyncIterator[Any]) -> Any:
    """The final item of a stream of replies (each one holds the whole text so far)."""
    last = None
    async for item in items:
        last = item
    return last
