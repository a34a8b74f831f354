"""One generation thread behind a bounded queue, so the event loop (and /health) never blocks.

Requests beyond the queue's capacity are refused at once (HTTP 429) instead of piling up. Results and
streamed steps come back to the event loop through `loop.call_soon_threadsafe`. A job whose waiter has
gone (client disconnected) stops at its next step, or is skipped if it has not started; a job still
queued at its deadline is not run at all (HTTP 503).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from mm.errors import InputError

logger = logging.getLogger(__name__)

_DONE = object()
_STARTED = object()


class QueueFull(Exception):
    pass


class QueueTimeout(Exception):
    """The request's deadline passed while it waited for the model."""


class Worker:
    def __init__(self, max_queue: int = 8) -> None:
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise InputError(f"max_queue must be a whole number >= 1, got {max_queue!r}")
        self.jobs: queue.Queue = queue.Queue(maxsize=max_queue)
        self.thread = threading.Thread(target=self._run, name="mm-generation", daemon=True)
        self.thread.start()

    @property
    def pending(self) -> int:
        return self.jobs.qsize()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fn, emit, cancelled, deadline = job
            if cancelled.is_set():
                continue  # its client is gone, or it timed out waiting
            if deadline is not None and time.monotonic() > deadline:
                emit(QueueTimeout())
                continue
            emit(_STARTED)
            items: Iterator[Any] | None = None
            try:
                items = iter(fn())
                for item in items:
                    if cancelled.is_set():  # the client went away: stop generating for it
                        break
                    emit(item)
                emit(_DONE)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting request
                emit(e)
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()

    async def stream(self, fn: Callable[[], Iterator[Any]], deadline: float | None = None) -> AsyncIterator[Any]:
        """Run the generator `fn()` on the worker thread, yielding its items here.

        Raises `QueueFull` at once when the queue is full, and `QueueTimeout` when `deadline` (a
        `time.monotonic()` time) passes before the job starts. Stopping the iteration early (a client that
        disconnects) stops the generation at its next item.
        """
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(out.put_nowait, item)

        try:
            self.jobs.put_nowait((fn, emit, cancelled, deadline))
        except queue.Full:
            raise QueueFull from None
        try:
            if deadline is not None:
                try:
                    item = await asyncio.wait_for(out.get(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
                    raise QueueTimeout from None
            else:
                item = await out.get()
            while True:
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                if item is not _STARTED:
                    yield item
                item = await out.get()
        finally:
            cancelled.set()

    async def run(self, fn: Callable[[], Any], deadline: float | None = None) -> Any:
        """Run `fn()` on the worker thread and return its result."""
        results = [item async for item in self.stream(lambda: iter([fn()]), deadline)]
        return results[0]

    def close(self) -> None:
        try:
            self.jobs.put_nowait(None)
        except queue.Full:
            pass
