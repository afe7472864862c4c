"""Rank the hidden units that single out a selected span, into the heatmap's ranking list.

Selecting a span (or changing the heatmap's layer) asks for a ranking after a
short pause, so a drag does not start one per mouse move; one ranking runs at
a time, and a request made while one runs is taken up when it ends.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from landauer_gui.explore.heatmap import HiddenHeatmap
from landauer_gui.explore.job_slot import JobSlot

RANK_DELAY_MS = 150


class UnitRanker(QObject):
    """Ranks ``heatmap``'s layer's units for the span ``span()`` returns; ``finished`` after each."""

    finished = Signal()
    error = Signal(str)

    def __init__(self, heatmap: HiddenHeatmap, span: Callable[[], tuple[int, int]],
                 parent: QObject | None = None):
        super().__init__(parent)
        self._heatmap = heatmap
        self._span = span
        self._hidden: np.ndarray | None = None
        self.slot = JobSlot(self)
        self.slot.finished.connect(self._on_finished)
        self._timer = QTimer(self, singleShot=True, interval=RANK_DELAY_MS)
        self._timer.timeout.connect(self.rank)

    def set_hidden(self, hidden: np.ndarray | None) -> None:
        """The analysis's hidden states (layers × characters × units), or None."""
        self._hidden = hidden

    @Slot()
    def schedule(self) -> None:
        self._timer.start()

    @Slot()
    def rank(self) -> bool:
        """Rank the chosen layer's units by how differently they behave inside the selected span."""
        start, end = self._span()
        hidden = self._hidden
        if hidden is None or end - start < 1:
            return False
        if self.slot.is_busy():
            self._timer.start()  # run again once the current ranking is in
            return False
        m = hidden.shape[1]
        end = min(end, m)
        if start >= end or end - start >= m:
            self._heatmap.set_ranking(np.zeros(0, np.int64), np.zeros(0), "Select a shorter span inside the "
                                      f"first {m:,} characters to rank the units.")
            return False
        layer = self._heatmap.layer()
        states = hidden[layer]

        def work():
            from core.analysis import rank_units

            yield rank_units(states, start, end), (layer, start, end)

        return self.slot.start(work, self._on_item)

    def _on_item(self, item: object) -> None:
        (units, scores), (layer, start, end) = item
        self._heatmap.set_ranking(units, scores, f"Layer {layer}, characters {start:,}–{end:,}: "
                                                 "units by Cohen's d, inside vs outside")

    def _on_finished(self) -> None:
        problem = self.slot.take_problem()
        if problem is not None:
            self.error.emit(problem)
        self.finished.emit()
