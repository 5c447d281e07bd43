"""SIGINT and SIGTERM as a request to stop at the next batch boundary."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class StopFlag:
    raised: str | None = None


@contextmanager
def stop_signals() -> Iterator[StopFlag]:
    """SIGINT / SIGTERM ask the loop to stop at the next batch boundary; a second SIGINT stops
    at once (the checkpoint on disk is still the previous, complete one)."""
    flag = StopFlag()

    def handler(signum, frame):
        if flag.raised and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.raised = signal.Signals(signum).name

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield flag
        return
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
