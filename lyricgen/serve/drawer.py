"""Songs drawn on the main thread, the web server on another.

Why: on this machine PyTorch's CPU ops (OpenMP) drew a song about twice as slowly from a second
thread as from the main one (16 lines of 16 candidates: 1.3 to 1.8 s against 0.6 s; small
elementwise ops up to 4 times slower), and a web server calls its handlers from threads. So
`lyricgen serve` runs uvicorn on a thread and hands every drawing to the main thread, one song
at a time (two cores gain nothing from two songs at once: each op already uses both).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


class Stopping(RuntimeError):
    """The server stops: a drawing asked for then is not made."""


class Drawer:
    """Call it with a function from any thread: the function runs on the thread that runs
    `serve_until` (the main one), and its result or exception comes back."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], object], Future]] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is threading.main_thread():
            return fn()
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise Stopping("the server is stopping")
            self._jobs.put((fn, future))
        return future.result()

    def serve_until(self, done: Callable[[], bool]) -> None:
        """Run the functions sent until `done()`; Ctrl-C (KeyboardInterrupt) ends it too, and
        those still waiting are told the server stops."""
        try:
            while not done():
                try:
                    fn, future = self._jobs.get(timeout=0.1)
                except queue.Empty:
                    continue
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except KeyboardInterrupt:
                        future.set_exception(Stopping("the server is stopping"))
                        raise
                    except Exception as e:  # noqa: BLE001 - the caller's to handle
                        future.set_exception(e)
        finally:
            with self._lock:
                self._closed = True
            while not self._jobs.empty():
                self._jobs.get_nowait()[1].set_exception(Stopping("the server is stopping"))
