"""Ctrl+C for long command-line jobs: the first asks the job to stop cleanly, the second aborts.

Works from the main thread only (Python's rule for signal handlers); elsewhere,
e.g. when a test calls a command's ``main`` from a worker thread, it does nothing.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def sigint_handled_by(handler: Callable) -> Iterator[None]:
    """Install ``handler`` for SIGINT while inside, then put back the one before it.

    Outside the main thread (Python allows signal handlers only there) it does nothing.
    """
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            try:
                signal.signal(signal.SIGINT, previous)
            except ValueError:
                pass


@contextmanager
def stop_on_first_ctrl_c(stop: Callable[[], None], message: str) -> Iterator[list[bool]]:
    """While inside, the first SIGINT prints ``message`` and calls ``stop()``; the second
    raises :class:`KeyboardInterrupt`. Yields a list that holds ``True`` once interrupted."""
    interrupted: list[bool] = []

    def handler(signum, frame):
        interrupted.append(True)
        print(message, file=sys.stderr, flush=True)
        stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    with sigint_handled_by(handler):
        yield interrupted
