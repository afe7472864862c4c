"""The runs panel: past run folders and their curves, next to the live run.

Reading run folders is :mod:`core.runs`' job (it owns their format); this
module only shows them. ``new_run_dir``, ``RunRecord``, ``read_run`` and
``list_runs`` are re-exported for the studio's callers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.runs import RunRecord, list_runs, new_run_dir, read_curves, read_run
from landauer_gui.plots import RunCurves
from landauer_gui.widgets import stretched_row

__all__ = ["RunRecord", "RunsPanel", "list_runs", "load_curves", "new_run_dir", "read_run"]


def load_curves(path: Path, label: str | None = None) -> RunCurves:
    """A run's recorded train and validation curves, ready for :class:`MetricsPlot`."""
    curves = RunCurves(label=label or Path(path).name)
    curves.add_recorded(read_curves(path))
    return curves


def _fmt_loss(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "–"


class RunsPanel(QWidget):
    """Past runs; pick one or two and show their curves next to the live run."""

    show_requested = Signal(list)  # [RunCurves, ...] for MetricsPlot.set_overlays
    COLUMNS = ("Run", "Steps", "Train loss", "Val loss")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setHeaderLabels(list(self.COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(self.COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.tree.itemDoubleClicked.connect(lambda *_: self.show_selected())

        self.show_button = QPushButton("Show curves", self)
        self.show_button.setToolTip("Draw the selected run's curves (select two to compare them)")
        self.show_button.clicked.connect(self.show_selected)
        self.hide_button = QPushButton("Hide", self)
        self.hide_button.setToolTip("Remove past runs from the plots")
        self.hide_button.clicked.connect(lambda: self.show_requested.emit([]))
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.clicked.connect(self.refresh)
        self.hint = QLabel(self)
        self.hint.setStyleSheet("color: palette(placeholder-text);")

        buttons = stretched_row(self.hint, self.refresh_button, self.hide_button, self.show_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tree, 1)
        lay.addLayout(buttons)
        self._records: list[RunRecord] = []
        self.refresh()

    def records(self) -> list[RunRecord]:
        return list(self._records)

    def refresh(self) -> None:
        selected = {r.path for r in self.selected()}
        self._records = list_runs()
        self.tree.clear()
        for rec in self._records:
            total = rec.total_steps
            steps = f"{rec.last_step}/{total}" if total else str(rec.last_step)
            item = QTreeWidgetItem([rec.name, steps, _fmt_loss(rec.last_train_loss),
                                    _fmt_loss(rec.last_val_loss)])
            for col in range(1, len(self.COLUMNS)):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            cfg = rec.train_config
            if cfg:
                item.setToolTip(0, "\n".join(f"{k} = {v}" for k, v in cfg.items()))
            item.setData(0, Qt.ItemDataRole.UserRole, str(rec.path))
            self.tree.addTopLevelItem(item)
            item.setSelected(rec.path in selected)
        self.hint.setText(f"{len(self._records)} run{'s' if len(self._records) != 1 else ''}")
        self._update_buttons()

    def selected(self) -> list[RunRecord]:
        paths = {Path(i.data(0, Qt.ItemDataRole.UserRole)) for i in self.tree.selectedItems()}
        return [r for r in self._records if r.path in paths]

    def select(self, paths: list[Path]) -> None:
        wanted = {Path(p) for p in paths}
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            item.setSelected(Path(item.data(0, Qt.ItemDataRole.UserRole)) in wanted)

    def show_selected(self) -> None:
        """Emit the curves of up to two selected runs (more would be unreadable)."""
        chosen = self.selected()[:2]
        self.show_requested.emit([load_curves(r.path) for r in chosen])

    def _update_buttons(self) -> None:
        n = len(self.tree.selectedItems())
        self.show_button.setEnabled(1 <= n <= 2)
        self.show_button.setText("Compare" if n == 2 else "Show curves")
