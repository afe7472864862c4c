"""How late a fast QTimer fires on the UI thread: a direct measure of responsiveness.

If anything heavy ran on the UI thread (a training step, a full redraw per
event), a 10 ms timer would fire tens or hundreds of milliseconds late. Used by
the GUI tests and by ``scripts/ui_latency.py``.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer


class TimerLatencyProbe(QObject):
    """Record, for each tick of a precise ``interval_ms`` timer, how late it fired."""

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None):
        super().__init__(parent)
        self.interval_s = interval_ms / 1000
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self.lateness_s: list[float] = []

    def start(self) -> None:
        self.lateness_s.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.lateness_s.append(max(0.0, now - self._last - self.interval_s))
        self._last = now

    def stats_ms(self) -> dict[str, float]:
        """``n``, ``p50``, ``p99`` and ``max`` lateness in milliseconds."""
        if not self.lateness_s:
            return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
        a = np.asarray(self.lateness_s) * 1000
        return {"n": len(a), "p50": float(np.percentile(a, 50)),
                "p99": float(np.percentile(a, 99)), "max": float(a.max())}
