"""Stand-ins for the model and for remote image hosts, for server tests that need neither weights nor network."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

from tests.conftest import make_image


def png_bytes(colour: str = "red", size: tuple[int, int] = (96, 80)) -> bytes:
    buf = io.BytesIO()
    make_image(colour, size).save(buf, format="PNG")
    return buf.getvalue()


class FakeChat:
    """Answers like `MMChat.respond` ("x" per step), `delay` seconds a step; records what it was asked."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay, self.error = delay, error
        self.calls: list[dict[str, Any]] = []
        self.steps = 0
        self.finish = "length"

    def respond(self, query, *, image=None, audio=None, video=None, history=None, max_new_tokens=256,
                limits=None, deadline=None, **gen):
        self.calls.append({"query": query, "image": image, "audio": audio, "history": history,
                           "max_new_tokens": max_new_tokens, "limits": limits, "deadline": deadline, **gen})
        if self.error is not None:
            raise self.error
        text = ""
        for _ in range(max_new_tokens):
            time.sleep(self.delay)
            self.steps += 1
            text += "x"
            yield SimpleNamespace(text=text, history=[*(history or []), (query, text)], prompt_tokens=3,
                                  completion_tokens=len(text), finish_reason=None)
        yield SimpleNamespace(text=text, history=[*(history or []), (query, text)], prompt_tokens=3,
                              completion_tokens=len(text), finish_reason=self.finish)

    def answer_batch(self, requests, *, max_new_tokens=64, limits=None, deadline=None, **gen):
        self.calls.append({"batch": len(requests), "max_new_tokens": max_new_tokens, **gen})
        return ["a caption"] * len(requests)


class ImageHost(BaseHTTPRequestHandler):
    """GET /img.png, /redirect?to=URL, /missing, /slow, /trickle, /big, /big-declared, /page.html."""

    hits: list[str]  # set per server
    body = png_bytes()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server under test gave up on us, as it should for /big and /trickle

    def _answer(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/img.png":
            self._send(200, self.body, "image/png")
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query.removeprefix("to="))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/slow":
            time.sleep(3)
            self._send(200, self.body, "image/png")
        elif path == "/trickle":  # headers at once, then a byte every 0.2 s
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for b in self.body[:40]:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.2)
        elif path == "/big":  # no Content-Length: the reader must stop at the cap by itself
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"\0" * 10_000)
        elif path == "/big-declared":
            self._send(200, b"\0" * 400_000, "image/png")
        elif path == "/page.html":
            self._send(200, b"<html>hello</html>", "text/html")
        else:
            self._send(404, b"not here", "text/plain")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def image_host():
    """(base URL, list of paths requested) of an ImageHost on a free loopback port."""
    hits: list[str] = []
    handler = type("Host", (ImageHost,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def occupy_worker(app: Any, pool: Executor, release: threading.Event, seconds: float = 60) -> Future:
    """Keep the app's generation thread busy, as a long answer would, until `release` is set.
    The future's result is ["done"]."""

    def busy():
        release.wait(seconds)
        yield "done"

    async def occupy():
        return [x async for x in app.state.worker.stream(busy)]

    return pool.submit(asyncio.run, occupy())
