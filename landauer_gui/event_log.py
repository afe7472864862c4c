"""Training events as text: the log pane (same lines as the CLI) and the batching that feeds it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from core.events import StepMetrics, format_event

LOG_MAX_LINES = 5000
EVENT_BATCH_S = 0.05  # forward step events to the UI at most ~20 times a second


def is_step(ev: Any) -> bool:
    return isinstance(ev, StepMetrics)


def batched(events: Iterable[Any], interval: float = EVENT_BATCH_S,
            frequent: Callable[[Any], bool] = is_step) -> Iterator[list[Any]]:
    """Group fast step events so the UI thread gets a few signals a second, not thousands.

    Anything other than a step event (eval, checkpoint, pause, end) is sent at
    once, so nothing waits behind a pause or a long evaluation. ``frequent``
    says which events are step events (a reproduction wraps them).
    """
    batch: list[Any] = []
    last = time.monotonic()
    for ev in events:
        batch.append(ev)
        now = time.monotonic()
        if not frequent(ev) or now - last >= interval:
            yield batch
            batch = []
            last = now
    if batch:
        yield batch


def fmt_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class EventLog(QPlainTextEdit):
    """A read-only, bounded, monospaced log of a run: ``core.events.format_event`` lines."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(LOG_MAX_LINES)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)  # long checkpoint paths
        self.setPlaceholderText("Training log: the same lines as the command line prints.")
        self.log_every = 0

    def add_events(self, batch: Iterable[Any]) -> None:
        """Append the lines of ``batch`` (steps only every ``log_every``, as the CLI does)."""
        for ev in batch:
            line = format_event(ev, self.log_every)
            if line:
                self.appendPlainText(line)
