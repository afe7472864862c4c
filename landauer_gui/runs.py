"""Run history: the folders under ``runs_dir()`` and the curves they recorded.

Each studio run trains into its own folder; the trainer writes ``config.json``
and ``metrics.jsonl`` there (see :mod:`core.trainer`). This module only reads
those files back, so a past run's curves can be shown or laid over another.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
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

from core.resources import runs_dir
from core.trainer import CONFIG_FILE, METRICS_FILE
from landauer_gui.plots import RunCurves
from landauer_gui.widgets import stretched_row

TAIL_BYTES = 16_384  # enough of metrics.jsonl to find the last train and val lines


def new_run_dir(name: str = "run", root: Path | None = None, now: datetime | None = None) -> Path:
    """A fresh folder ``YYYYmmdd-HHMMSS-<name>`` for one run (suffixed if it already exists)."""
    root = runs_dir() if root is None else root
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:32] or "run"
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    path = root / f"{stamp}-{slug}"
    n = 2
    while path.exists():
        path = root / f"{stamp}-{slug}-{n}"
        n += 1
    path.mkdir(parents=True)
    return path


@dataclass
class RunRecord:
    """What the history list shows about one run folder."""

    path: Path
    train_config: dict[str, Any] = field(default_factory=dict)
    last_step: int = 0
    last_train_loss: float | None = None
    last_val_loss: float | None = None
    checkpoints: list[Path] = field(default_factory=list)
    modified: float = 0.0

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def total_steps(self) -> int | None:
        steps = self.train_config.get("steps")
        return steps if isinstance(steps, int) else None


def _json_lines(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash, or the partial first line of a tail
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _tail(path: Path, size: int = TAIL_BYTES) -> str:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        fh.seek(max(0, end - size))
        return fh.read().decode("utf-8", errors="replace")


def read_run(path: Path) -> RunRecord | None:
    """The record of one folder, or None when it is not a run (no config.json nor metrics.jsonl)."""
    config_file, metrics_file = path / CONFIG_FILE, path / METRICS_FILE
    if not (config_file.is_file() or metrics_file.is_file()):
        return None
    rec = RunRecord(path=path)
    try:
        info = json.loads(config_file.read_text(encoding="utf-8"))
        if isinstance(info, dict) and isinstance(info.get("train_config"), dict):
            rec.train_config = info["train_config"]
    except (OSError, json.JSONDecodeError):
        pass
    try:
        for row in _json_lines(_tail(metrics_file)):
            step = row.get("step")
            if not isinstance(step, int):
                continue
            if row.get("type") == "val":
                rec.last_val_loss = row.get("loss")
            else:
                rec.last_train_loss = row.get("loss")
            rec.last_step = max(rec.last_step, step)
    except OSError:
        pass
    rec.checkpoints = sorted(path.glob("*.pth"), key=lambda p: p.stat().st_mtime)
    try:
        rec.modified = max(p.stat().st_mtime for p in (path, *path.iterdir()))
    except (OSError, ValueError):
        rec.modified = 0.0
    return rec


def list_runs(root: Path | None = None) -> list[RunRecord]:
    """Every run folder under ``root`` (default ``runs_dir()``), most recently active first."""
    root = runs_dir() if root is None else root
    records = [r for p in root.iterdir() if p.is_dir() and (r := read_run(p)) is not None]
    records.sort(key=lambda r: r.modified, reverse=True)
    return records


def load_curves(path: Path, label: str | None = None) -> RunCurves:
    """A run's recorded train and validation curves, ready for :class:`MetricsPlot`."""
    curves = RunCurves(label=label or path.name)
    metrics_file = path / METRICS_FILE
    if not metrics_file.is_file():
        return curves
    for row in _json_lines(metrics_file.read_text(encoding="utf-8", errors="replace")):
        step, content, energy = row.get("step"), row.get("content"), row.get("energy")
        if not all(isinstance(v, (int, float)) for v in (step, content, energy)):
            continue
        target = curves.val if row.get("type") == "val" else curves.train
        target.append(step, content, energy)
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
