"""Run any core iterator (training events, generated text) on a QThread.

The core layer already offers thread-safe pause/resume/stop (``Trainer``) and a
stop event (``TextGenerator.stream``); this module only moves the iteration off
the UI thread and forwards each item as a queued Qt signal.
"""

from __future__ import annotations

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

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the thread ends (use at shutdown only); True if it ended."""
        return self._thread.wait(msecs)

    def _on_thread_finished(self) -> None:
        self._running = False
        self.finished.emit()
