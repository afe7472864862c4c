"""The reproduction's results as they arrive: a table row and a plot point per published row.

Both are fed :class:`core.reproduce_report.RowSummary` lists (recomputed as each
seed finishes) and use that module's cell texts, so the dialog shows exactly what
the Markdown file says.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from core.reproduce_report import RowSummary, diff_text, ours_text, setting_text, wall_text

COLUMNS = ("Row", "Settings", "Published", "Ours mean ± sd (n)", "Difference in sd", "Wall time",
           "Device", "PyTorch")
HEADER_TIPS = {
    2: "The published validation loss after 2000 steps: one run, one random validation batch",
    3: "Mean and sample standard deviation of our seeds' validation losses after the last step",
    4: "(ours − published) / our sd: how many of our seed-to-seed deviations apart they are",
    5: "Wall time of the row's seeds together, and per seed",
}
NUMERIC = {0, 2, 3, 4}
PUBLISHED_COLOR = "#c0392b"
OURS_COLOR = "#1f6fb4"
SETTINGS_WIDTH = 200
OFFSET = 0.12  # published and ours side by side around each row's tick


class ResultsTable(QTableWidget):
    """One line per published row: the published value against our seeds."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        for col, tip in HEADER_TIPS.items():
            self.horizontalHeaderItem(col).setToolTip(tip)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.setColumnWidth(1, SETTINGS_WIDTH)

    def show_summaries(self, summaries: Sequence[RowSummary]) -> None:
        self.setRowCount(len(summaries))
        for i, s in enumerate(summaries):
            cells = (str(s.row), setting_text(s, markdown=False), s.published_text, ours_text(s),
                     diff_text(s), wall_text(s), ", ".join(s.devices) or "–",
                     ", ".join(s.torch_versions) or "–")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if col in NUMERIC:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if col == 3 and s.n:
                    item.setToolTip("Per seed: " + ", ".join(
                        f"seed {seed}: {v:.4f}" for seed, v in zip(s.seeds, s.values, strict=True)))
                self.setItem(i, col, item)

    def cell_text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return item.text() if item is not None else ""


class ResultsPlot(pg.PlotWidget):
    """Published values as diamonds; ours as the seeds' mean with ±1 sd error bars."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background="w")
        item = self.getPlotItem()
        for side in ("left", "bottom"):
            axis = item.getAxis(side)
            axis.setPen("#555")
            axis.setTextPen("#333")
        item.setLabel("left", "validation loss")
        item.showGrid(y=True, alpha=0.25)
        item.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.legend = item.addLegend(offset=(-10, 10), labelTextSize="9pt", labelTextColor="#333")
        self.published = pg.ScatterPlotItem(symbol="d", size=12, pen=pg.mkPen("#7a1f16"),
                                            brush=pg.mkBrush(PUBLISHED_COLOR),
                                            name="published (one run each)")
        self.ours = pg.ScatterPlotItem(symbol="o", size=9, pen=pg.mkPen("#0f3e66"),
                                       brush=pg.mkBrush(OURS_COLOR), name="ours: mean ± sd")
        empty = np.zeros(0)
        self.bars = pg.ErrorBarItem(x=empty, y=empty, top=empty, bottom=empty, beam=0.12,
                                    pen=pg.mkPen(OURS_COLOR, width=2))
        for it in (self.bars, self.published, self.ours):
            item.addItem(it)
        self._rows: list[int] = []

    def show_summaries(self, summaries: Sequence[RowSummary]) -> None:
        self._rows = [s.row for s in summaries]
        item = self.getPlotItem()
        item.getAxis("bottom").setTicks([[(i, f"row {s.row}") for i, s in enumerate(summaries)]])
        self.published.setData(x=[i - OFFSET for i in range(len(summaries))],
                               y=[s.published for s in summaries])
        ours = [(i + OFFSET, s.mean, s.sd or 0.0) for i, s in enumerate(summaries) if s.n]
        x, mean, sd = (np.array(col, dtype=float) for col in zip(*ours, strict=True)) if ours \
            else (np.zeros(0),) * 3
        self.ours.setData(x=x, y=mean)
        self.bars.setData(x=x, y=mean, top=sd, bottom=sd)
        item.setXRange(-0.6, max(len(summaries), 1) - 0.4, padding=0)
        values = [s.published for s in summaries] + [m + d for _, m, d in ours] + [m - d for _, m, d in ours]
        if values:
            lo, hi = min(values), max(values)
            pad = max(0.08 * (hi - lo), 0.01)
            item.setYRange(lo - pad, hi + max(0.3 * (hi - lo), 0.05), padding=0)  # room for the legend

    def rows(self) -> list[int]:
        return list(self._rows)

    def ours_points(self) -> list[tuple[float, float]]:
        """(x, mean) of the plotted means (for tests)."""
        x, y = self.ours.getData()
        return list(zip((float(v) for v in x), (float(v) for v in y), strict=True))
