"""The distribution chart and the branch under it: what the model expected, and what else it could write.

The chart shows the next-character distribution at the current position
(raw and reshaped by the sampling options); clicking a bar asks the view to
branch, and this panel streams the continuation on a worker and shows it with
the text before it in grey and the chosen character marked.
"""

from __future__ import annotations

import html
import threading

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QLabel, QPushButton, QSplitter, QTextEdit, QVBoxLayout, QWidget

from core.hparams import SamplingConfig
from landauer_gui.explore import jobs
from landauer_gui.explore.dist_chart import DistributionChart, shown_char
from landauer_gui.explore.job_slot import JobSlot
from landauer_gui.widgets import stretched_row

CONTEXT_CHARS = 24
BRANCH_FLUSH_MS = 50
HEAD_CHARS = 160  # text before the branch point shown in grey


def _context(text: str, i: int) -> str:
    tail = text[max(0, i - CONTEXT_CHARS):i]
    return "".join(shown_char(c) if c in "\n\t\r" else c for c in tail)


class BranchPanel(QSplitter):
    """Chart over branch; ``finished(text)`` when a branch ends, ``explore_requested(text)`` to analyse it."""

    finished = Signal(str)
    explore_requested = Signal(str)
    error = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(Qt.Orientation.Vertical, parent)
        self._chars: list[str] = []
        self._prefix = ""
        self._stop = threading.Event()
        self.slot = JobSlot(self)
        self.slot.finished.connect(self._on_finished)
        self._timer = QTimer(self, interval=BRANCH_FLUSH_MS)
        self._timer.timeout.connect(self._flush)

        self.chart = DistributionChart()
        self.branch_output = QTextEdit()
        self.branch_output.setReadOnly(True)
        self.branch_output.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.branch_output.setPlaceholderText("Click a bar to branch: the text continues from here "
                                              "with that character instead.")
        self.branch_status = QLabel("")
        self.branch_explore = QPushButton("Explore this branch")
        self.branch_stop_button = QPushButton("Stop")
        self.addWidget(self.chart)
        branch_w = QWidget()
        bl = QVBoxLayout(branch_w)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(self.branch_output, 1)
        bl.addLayout(stretched_row(self.branch_status, self.branch_stop_button, self.branch_explore))
        self.addWidget(branch_w)
        self.setSizes([260, 140])

        self.branch_explore.clicked.connect(self._explore)
        self.branch_stop_button.clicked.connect(self.stop)
        self.update_buttons()

    def set_analysis(self, prep: jobs.Prepared) -> None:
        """A new analysis: an empty chart with that text's character order."""
        self.chart.clear()
        self.chart.set_order(prep.char_order, prep.analysis.itos)

    def show_position(self, prep: jobs.Prepared, i: int, sampling: SamplingConfig) -> None:
        """The distribution the model gave before character ``i``, reshaped by ``sampling``."""
        analysis = prep.analysis
        if i < 1:
            self.chart.clear()
            self.chart.caption.setText("The first character is only read; nothing predicts it.")
            return
        actual = int(analysis.ids[i])
        probs = analysis.probs[i - 1]
        rank = int(analysis.rank[i - 1])
        caption = (f"After “{_escape(_context(analysis.text, i))}” the model gave "
                   f"<b>{_escape(shown_char(analysis.text[i]))}</b> p = {float(probs[actual]):.3f} "
                   f"(rank {rank}, {prep.per_char['surprise'][i]:.2f} bits). Click a bar to branch.")
        self.chart.show_distribution(probs, analysis.itos, actual, sampling.temperature, sampling.top_k, caption)

    def start(self, model, itos: dict, prefix: str, sampling: SamplingConfig, at: int) -> bool:
        """Continue ``prefix`` (the text up to character ``at`` and the chosen character)."""
        if self.slot.is_busy():
            return False
        self._prefix = prefix
        self._chars = []
        self._stop = threading.Event()
        stop = self._stop
        self.branch_output.clear()
        self.branch_status.setText(f"Branching at character {at:,} with {shown_char(prefix[-1])!r}…")
        started = self.slot.start(lambda: jobs.branch_items(model, itos, prefix, sampling, stop), self._on_item)
        self._timer.start()
        self.update_buttons()
        return started

    def is_busy(self) -> bool:
        return self.slot.is_busy()

    @Slot()
    def stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        """Stop the branch and its redraws (the view then waits for the slot)."""
        self._stop.set()
        self._timer.stop()

    def text(self) -> str:
        """The branch: the text up to the branch point, the chosen character, and the continuation."""
        return self._prefix + "".join(self._chars) if self._prefix else ""

    def update_buttons(self) -> None:
        self.branch_explore.setEnabled(bool(self._prefix) and not self.slot.is_busy())
        self.branch_stop_button.setEnabled(self.slot.is_busy())

    def _on_item(self, item: object) -> None:
        if isinstance(item, str):
            self._chars.append(item)

    def _flush(self) -> None:
        """Redraw the branch: the text before it (grey), the chosen character, the continuation."""
        prefix = self._prefix
        head = prefix[max(0, len(prefix) - 1 - HEAD_CHARS):-1]
        self.branch_output.clear()
        cursor = QTextCursor(self.branch_output.document())
        for part, colour, weight in ((head, "#888888", 400), (prefix[-1:], "#c81e78", 700),
                                     ("".join(self._chars), "#141414", 400)):
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(colour))
            fmt.setFontWeight(weight)
            cursor.insertText(part, fmt)
        self.branch_output.moveCursor(QTextCursor.MoveOperation.End)

    def _on_finished(self) -> None:
        self._timer.stop()
        self._flush()
        self.branch_status.setText(f"Branch: {len(self._chars):,} characters after the new one.")
        problem = self.slot.take_problem()
        if problem is not None:
            self.error.emit(problem)
        self.update_buttons()
        self.finished.emit(self.text())

    @Slot()
    def _explore(self) -> None:
        text = self.text()
        if text:
            self.explore_requested.emit(text)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)
