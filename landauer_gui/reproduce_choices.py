"""The Reproduce window's left column: which published rows, on what schedule, written where.

Each box remembers its last choice (``restore``/``save`` in the studio's
settings), so a reproduction stopped one day starts the same the next.
Torch-free: the window imports it while it is built.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.published import PUBLISHED_ROWS, rows_of_setting, setting_key
from core.reproduce_report import override_flags
from core.resources import user_data_dir
from landauer_gui import settings
from landauer_gui.device_picker import DeviceCombo
from landauer_gui.widgets import stretched_row

PROTOCOLS = (("Fixed: the mean of N validation batches", "fixed"),
             ("Published: one new random batch per evaluation", "published"))
GREY = "color: #555;"


def default_output() -> Path:
    return user_data_dir() / "reproductions" / "published-table.md"


def state_path(markdown: Path) -> Path:
    """The JSON state beside the Markdown file (the command line's default, ``OUT.json``)."""
    return markdown.with_name(markdown.name + ".json")


def _grey_label(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setStyleSheet(GREY)
    return label


class RowChooser(QGroupBox):
    """A check box per published row, with its value and flags; rows of one setting go together."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Published rows", parent)
        grid = QGridLayout(self)
        grid.setHorizontalSpacing(12)
        self.row_boxes: dict[int, QCheckBox] = {}
        for i, (n, row) in enumerate(sorted(PUBLISHED_ROWS.items())):
            box = QCheckBox(f"Row {n}", self)
            box.setToolTip(row.note or "The published defaults")
            box.toggled.connect(lambda on, n=n: self._on_row_toggled(n, on))
            value = QLabel(row.val_text, self)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value.setToolTip(f"Published validation loss after 2000 steps ({row.hardware})")
            grid.addWidget(box, i, 0)
            grid.addWidget(value, i, 1)
            grid.addWidget(_grey_label(override_flags(n) or "published defaults", self), i, 2)
            self.row_boxes[n] = box
        grid.setColumnStretch(2, 1)
        shared = _grey_label("Rows 1-3 are one setting run three times: it is trained once and "
                             "compared with all three values.", self)
        grid.addWidget(shared, len(PUBLISHED_ROWS), 0, 1, 3)

    def rows(self) -> list[int]:
        return [n for n, box in self.row_boxes.items() if box.isChecked()]

    def set_rows(self, rows: list[int]) -> None:
        """Check ``rows`` (and the rows sharing their settings), uncheck the others."""
        wanted = {n for r in rows if r in PUBLISHED_ROWS for n in rows_of_setting(setting_key(r))}
        for n, box in self.row_boxes.items():
            box.setChecked(n in wanted)

    def _on_row_toggled(self, row: int, on: bool) -> None:
        """Rows sharing a setting are one choice: the same seeds answer all of them."""
        for n in rows_of_setting(setting_key(row)):
            box = self.row_boxes.get(n)
            if box is not None and box.isChecked() != on:
                box.setChecked(on)
        self.changed.emit()

    def restore(self) -> None:
        rows = settings.get("reproduce/rows", "1,4", str)
        self.set_rows([int(r) for r in rows.split(",") if r.strip().isdigit()])

    def save(self) -> None:
        settings.put("reproduce/rows", ",".join(map(str, self.rows())))


class ScheduleForm(QGroupBox):
    """Seeds, steps, device and validation protocol of every seed run."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Schedule", parent)
        form = QFormLayout(self)
        self.seeds = QSpinBox(self)
        self.seeds.setRange(1, 100)
        self.seeds.setToolTip("Seeds per row (0, 1, 2, …); the table shows their mean and sd")
        self.steps = QSpinBox(self)
        self.steps.setRange(1, 10_000_000)
        self.steps.setSingleStep(100)
        self.steps.setToolTip("Training steps per seed; the published table used 2000")
        self.device_combo = DeviceCombo(self, with_auto=True)
        self.protocol = QComboBox(self)
        for text, name in PROTOCOLS:
            self.protocol.addItem(text, name)
        self.protocol.setToolTip("Fixed batches measure each model precisely; the published "
                                 "protocol reproduces the published numbers' own noise")
        self.eval_batches = QSpinBox(self)
        self.eval_batches.setRange(1, 100_000)
        self.eval_batches.setToolTip("Fixed validation batches averaged at each evaluation")
        self.protocol.currentIndexChanged.connect(self.changed)
        form.addRow("Seeds per row", self.seeds)
        form.addRow("Steps per seed", self.steps)
        form.addRow("Device", self.device_combo)
        form.addRow("Validation", self.protocol)
        form.addRow("Validation batches", self.eval_batches)

    def update_enabled(self) -> None:
        """Validation batches count only for the fixed protocol."""
        self.eval_batches.setEnabled(self.protocol.currentData() == "fixed")

    def restore(self, device: str) -> None:
        self.seeds.setValue(settings.get("reproduce/seeds", 3, int))
        self.steps.setValue(settings.get("reproduce/steps", 2000, int))
        self.protocol.setCurrentIndex(max(0, self.protocol.findData(
            settings.get("reproduce/protocol", "fixed", str))))
        self.eval_batches.setValue(settings.get("reproduce/eval_batches", 20, int))
        self.device_combo.set_wanted(device)

    def save(self) -> None:
        settings.put("reproduce/seeds", self.seeds.value())
        settings.put("reproduce/steps", self.steps.value())
        settings.put("reproduce/protocol", self.protocol.currentData())
        settings.put("reproduce/eval_batches", self.eval_batches.value())


class OutputPicker(QGroupBox):
    """The Markdown file for the table; says whether finished seeds recorded beside it will be skipped."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Output", parent)
        self.path_edit = QLineEdit(self)
        self.path_edit.setPlaceholderText("Markdown file for the table")
        self.path_edit.textChanged.connect(self.refresh)
        browse = QToolButton(self)
        browse.setText("…")
        browse.setToolTip("Choose where to write the Markdown table")
        browse.clicked.connect(self.browse)
        self.output_hint = _grey_label("", self)
        lay = QVBoxLayout(self)
        lay.addLayout(stretched_row(self.path_edit, browse))
        lay.addWidget(self.output_hint)

    def path(self) -> Path | None:
        text = self.path_edit.text().strip()
        return Path(text).expanduser() if text else None

    def browse(self) -> None:
        start = str(self.path() or default_output())
        path, _ = QFileDialog.getSaveFileName(self, "Write the results table to", start,
                                              "Markdown (*.md);;All files (*)")
        if path:
            self.path_edit.setText(path if Path(path).suffix else path + ".md")

    def refresh(self) -> None:
        """Say again what the state file beside the table holds (after a run, it may exist)."""
        out = self.path()
        if out is None:
            self.output_hint.setText("")
        else:
            done = " (it exists: its finished seeds will be skipped)" if state_path(out).is_file() else ""
            self.output_hint.setText(f"Finished seeds are recorded in {state_path(out).name} "
                                     f"beside it{done}; running again skips them.")
        self.changed.emit()

    def restore(self) -> None:
        self.path_edit.setText(settings.get("reproduce/output", str(default_output()), str))

    def save(self) -> None:
        settings.put("reproduce/output", self.path_edit.text().strip())
