"""The checkpoint list: every ``.pth`` under the runs folder (and ones opened from elsewhere).

Details (step, size, vocabulary, validation loss) are read by
:func:`core.checkpoint.read_info` on a worker thread and cached per file
version, so a long list, or a run saving while the list is shown, never stalls
the window. Reading waits for the engine (the checkpoint code needs torch);
until then rows show the file, its run and its date.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core import resources
from landauer_gui.engine import engine
from landauer_gui.widgets import stretched_row
from landauer_gui.workers import WorkerSlot

PATH_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
COLUMNS = ("Run", "Checkpoint", "Step", "Size (hidden×layers)", "Vocab", "Val loss", "Saved")
COL_RUN, COL_FILE, COL_STEP, COL_SIZE, COL_VOCAB, COL_LOSS, COL_DATE = range(len(COLUMNS))


def file_stamp(path: Path) -> tuple | None:
    """What identifies one version of a file: a rewritten checkpoint is read again."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _read_infos(paths: list[tuple[str, tuple]]) -> Iterator[tuple[str, tuple, Any, str | None]]:
    """Runs on the worker thread: ``(path, stamp, info, error)`` for each checkpoint.

    One unreadable file must not hide the others, so every failure is caught and
    shown on that file's row.
    """
    from core.checkpoint import read_info

    for path, stamp in paths:
        try:
            yield path, stamp, read_info(path), None
        except Exception as exc:  # any failure is a property of that file alone
            yield path, stamp, None, str(exc) or type(exc).__name__


class _Row(QTreeWidgetItem):
    """A table row that sorts numbers and dates by value rather than by text."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        col = self.treeWidget().sortColumn() if self.treeWidget() else 0
        a, b = self.data(col, SORT_ROLE), other.data(col, SORT_ROLE)
        if a is None or b is None or type(a) is not type(b):
            return (a is None, str(a)) < (b is None, str(b))
        return a < b


class CheckpointTable(QGroupBox):
    """A sortable table of checkpoints with Refresh and Open…; one row can be selected.

    ``selection_changed`` fires when the selected row changes, ``activated``
    on a double click, ``error`` with a message for the view's banner.
    """

    selection_changed = Signal()
    activated = Signal()
    error = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Checkpoints", parent)
        self._extra_paths: list[str] = []  # opened from outside runs_dir, kept across rescans
        self._info_cache: dict[str, tuple[tuple, Any, str | None]] = {}
        self._pending: dict[str, tuple] = {}  # path -> stamp still to read
        self._inflight: dict[str, tuple] = {}  # path -> stamp being read now
        self.reader = WorkerSlot(self)  # reads details in the background
        self.reader.finished.connect(self._on_reader_finished)

        self.tree = QTreeWidget(self)
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(COL_DATE, Qt.SortOrder.DescendingOrder)
        header = self.tree.header()
        header.setStretchLastSection(False)
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Stretch)
        self.tree.itemSelectionChanged.connect(self.selection_changed)
        self.tree.itemDoubleClicked.connect(lambda *_: self.activated.emit())

        refresh = QPushButton("Refresh", self)
        refresh.setToolTip("Look for new checkpoints in the runs folder")
        refresh.clicked.connect(self.refresh)
        open_button = QPushButton("Open…", self)
        open_button.setToolTip("Add a .pth checkpoint from anywhere, including ones made by the original train.py")
        open_button.clicked.connect(self.open_dialog)
        self.folder_label = QLabel(self)
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.folder_label.setStyleSheet("color: palette(placeholder-text);")
        lay = QVBoxLayout(self)
        lay.addWidget(self.tree)
        lay.addLayout(stretched_row(self.folder_label, refresh, open_button))
        engine().when_ready(self._read_pending)

    # -- listing --------------------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """Rescan the runs folder (and keep checkpoints opened from elsewhere)."""
        root = resources.runs_dir()
        self.folder_label.setText(f"Runs folder: {root}")
        found = [p for p in sorted(root.rglob("*.pth")) if p.is_file() and not p.name.startswith(".")]
        paths = [str(p.resolve()) for p in found]
        for extra in self._extra_paths:
            if extra not in paths and Path(extra).is_file():
                paths.append(extra)
        selected = self.selected_path()
        self.tree.setSortingEnabled(False)
        self.tree.clear()
        for path in paths:
            self.tree.addTopLevelItem(self._make_row(path))
        self.tree.setSortingEnabled(True)
        if selected is not None:
            self._select(str(selected))
        if self.tree.currentItem() is None and self.tree.topLevelItemCount():
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self._read_pending()

    def add(self, path: str | Path, select: bool = True) -> bool:
        """Show ``path`` in the list (and select it); False, with ``error``, if it is missing."""
        p = Path(path).expanduser()
        if not p.is_file():
            self.error.emit(f"Checkpoint file not found: {p}")
            return False
        key = str(p.resolve())
        if key not in self._extra_paths and not p.resolve().is_relative_to(resources.runs_dir().resolve()):
            self._extra_paths.append(key)
        row = self._find_row(key)
        if row is None:
            self.tree.addTopLevelItem(self._make_row(key))
        else:
            self._fill_row(row, key)
        if select:
            self._select(key)
        self._read_pending()
        return True

    @Slot()
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open checkpoint", str(resources.runs_dir()), "Checkpoints (*.pth *.pt);;All files (*)")
        if path:
            self.add(path)

    def paths(self) -> list[Path]:
        """The checkpoints listed, in display order."""
        return [Path(self.tree.topLevelItem(i).data(0, PATH_ROLE))
                for i in range(self.tree.topLevelItemCount())]

    def selected_path(self) -> Path | None:
        item = self.tree.currentItem()
        if item is None or not item.isSelected():
            return None
        return Path(item.data(0, PATH_ROLE))

    def row_texts(self, path: str | Path) -> list[str] | None:
        """The texts shown for ``path`` (column order as in the header), or None if not listed."""
        row = self._find_row(str(Path(path).resolve()))
        return None if row is None else [row.text(c) for c in range(len(COLUMNS))]

    def is_reading(self) -> bool:
        """True while details are still to be read (also while the engine loads)."""
        waiting = bool(self._pending) and not self.reader.is_closed() and engine().error() is None
        return self.reader.is_busy() or waiting

    # -- rows -----------------------------------------------------------------------------

    def _find_row(self, path: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, PATH_ROLE) == path:
                return item
        return None

    def _select(self, path: str) -> None:
        row = self._find_row(path)
        if row is not None:
            self.tree.setCurrentItem(row)
            self.tree.scrollToItem(row)

    def _make_row(self, path: str) -> QTreeWidgetItem:
        row = _Row()
        row.setData(0, PATH_ROLE, path)
        self._fill_row(row, path)
        return row

    @staticmethod
    def _run_name(p: Path) -> str:
        root = resources.runs_dir().resolve()
        if p.is_relative_to(root):
            rel = p.parent.relative_to(root)
            return rel.as_posix() if rel.parts else root.name
        return p.parent.name or str(p.parent)

    def _fill_row(self, row: QTreeWidgetItem, path: str) -> None:
        p = Path(path)
        stamp = file_stamp(p)
        cached = self._info_cache.get(path)
        known = cached is not None and cached[0] == stamp
        info, error = (cached[1], cached[2]) if known else (None, None)
        if stamp is not None and not known and self._inflight.get(path) != stamp:
            self._pending[path] = stamp

        def put(col: int, text: str, sort: Any = None) -> None:
            row.setText(col, text)
            row.setData(col, SORT_ROLE, text if sort is None else sort)

        put(COL_RUN, self._run_name(p))
        put(COL_FILE, p.name)
        mtime = stamp[0] / 1e9 if stamp else 0.0
        put(COL_DATE, datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M") if stamp else "", mtime)
        for col in (COL_STEP, COL_SIZE, COL_VOCAB, COL_LOSS):
            row.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        tip = str(p)
        if info is not None:
            cfg = dict(getattr(info, "config", None) or {})
            step = getattr(info, "step", None)
            put(COL_STEP, "" if step is None else f"{step:,}", -1 if step is None else int(step))
            hidden, layers = cfg.get("hidden_dim"), cfg.get("num_layers")
            size = f"{hidden}×{layers}" if hidden and layers else "?"
            put(COL_SIZE, size, (hidden or 0) * (layers or 0))
            vocab = getattr(info, "vocab_size", None) or cfg.get("vocab_size")
            put(COL_VOCAB, "" if vocab is None else str(vocab), vocab or 0)
            loss = getattr(info, "val_loss", None)
            put(COL_LOSS, "—" if loss is None else f"{loss:.4f}", float("inf") if loss is None else float(loss))
            if getattr(info, "is_original_format", False):
                tip += "\nSaved by the original train.py"
            for col in range(len(COLUMNS)):
                row.setForeground(col, self.palette().color(QPalette.ColorRole.Text))
        elif error is not None:
            put(COL_STEP, "unreadable", -2)
            for col in (COL_SIZE, COL_VOCAB, COL_LOSS):
                put(col, "")
            tip += f"\nCannot read this checkpoint: {error}"
            for col in range(len(COLUMNS)):
                row.setForeground(col, QColor("#a33"))
        else:
            put(COL_STEP, "…", -1)
            for col in (COL_SIZE, COL_VOCAB, COL_LOSS):
                put(col, "")
        for col in range(len(COLUMNS)):
            row.setToolTip(col, tip)

    # -- background reading ---------------------------------------------------------------

    def _read_pending(self) -> None:
        """Read checkpoint details off the UI thread, one batch at a time."""
        if (self.reader.is_busy() or self.reader.is_closed() or not self._pending
                or not engine().is_ready()):
            return
        batch = list(self._pending.items())
        self._inflight = dict(self._pending)
        self._pending.clear()
        self.reader.start(lambda: _read_infos(batch), self._on_info)

    @Slot(object)
    def _on_info(self, item: tuple) -> None:
        path, stamp, info, error = item
        self._info_cache[path] = (stamp, info, error)
        row = self._find_row(path)
        if row is not None:
            self.tree.setSortingEnabled(False)
            self._fill_row(row, path)
            self.tree.setSortingEnabled(True)

    @Slot()
    def _on_reader_finished(self) -> None:
        self._inflight.clear()
        self._read_pending()
