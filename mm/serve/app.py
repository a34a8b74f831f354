"""The HTTP server: OpenAI-compatible chat completions, VisualGLM's api.py, captions, health.

`create_app(chat, ...) -> FastAPI`; `mm serve` runs it with uvicorn. Generation runs on one worker thread
behind a bounded queue (429 when full), so a long answer never blocks /health. Request bodies are read
with a size cap and parsed on a thread (`mm.serve.validate`), remote images are fetched on a thread
(`mm.serve.fetch`), and sound and video are decoded in a child process with a deadline, so nothing a
client sends can stall the event loop or hang the process.

Bad input is a 4xx with OpenAI's error shape `{"error": {"message", "type", "param", "code"}}`; a 500
(logged, same shape) means a bug. Every request has a deadline (`limits.deadline_seconds`): one still
queued when it passes is a 503, and decoding and generation stop at it. A client that disconnects stops
its generation, streamed or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from encoders.audio_io import SAMPLE_RATE
from mm.decode_process import DecodeProcess
from mm.errors import InputError
from mm.modality import MODALITY_TYPES, ImageModality, Modality
from mm.prompt import CAPTION_PROMPTS
from mm.serve.fetch import fetch_image
from mm.serve.requests import (
    ChatCall,
    RemoteImage,
    ServerLimits,
    parse_captions,
    parse_chat_completion,
    parse_visualglm,
)
from mm.serve.validate import parse_json
from mm.serve.worker import QueueFull, QueueTimeout, Worker

if TYPE_CHECKING:
    from mm.chat import MMChat

logger = logging.getLogger(__name__)

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
               500: "server_error", 503: "server_error"}
DISCONNECT_POLL_S = 0.25  # how often a non-streaming request checks that its client is still there


def error(status: int, message: str, param: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


class Guard:
    """ASGI middleware: the API key and the declared body size, checked before anything is read."""

    def __init__(self, app: ASGIApp, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.api_key is not None and scope["path"] != "/health":
            auth = headers.get(b"authorization", b"")
            if not secrets.compare_digest(auth, f"Bearer {self.api_key}".encode()):
                response = error(401, "missing or wrong API key: send 'Authorization: Bearer KEY'")
                return await response(scope, receive, send)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            response = error(413, f"request body is {int(length)} bytes; the limit is {self.max_body_bytes}")
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def _check_headers(items: list[tuple[str, bytes]], limits: ServerLimits) -> None:
    """(modality, upload) pairs refused from their headers alone (`Modality.check_header`); an upload is
    named by its modality and its number among that modality's uploads ("image 0")."""
    seen: Counter[str] = Counter()
    for modality, data in items:
        MODALITY_TYPES[modality].check_header(data, limits, f"{modality} {seen[modality]}")
        seen[modality] += 1


def _openai_finish(reason: str | None) -> str | None:
    """OpenAI knows "stop" and "length"; a generation cut by the request deadline reads as "length"."""
    return "length" if reason == "deadline" else reason


def create_app(chat: MMChat, *, model_name: str = "mm-tiny", api_key: str | None = None,
               limits: ServerLimits | None = None, max_queue: int = 8) -> FastAPI:
    limits = limits or ServerLimits()
    worker = Worker(max_queue)
    decoder = _Decoder()

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        worker.close()
        decoder.close()

    app = FastAPI(title="mm", description="Vision-audio-language chat model server", version="1", lifespan=lifespan)
    app.state.worker = worker
    app.add_middleware(Guard, api_key=api_key, max_body_bytes=limits.max_body_bytes)

    @app.exception_handler(InputError)
    async def _input_error(_: Request, e: InputError) -> JSONResponse:
        return error(400, str(e))

    @app.exception_handler(HTTPError)
    async def _http_error(_: Request, e: HTTPError) -> JSONResponse:
        return error(e.status, str(e))

    @app.exception_handler(QueueFull)
    async def _busy(_: Request, e: QueueFull) -> JSONResponse:
        return error(429, f"the server is busy ({max_queue} requests queued); retry shortly")

    @app.exception_handler(QueueTimeout)
    async def _timeout(_: Request, e: QueueTimeout) -> JSONResponse:
        return error(503, f"timed out waiting for the model (the request deadline is "
                          f"{limits.deadline_seconds:g} s); retry later")

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, e: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it; nginx's code for "client closed request"

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        return error(400, f"invalid request: {e.errors()[0].get('msg', 'bad field')}")

    @app.exception_handler(StarletteHTTPException)
    async def _starlette(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=e)
        return error(500, f"internal error ({type(e).__name__}); this is a bug in the server")

    async def read_body(request: Request) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise HTTPError(413, f"request body is over {limits.max_body_bytes} bytes, the limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def parsed(request: Request, parse: Any) -> Any:
        """Read the body, then parse and validate it on a thread (a large body takes a while)."""
        raw = await read_body(request)
        return await asyncio.to_thread(lambda: parse(parse_json(raw, limits.max_json_depth), limits))

    async def images_of(call: ChatCall, deadline: float) -> list[bytes]:
        """Inline images as they are; remote ones fetched on threads; pixel counts checked."""
        out = []
        for item in call.images:
            if isinstance(item, RemoteImage):
                item = await asyncio.to_thread(fetch_image, item.url, limits, deadline)
            out.append(item)
        await asyncio.to_thread(_check_headers, [(ImageModality.name, data) for data in out], limits)
        return out

    async def or_client_gone(request: Request, work: Awaitable[Any]) -> Any:
        """`await work`, but cancel it (and so stop its generation) when the client disconnects."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
                if done:
                    return task.result()
                if await request.is_disconnected():
                    raise ClientGone
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    def replies(call: ChatCall, images: list[bytes], deadline: float):
        """Runs on the worker thread: decode the sound, then generate."""
        audio = [decoder.audio(data, limits, deadline) for data in call.audios]
        return chat.respond(call.query, image=images or None, audio=audio or None, history=call.history,
                            limits=limits, deadline=deadline, **call.gen)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "queued": worker.pending}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "mm"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        deadline = time.monotonic() + limits.deadline_seconds
        call = await parsed(request, parse_chat_completion)
        images = await or_client_gone(request, images_of(call, deadline))
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        stream = worker.stream(lambda: replies(call, images, deadline), deadline)
        if not call.stream:
            last = await or_client_gone(request, _last(stream))
            return {"id": rid, "object": "chat.completion", "created": created, "model": model_name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": last.text},
                                 "finish_reason": _openai_finish(last.finish_reason)}],
                    "usage": {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens,
                              "total_tokens": last.prompt_tokens + last.completion_tokens}}
        # Wait for the first step, so bad input is still a clean 400 rather than a broken stream.
        try:
            first = await or_client_gone(request, stream.__anext__())
        except BaseException:
            await stream.aclose()
            raise

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
                yield chunk({}, _openai_finish(reply.finish_reason))
                if call.include_usage:
                    yield chunk({}, usage={"prompt_tokens": reply.prompt_tokens,
                                           "completion_tokens": reply.completion_tokens,
                                           "total_tokens": reply.prompt_tokens + reply.completion_tokens})
            except InputError as e:  # the status line is already sent; report in-band
                yield f"data: {json.dumps({'error': {'message': str(e), 'type': 'invalid_request_error'}})}\n\n"
            except Exception as e:  # noqa: BLE001 - as above, for a bug
                logger.exception("stream failed")
                yield f"data: {json.dumps({'error': {'message': str(e), 'type': 'server_error'}})}\n\n"
            finally:
                await stream.aclose()
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/")
    async def visualglm(request: Request):
        deadline = time.monotonic() + limits.deadline_seconds
        call = await parsed(request, parse_visualglm)
        images = await or_client_gone(request, images_of(call, deadline))
        reply = await or_client_gone(request, _last(worker.stream(lambda: replies(call, images, deadline), deadline)))
        return {"result": reply.text, "history": [list(h) for h in reply.history], "status": 200,
                "time": time.strftime("%Y-%m-%d %H:%M:%S")}

    @app.post("/v1/captions")
    async def captions(request: Request):
        deadline = time.monotonic() + limits.deadline_seconds
        items, options = await parsed(request, parse_captions)
        prompt, lang = options.pop("prompt"), options.pop("lang")
        await asyncio.to_thread(_check_headers, items, limits)

        def work() -> list[str]:
            requests = []
            for modality, data in items:
                reader = chat.model.modality(modality)  # InputError: this model does not take that input
                media = reader.prepare(decoder.source(reader, data, limits, deadline), limits)
                requests.append((prompt or CAPTION_PROMPTS[modality][lang][0], [], media))
            return chat.answer_batch(requests, limits=limits, deadline=deadline, **options)

        texts = await or_client_gone(request, worker.run(work, deadline))
        return {"object": "list", "model": model_name,
                "data": [{"index": i, "modality": m, "caption": t} for i, ((m, _), t) in enumerate(zip(items, texts))]}

    return app


class _Decoder:
    """Sound and video decoding for the worker thread: in a child process (`mm.decode_process`), so a
    corrupt clip that makes a codec hang or crash costs that request its deadline, never the server."""

    def __init__(self) -> None:
        self.process: DecodeProcess | None = None  # started on first use: text and image requests need none

    def _decode(self, kind: str, data: bytes, limits: ServerLimits, deadline: float, **options: Any) -> Any:
        if self.process is None:
            self.process = DecodeProcess()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise InputError(f"the request's deadline ({limits.deadline_seconds:g} s) passed before decoding")
        return self.process.decode(kind, data, limits=limits, timeout=remaining, **options)

    def audio(self, data: bytes, limits: ServerLimits, deadline: float) -> tuple[Any, int]:
        """(wave, sample rate), as `MMChat.respond(audio=)` takes it (OpenAI's `input_audio` parts)."""
        return self._decode("audio", data, limits, deadline, sample_rate=SAMPLE_RATE), SAMPLE_RATE

    def source(self, modality: Modality, data: bytes, limits: ServerLimits, deadline: float) -> Any:
        """What `modality.prepare` reads for an upload: the bytes themselves, or what the child decoded
        from them as this model reads that kind (`Modality.decode_in_child`, `child_options`)."""
        if not modality.decode_in_child:
            return data
        return self._decode(modality.name, data, limits, deadline, **modality.child_options())

    def close(self) -> None:
        if self.process is not None:
            self.process.close()


async def _last(items: AsyncIterator[Any]) -> Any:
    """The final item of a stream of replies (each one holds the whole text so far)."""
    last = None
    try:
        async for item in items:
            last = item
    finally:
        await items.aclose()
    return last
