"""One generation thread behind a bounded queue, so the event loop (and /health) never blocks.

Requests beyond the queue's capacity are refused at once (HTTP 429) instead of piling up. Results and
streamed steps come back to the event loop through `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

_DONE = object()


class QueueFull(Exception):
    pass


class Worker:
    def __init__(self, max_queue: int = 8) -> None:
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
            fn, emit, cancelled = job
            try:
                for item in fn():
                    if cancelled.is_set():  # the client went away: stop generating for it
                        break
                    emit(item)
                emit(_DONE)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting request
                emit(e)

    async def stream(self, fn: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
        """Run the generator `fn()` on the worker thread, yielding its items here.

        Raises `QueueFull` at once when the queue is full; stopping the iteration early (a client that
        disconnects) stops the generation at its next item.
        """
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(out.put_nowait, item)

        try:
            self.jobs.put_nowait((fn, emit, cancelled))
        except queue.Full:
            raise QueueFull from None
        try:
            while True:
                item = await out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()

    async def run(self, fn: Callable[[], Any]) -> Any:
        """Run `fn()` on the worker thread and return its result."""
        results = [item async for item in self.stream(lambda: iter([fn()]))]
        return results[0]

    def close(self) -> None:
        try:
            self.jobs.put_nowait(None)
        except queue.Full:
            pass
