"""The "Compare with" box: analyse the same text with a second checkpoint.

What a run learned between two checkpoints shows as the difference in
surprise per character; this panel picks the second checkpoint, runs the
comparison on a worker and hands the result (``compared``) to the view, which
colours the text by it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGroupBox, QPushButton, QVBoxLayout, QWidget

from landauer_gui.explore import jobs
from landauer_gui.explore.job_slot import JobSlot


class ComparePanel(QGroupBox):
    """Second-checkpoint combo and Compare button; ``compared(Compared)``, then ``finished``."""

    compared = Signal(object)
    finished = Signal()
    status = Signal(str)
    error = Signal(str)

    def __init__(self, device: str, parent: QWidget | None = None):
        super().__init__("Compare with", parent)
        self._device = device
        self._first_bits = 0.0
        self.slot = JobSlot(self)
        self.slot.finished.connect(self._on_finished)
        self.compare_box = QComboBox()
        self.compare_box.setToolTip("A second checkpoint (e.g. an earlier step of the same run)")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Colour the text by how much more (red) or less (blue) the second "
                                       "checkpoint is surprised than the first")
        cl = QVBoxLayout(self)
        cl.addWidget(self.compare_box)
        cl.addWidget(self.compare_button)

    def set_paths(self, paths: list[Path]) -> None:
        """Offer ``paths`` (the checkpoint table's), keeping the current choice."""
        current = self.compare_box.currentData()
        self.compare_box.blockSignals(True)
        self.compare_box.clear()
        for p in paths:
            self.compare_box.addItem(f"{p.parent.name}/{p.name}", str(p))
        if current is not None:
            self.compare_box.setCurrentIndex(max(0, self.compare_box.findData(current)))
        self.compare_box.blockSignals(False)

    def choose(self, path: str | Path) -> None:
        self.compare_box.setCurrentIndex(self.compare_box.findData(str(Path(path).resolve())))

    def start(self, prep: jobs.Prepared | None) -> bool:
        """Analyse ``prep``'s text with the chosen checkpoint."""
        path = self.compare_box.currentData()
        if prep is None or not path or self.slot.is_busy():
            return False
        first = prep.analysis
        self._first_bits = prep.summary.bits_per_char
        self.status.emit(f"Comparing with {Path(path).name}…")
        return self.slot.start(lambda: jobs.compare_items(path, self._device, first), self._on_item)

    def is_busy(self) -> bool:
        return self.slot.is_busy()

    def _on_item(self, item: object) -> None:
        if isinstance(item, jobs.Compared):
            a, b = self._first_bits, item.summary_b.bits_per_char
            self.status.emit(f"{Path(item.checkpoint).name}: {b:.3f} bits/char vs {a:.3f} "
                             f"({b - a:+.3f}). Red: it is more surprised than this checkpoint "
                             "there (what this one learned), blue: less.")
            self.compared.emit(item)

    def _on_finished(self) -> None:
        problem = self.slot.take_problem()
        if problem is not None:
            self.error.emit(problem)
        self.finished.emit()
