"""Run any core iterator (training events, generated text, file reads) on a QThread.

The core layer already offers thread-safe pause/resume/stop (``Trainer``) and a
stop event (``TextGenerator.stream``); this module only moves the iteration off
the UI thread and forwards each item as a queued Qt signal.

:class:`WorkerSlot` is the one place that starts a worker, forgets it when it
ends, deletes it, and waits for it at shutdown; views hold a slot per kind of
background task instead of repeating that bookkeeping.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot


class _IteratorWorker(QObject):
    item = Signal(object)
    failed = Signal(str)
    done = Signal()

    def __init__(self, factory: Callable[[], Iterator[object]]):
        super().__init__()
        self._factory = factory

    @Slot()
    def run(self) -> None:
        try:
            for value in self._factory():
                self.item.emit(value)
        except Exception as exc:  # an unexpected bug must not take the app down
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.failed.emit(detail)
            traceback.print_exc()
        finally:
            self.done.emit()


class BackgroundIterator(QObject):
    """Iterate ``factory()`` on its own QThread; ``item`` fires on the receiver's thread.

    ``finished`` fires once, after the last item (or after ``failed``), when the
    thread has ended, so it is safe to start another task from that slot.
    """

    item = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, factory: Callable[[], Iterator[object]], parent: QObject | None = None):
        super().__init__(parent)
        self._thread = QThread()
        self._worker = _IteratorWorker(factory)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.item.connect(self.item)
        self._worker.failed.connect(self.failed)
        # Direct: quit() is thread-safe, and a queued call would never run while the
        # UI thread is blocked in wait() (closing the window mid-run would hang).
        self._worker.done.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self._on_thread_finished)
        self._running = False

    def start(self) -> None:
        self._running = True
        self._thread.start()

    def is_running(self) -> bool:
        return self._running

    def thread_running(self) -> bool:
        """Whether the OS thread is still alive (``is_running`` waits for ``finished``)."""
        return self._thread.isRunning()

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the thread ends (use at shutdown only); True if it ended."""
        return self._thread.wait(msecs)

    def _on_thread_finished(self) -> None:
        self._running = False
        self.finished.emit()


class WorkerSlot(QObject):
    """Holds at most one :class:`BackgroundIterator`: starts it, clears and deletes it when it ends.

    ``finished`` fires after the slot is empty again, so its receivers may start
    the next task at once. After :meth:`close` the slot starts nothing new.
    """

    finished = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._worker: BackgroundIterator | None = None
        self._closed = False

    def start(self, factory: Callable[[], Iterator[object]], on_item: Callable[[object], None],
              on_failed: Callable[[str], None] | None = None) -> bool:
        """Iterate ``factory()`` in the background; False (nothing started) if busy or closed."""
        if self._worker is not None or self._closed:
            return False
        worker = BackgroundIterator(factory, self)
        worker.item.connect(on_item)
        if on_failed is not None:
            worker.failed.connect(on_failed)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()
        return True

    def is_busy(self) -> bool:
        return self._worker is not None

    def is_closed(self) -> bool:
        return self._closed

    def thread_running(self) -> bool:
        return self._worker is not None and self._worker.thread_running()

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the current task's thread ends (shutdown only); True if none is left."""
        return self._worker is None or self._worker.wait(msecs)

    def close(self, msecs: int = 30_000) -> bool:
        """Start nothing new and wait for the running task; True if it ended."""
        self._closed = True
        return self.wait(msecs)

    def _on_finished(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.deleteLater()
        self.finished.emit()


def close_all(slots: list[WorkerSlot], msecs: int) -> bool:
    """Close several slots within one shared deadline; True if every task ended."""
    deadline = time.monotonic() + msecs / 1000
    ended = True
    for slot in slots:
        left = max(0, int((deadline - time.monotonic()) * 1000))
        ended = slot.close(left) and ended
    return ended
