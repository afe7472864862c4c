"""The "Export" box: the analysis as an HTML page or CSV table, or the hidden-state image as PNG.

The HTML and CSV files come from the command line's report writer
(:mod:`core.report`), written on a worker; the PNG is the heatmap as drawn.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QGroupBox, QHBoxLayout, QPushButton, QWidget

from landauer_gui.explore import jobs
from landauer_gui.explore.heatmap import HiddenHeatmap
from landauer_gui.explore.job_slot import JobSlot

FILTERS = {"html": "HTML pages (*.html)", "csv": "CSV files (*.csv)", "png": "PNG images (*.png)"}
NAMES = {"html": "analysis.html", "csv": "analysis.csv", "png": "hidden-state.png"}


class ExportActions(QGroupBox):
    """Three export buttons for the last analysis; ``finished(path)`` once a file is written."""

    finished = Signal(str)
    status = Signal(str)
    error = Signal(str)

    def __init__(self, heatmap: HiddenHeatmap, parent: QWidget | None = None):
        super().__init__("Export", parent)
        self._heatmap = heatmap
        self._prepared: jobs.Prepared | None = None
        self._exported = ""
        self.slot = JobSlot(self)
        self.slot.finished.connect(self._on_finished)
        self.export_html_button = QPushButton("HTML…")
        self.export_csv_button = QPushButton("CSV…")
        self.export_png_button = QPushButton("Heatmap PNG…")
        el = QHBoxLayout(self)
        for kind, b in (("html", self.export_html_button), ("csv", self.export_csv_button),
                        ("png", self.export_png_button)):
            el.addWidget(b)
            b.clicked.connect(lambda _checked=False, kind=kind: self.export_dialog(kind))
        self.set_prepared(None)

    def set_prepared(self, prep: jobs.Prepared | None) -> None:
        """What to export (None: nothing yet, the buttons are disabled)."""
        self._prepared = prep
        for b in (self.export_html_button, self.export_csv_button, self.export_png_button):
            b.setEnabled(prep is not None)

    def export_dialog(self, kind: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export", str(Path.home() / NAMES[kind]), FILTERS[kind])
        if path:
            self.export(path)

    def export(self, path: str | Path) -> bool:
        """Write the analysis as .html or .csv (the CLI's report writer), or the heatmap as .png."""
        prep = self._prepared
        if prep is None:
            self.error.emit("Analyse a text first; there is nothing to export yet.")
            return False
        path = str(path)
        if path.lower().endswith(".png"):
            try:
                self._heatmap.export_png(path)
            except OSError as exc:
                self.error.emit(f"Cannot export to {path}: {exc}")
                return False
            self.status.emit(f"Exported {path}.")
            self.finished.emit(path)
            return True
        from core.report import report_format

        try:
            report_format(path)
        except ValueError as exc:
            self.error.emit(str(exc))
            return False
        analysis, title = prep.analysis, f"{Path(prep.checkpoint).name}"
        self.status.emit(f"Exporting {Path(path).name}…")

        def work():
            from core.report import write_report

            try:
                yield write_report(analysis, path, title)
            except (OSError, ValueError) as exc:
                yield jobs.Problem(f"Cannot export to {path}: {getattr(exc, 'strerror', None) or exc}")

        return self.slot.start(work, self._on_item)

    def _on_item(self, item: object) -> None:
        self.status.emit(f"Exported {item}.")
        self._exported = str(item)

    def _on_finished(self) -> None:
        problem = self.slot.take_problem()
        if problem is not None:
            self.error.emit(problem)
        else:
            self.finished.emit(self._exported)
