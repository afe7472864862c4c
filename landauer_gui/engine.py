"""The engine: torch, the model code and device detection, loaded off the UI thread.

Importing torch takes seconds, so the studio's window must not wait for it:
the window is built from torch-free modules (``core.hparams``,
``core.resources``, ``core.presets``, ``core.events``) and this loader imports
the rest on a worker thread. Anything that needs torch (reading a corpus or a
checkpoint, training, sampling) starts only once :func:`engine` is ready, so
two threads never import torch at the same time.

The rule for ``landauer_gui``: a module imported while the window is built
imports nothing torch-dependent at module level; such imports go inside the
functions that run after the engine is ready.
"""

from __future__ import annotations

import sys
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal

from landauer_gui.workers import WorkerSlot

LOADING_TEXT = "Loading engine…"


def _load() -> list[Any]:
    """Runs on the worker thread: import every torch-dependent module the studio uses."""
    import torch  # noqa: F401

    import core.checkpoint  # noqa: F401
    import core.data  # noqa: F401
    import core.trainer  # noqa: F401
    from core.device import detect_devices
    from core.sampling import TextGenerator  # noqa: F401

    return list(detect_devices())


def _load_items():
    yield _load()


class Engine(QObject):
    """Loads the engine once per process; ``ready`` fires when torch and the devices are known."""

    ready = Signal()
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._devices: list[Any] | None = None
        self._error: str | None = None
        self._slot = WorkerSlot(self)
        self._held = False

    def hold(self) -> None:
        """Start nothing until :meth:`release` (the studio first paints its window, then loads)."""
        self._held = True

    def release(self) -> None:
        self._held = False
        self.start()

    def start(self) -> None:
        """Begin loading (idempotent); synchronous when torch is already imported: nothing to hide."""
        if self._held or self._devices is not None or self._error is not None or self._slot.is_busy():
            return
        if "torch" in sys.modules:
            try:
                self._on_loaded(_load())
            except Exception as exc:  # a broken install: say so, keep the window up
                self._on_failed(f"{type(exc).__name__}: {exc}")
            return
        self._slot.start(_load_items, self._on_loaded, self._on_failed)

    def is_ready(self) -> bool:
        return self._devices is not None

    def error(self) -> str | None:
        """Why the engine could not load (then nothing can train or sample), or None."""
        return self._error

    def devices(self) -> list[Any]:
        """The usable devices (:class:`core.device.DeviceInfo`), best first; empty until ready.

        Asked afresh each time (cheap once loaded): a description names the
        current number of CPU threads.
        """
        if self._devices is None:
            return []
        from core.device import detect_devices

        return list(detect_devices())

    def when_ready(self, slot) -> None:
        """Call ``slot()`` now if ready, else once the engine has loaded (a bound Qt-object method)."""
        self.start()
        if self.is_ready():
            slot()
        else:
            self.ready.connect(slot)

    def wait(self, msecs: int = 60_000) -> bool:
        """Block until a load in progress has ended (at exit: a running QThread must not be destroyed)."""
        return self._slot.wait(msecs)

    def _on_loaded(self, devices: object) -> None:
        self._devices = list(devices)  # type: ignore[call-overload]
        self.ready.emit()

    def _on_failed(self, detail: str) -> None:
        self._error = detail
        self.failed.emit(f"The engine could not load: {detail}")


_ENGINE: Engine | None = None


def engine(start: bool = True) -> Engine:
    """The studio's one engine loader (created on first use; started unless held or ``start`` is False)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Engine()
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(_ENGINE.wait)
    if start:
        _ENGINE.start()
    return _ENGINE
