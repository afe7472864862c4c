"""The run history: a sortable table comparing run folders, their curves next to the live run.

Reading, comparing, naming and deleting run folders is :mod:`core.runs`' job
(it owns their format); this module only shows them. Besides the studio's own
runs folder it lists a persisted list of *watched folders* (File ▸ Open run
folder…): each is a run folder or a folder of run folders, e.g. one a CLI,
``torchrun`` or another machine writes into. ``new_run_dir``, ``RunRecord``,
``read_run`` and ``list_runs`` are re-exported for the studio's callers.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.resources import runs_dir
from core.run_curves import read_curves
from core.run_history import (
    comparison_table,
    delete_run,
    folder_kind,
    folder_size,
    not_a_run_message,
)
from core.runs import (
    METRICS_FILE,
    RunFolderError,
    RunRecord,
    is_being_written,
    list_runs,
    new_run_dir,
    read_run,
    set_display_name,
)
from landauer_gui import settings
from landauer_gui.curve_data import RunCurves
from landauer_gui.widgets import stretched_row

__all__ = ["RunRecord", "RunsPanel", "list_runs", "load_curves", "new_run_dir", "read_run"]

WATCHED_KEY = "runs/watched"  # JSON list of folders, in the order they were added
PATH_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def load_curves(path: Path, label: str | None = None) -> RunCurves:
    """A run's recorded train and validation curves, ready for :class:`MetricsPlot`."""
    curves = RunCurves(label=label or Path(path).name)
    curves.add_recorded(read_curves(path))
    return curves


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


class _Item(QTableWidgetItem):
    """A cell that sorts by its value's :func:`core.run_history.sort_key` (numbers as numbers)."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if mine is None or theirs is None:
            return super().__lt__(other)
        return tuple(mine) < tuple(theirs)


class RunsPanel(QWidget):
    """Runs as a table (only the settings that differ between them); tick runs to overlay
    their curves, watch one live, rename or delete them, add folders to list."""

    show_requested = Signal(list)  # [RunCurves, ...] for MetricsPlot.set_overlays
    watch_requested = Signal(object)  # Path of a run folder to follow live
    deleted = Signal(list)  # [Path] of the run folders just deleted
    error = Signal(str)  # one line for the banner
    message = Signal(str)  # one line for the status bar

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = QTableWidget(self)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicatorShown(True)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda *_: self.watch_selected())

        self.hint = QLabel(self)
        self.hint.setStyleSheet("color: palette(placeholder-text);")
        self.watch_button = QPushButton("Watch live", self)
        self.watch_button.setToolTip("Follow the selected run in the plots and log as it is written "
                                     "(by the command line, torchrun or another machine)")
        self.watch_button.clicked.connect(self.watch_selected)
        self.rename_button = QPushButton("Rename…", self)
        self.rename_button.setToolTip("Give the selected run a name (its folder keeps its own)")
        self.rename_button.clicked.connect(self.rename_selected)
        self.delete_button = QPushButton("Delete…", self)
        self.delete_button.setToolTip("Delete the selected runs' folders (asks first; "
                                      "a run being trained is never deleted)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.show_button = QPushButton("Show curves", self)
        self.show_button.setToolTip("Tick the selected runs: overlay their curves on the plots")
        self.show_button.clicked.connect(self.show_selected)
        self.hide_button = QPushButton("Hide curves", self)
        self.hide_button.setToolTip("Untick every run: remove past runs from the plots")
        self.hide_button.clicked.connect(lambda: self.set_checked([]))
        self.folders_button = QToolButton(self)
        self.folders_button.setText("Folders")
        self.folders_button.setToolTip("Folders listed here besides the studio's own runs")
        self.folders_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.folders_menu = QMenu(self.folders_button)
        self.folders_menu.aboutToShow.connect(self._fill_folders_menu)
        self.folders_button.setMenu(self.folders_menu)
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.clicked.connect(self.refresh)

        buttons = stretched_row(self.hint, self.watch_button, self.rename_button, self.delete_button,
                                self.show_button, self.hide_button, self.folders_button,
                                self.refresh_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        self._records: list[RunRecord] = []
        self._checked: list[Path] = []
        self._curves: dict[Path, tuple[tuple, RunCurves]] = {}
        self.refresh()

    # -- listing ----------------------------------------------------------------------------

    def records(self) -> list[RunRecord]:
        return list(self._records)

    def watched_folders(self) -> list[Path]:
        try:
            folders = json.loads(settings.get(WATCHED_KEY, "[]", str))
        except ValueError:
            folders = []
        return [Path(f) for f in folders if isinstance(f, str)] if isinstance(folders, list) else []

    def _save_watched(self, folders: list[Path]) -> None:
        settings.put(WATCHED_KEY, json.dumps([str(f) for f in folders]))

    def _collect(self) -> tuple[list[RunRecord], int]:
        """Runs of the runs folder and the watched folders (each once); and how many watched
        folders are missing or hold no runs."""
        found: dict[Path, RunRecord] = {}
        missing = 0
        for rec in list_runs(runs_dir()):
            found.setdefault(rec.path.resolve(), rec)
        for folder in self.watched_folders():
            kind = folder_kind(folder)
            if kind == "run":
                recs = [r for r in [read_run(folder)] if r is not None]
            elif kind == "runs":
                recs = list_runs(folder)
            else:
                missing += 1
                continue
            for rec in recs:
                found.setdefault(rec.path.resolve(), rec)
        records = sorted(found.values(), key=lambda r: r.modified, reverse=True)
        return records, missing

    def refresh(self) -> None:
        """Re-read every listed folder (the selection, ticks and sort order stay)."""
        selected = {r.path for r in self.selected()}
        self._records, missing = self._collect()
        columns, rows = comparison_table(self._records)
        table = self.table
        header = table.horizontalHeader()
        sort_col, order = header.sortIndicatorSection(), header.sortIndicatorOrder()
        sort_key = (table.horizontalHeaderItem(sort_col).data(PATH_ROLE)
                    if 0 <= sort_col < table.columnCount() and table.horizontalHeaderItem(sort_col) else None)
        checked = {p.resolve() for p in self._checked}
        table.blockSignals(True)
        table.setSortingEnabled(False)
        table.clear()
        table.setColumnCount(len(columns))
        table.setRowCount(len(rows))
        for c, col in enumerate(columns):
            head = QTableWidgetItem(col.title)
            head.setToolTip(col.tip)
            head.setData(PATH_ROLE, col.key)
            table.setHorizontalHeaderItem(c, head)
        for r, (rec, cells) in enumerate(zip(self._records, rows, strict=True)):
            for c, cell in enumerate(cells):
                item = _Item(cell.text)
                item.setData(SORT_ROLE, list(cell.sort))
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(r, c, item)
            first = table.item(r, 0)
            first.setData(PATH_ROLE, str(rec.path))
            first.setFlags(first.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            first.setCheckState(Qt.CheckState.Checked if rec.path.resolve() in checked
                                else Qt.CheckState.Unchecked)
            first.setToolTip(f"{rec.path}\nTick to show its curves in the plots"
                             + "".join(f"\n{k} = {v}" for k, v in rec.train_config.items()))
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        table.setColumnWidth(0, max(160, min(320, table.sizeHintForColumn(0) + 10)))
        keys = [col.key for col in columns]
        table.setSortingEnabled(True)
        if sort_key in keys:
            table.sortItems(keys.index(sort_key), order)
        else:
            header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # newest first, as listed
        table.blockSignals(False)
        self._checked = [p for p in self._checked if p.resolve() in {r.path.resolve() for r in self._records}]
        self.select(list(selected))
        n = len(self._records)
        text = f"{n} run{'s' if n != 1 else ''}"
        if self.watched_folders():
            text += f" · {len(self.watched_folders())} watched folder(s)"
        if missing:
            text += f" ({missing} not found)"
        self.hint.setText(text)
        self._update_buttons()

    # -- selection and overlays -------------------------------------------------------------

    def _row_path(self, row: int) -> Path:
        return Path(self.table.item(row, 0).data(PATH_ROLE))

    def row_of(self, path: Path) -> int:
        for row in range(self.table.rowCount()):
            if _same(self._row_path(row), Path(path)):
                return row
        return -1

    def selected(self) -> list[RunRecord]:
        rows = {i.row() for i in self.table.selectedItems()}
        paths = {self._row_path(r).resolve() for r in rows}
        return [r for r in self._records if r.path.resolve() in paths]

    def select(self, paths: list[Path]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for p in paths:
            row = self.row_of(p)
            if row >= 0:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def checked(self) -> list[Path]:
        return list(self._checked)

    def set_checked(self, paths: list[Path]) -> None:
        """Tick exactly these runs and show their curves in the plots."""
        wanted = {Path(p).resolve() for p in paths}
        self.table.blockSignals(True)
        for row in range(self.table.rowCount()):
            on = self._row_path(row).resolve() in wanted
            self.table.item(row, 0).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.table.blockSignals(False)
        self._checked = [Path(p) for p in paths if self.row_of(Path(p)) >= 0]
        self._emit_overlays()

    def show_selected(self) -> None:
        self.set_checked([r.path for r in self.selected()])

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 0:
            return
        path = Path(item.data(PATH_ROLE))
        on = item.checkState() == Qt.CheckState.Checked
        self._checked = [p for p in self._checked if not _same(p, path)] + ([path] if on else [])
        self._emit_overlays()

    def _curves_of(self, rec: RunRecord) -> RunCurves:
        """Curves read once per version of the run's metrics file."""
        try:
            st = (rec.path / METRICS_FILE).stat()
            stamp = (st.st_mtime_ns, st.st_size, rec.display_name)
        except OSError:
            stamp = (0, 0, rec.display_name)
        cached = self._curves.get(rec.path)
        if cached is None or cached[0] != stamp:
            cached = (stamp, load_curves(rec.path, rec.display_name or rec.name))
            self._curves[rec.path] = cached
        return cached[1]

    def _emit_overlays(self) -> None:
        by_path = {r.path.resolve(): r for r in self._records}
        recs = [by_path[p.resolve()] for p in self._checked if p.resolve() in by_path]
        self.show_requested.emit([self._curves_of(r) for r in recs])

    def _update_buttons(self) -> None:
        n = len(self.selected())
        self.watch_button.setEnabled(n == 1)
        self.rename_button.setEnabled(n == 1)
        self.delete_button.setEnabled(n >= 1)
        self.show_button.setEnabled(n >= 1)

    # -- watched folders --------------------------------------------------------------------

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open run folder", str(runs_dir()))
        if path:
            self.add_folder(path)

    def add_folder(self, path: str | Path, watch: bool = True) -> str | None:
        """List a run folder, or a folder of run folders, from now on (remembered).

        A run folder is also watched live when ``watch``. Returns the folder's kind
        (``"run"`` or ``"runs"``), or None with a message when it holds no runs.
        """
        path = Path(path).expanduser().absolute()
        kind = folder_kind(path)
        if kind is None:
            self.error.emit(not_a_run_message(path))
            return None
        folders = self.watched_folders()
        under_runs = _same(path, runs_dir()) or (kind == "run" and _same(path.parent, runs_dir()))
        if not under_runs and not any(_same(f, path) for f in folders):
            self._save_watched([*folders, path])
        self.refresh()
        if kind == "run" and watch:
            self.watch_requested.emit(path)
        else:
            n = len(list_runs(path)) if kind == "runs" else 1
            self.message.emit(f"Listing {n} run{'s' if n != 1 else ''} from {path}")
        return kind

    def remove_folder(self, path: str | Path) -> None:
        """Stop listing a watched folder (nothing on disk changes)."""
        self._save_watched([f for f in self.watched_folders() if not _same(f, Path(path))])
        self.refresh()

    def _fill_folders_menu(self) -> None:
        menu = self.folders_menu
        menu.clear()
        menu.addAction("Open run folder…", self.open_folder_dialog)
        folders = self.watched_folders()
        if folders:
            menu.addSection("Stop listing")
        for f in folders:
            menu.addAction(f"Remove {f}", lambda f=f: self.remove_folder(f))

    # -- actions on runs --------------------------------------------------------------------

    def watch_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1:
            self.watch_requested.emit(chosen[0].path)

    def rename_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) != 1:
            return
        rec = chosen[0]
        name, ok = QInputDialog.getText(self, "Rename run", f"Name for {rec.path.name} "
                                        "(empty: the folder's name):", text=rec.display_name or rec.name)
        if ok:
            self.rename(rec.path, name)

    def rename(self, path: Path, name: str) -> bool:
        """Show the run as ``name``: writes only its ``display_name.txt`` (safe while it trains)."""
        try:
            shown = set_display_name(path, name)
        except RunFolderError as exc:
            self.error.emit(str(exc))
            return False
        self.refresh()
        self.message.emit(f"Renamed {Path(path).name} to “{shown}”")
        if any(_same(p, path) for p in self._checked):
            self._emit_overlays()  # the legend shows the new name
        return True

    def delete_selected(self) -> None:
        """Ask, then delete the selected runs; a run being trained now is refused first."""
        from core.memory import format_bytes

        chosen = self.selected()
        live = [r for r in chosen if is_being_written(r.path)]
        for rec in live:
            self.error.emit(f"“{rec.display_name or rec.name}” is being trained now; "
                            "stop it before deleting it")
        chosen = [r for r in chosen if r not in live]
        if not chosen:
            return
        sizes = {r.path: folder_size(r.path) for r in chosen}
        lines = "\n".join(f"• {r.display_name or r.name} ({format_bytes(sizes[r.path])}): {r.path}"
                          for r in chosen)
        title = "Delete run" if len(chosen) == 1 else f"Delete {len(chosen)} runs"
        answer = QMessageBox.question(
            self, title, f"Delete for good, with their checkpoints and curves?\n\n{lines}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        gone = []
        for rec in chosen:
            try:
                kept = delete_run(rec.path)
            except RunFolderError as exc:
                self.error.emit(str(exc))
                continue
            gone.append(rec.path)
            self._curves.pop(rec.path, None)
            if kept:
                self.error.emit(f"Deleted the run files of {rec.path}; kept {len(kept)} other "
                                f"item(s) there: {', '.join(p.name for p in kept[:3])}")
        if gone:
            self._checked = [p for p in self._checked if not any(_same(p, g) for g in gone)]
            self.refresh()
            self._emit_overlays()
            self.deleted.emit(gone)
            self.message.emit(f"Deleted {', '.join(p.name for p in gone)}")
