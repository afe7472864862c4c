"""The Generate view: pick a checkpoint, set sampling options, stream text from it.

Everything that computes (reading checkpoints, loading models, sampling) lives in
:mod:`core`; this module only renders and forwards. Checkpoint details, model
loading and sampling all run on :class:`BackgroundIterator` threads, so the
window stays responsive, also while a training run saves new checkpoints.
The model is always loaded from its file, never borrowed from a trainer, so
sampling cannot disturb a run in progress.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QFontDatabase,
    QKeySequence,
    QPalette,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core import resources
from core.checkpoint import CheckpointError, load_model, read_info
from core.device import detect_devices
from core.hparams import SamplingConfig
from core.sampling import PromptError, TextGenerator
from landauer_gui.param_form import ParamForm
from landauer_gui.widgets import Banner, stretched_row
from landauer_gui.workers import BackgroundIterator

FLUSH_MS = 40  # coalesce streamed characters: ~25 repaints a second whatever the rate
PATH_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
COLUMNS = ("Run", "Checkpoint", "Step", "Size (hidden×layers)", "Vocab", "Val loss", "Saved")
COL_RUN, COL_FILE, COL_STEP, COL_SIZE, COL_VOCAB, COL_LOSS, COL_DATE = range(len(COLUMNS))


# --- items a generation worker yields besides the characters themselves -------------


@dataclass
class _Loaded:
    """A model loaded on the worker thread, handed back so the UI thread can cache it."""

    key: tuple
    model: Any
    itos: Any
    info: Any


@dataclass
class _Problem:
    """An expected failure (bad file, bad prompt) worded for the person at the screen."""

    message: str
    missing: tuple[str, ...] = ()


class _Ready:
    """The prompt was accepted; only characters follow."""


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _generation_items(path: str, device: str, key: tuple, cached: tuple | None, prompt: str,
                      sampling: SamplingConfig, stop: threading.Event) -> Iterator[object]:
    """Runs on the worker thread: load (unless cached), check the prompt, then stream.

    Expected failures become a :class:`_Problem` item rather than an exception, so
    the view can show a precise message (and which prompt characters are unknown).
    """
    name = Path(path).name
    try:
        if cached is None:
            model, itos, info = load_model(path, device)
            yield _Loaded(key, model, itos, info)
        else:
            model, itos, info = cached
        chars = TextGenerator(model, itos).stream(prompt, sampling, stop)
    except PromptError as exc:
        yield _Problem(_sentence(str(exc)) + ".", tuple(getattr(exc, "missing", ())))
        return
    except CheckpointError as exc:  # its messages name the file, the cause and what to do
        yield _Problem(str(exc))
        return
    except (OSError, ValueError) as exc:
        yield _Problem(f"Cannot generate from {name}: {exc}")
        return
    yield _Ready()
    yield from chars


def _read_infos(paths: list[tuple[str, tuple]]) -> Iterator[tuple[str, tuple, Any, str | None]]:
    """Runs on the worker thread: ``(path, stamp, info, error)`` for each checkpoint.

    One unreadable file must not hide the others, so every failure is caught and
    shown on that file's row.
    """
    for path, stamp in paths:
        try:
            yield path, stamp, read_info(path), None
        except Exception as exc:  # any failure is a property of that file alone
            yield path, stamp, None, str(exc) or type(exc).__name__


def _stamp(path: Path) -> tuple | None:
    """What identifies one version of a file: a rewritten checkpoint is read again."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class _Row(QTreeWidgetItem):
    """A table row that sorts numbers and dates by value rather than by text."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        col = self.treeWidget().sortColumn() if self.treeWidget() else 0
        a, b = self.data(col, SORT_ROLE), other.data(col, SORT_ROLE)
        if a is None or b is None or type(a) is not type(b):
            return (a is None, str(a)) < (b is None, str(b))
        return a < b


class GenerateView(QWidget):
    """Sample text from any Landauer checkpoint, streamed as it is produced.

    The main window calls :meth:`refresh` and :meth:`add_checkpoint` when a
    training run saves; everything else is driven from the view's own controls.
    """

    generation_started = Signal(str)  # checkpoint path
    generation_finished = Signal(str)  # the generated text (without the prompt)
    error_shown = Signal(str)  # the message now shown in the banner

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._extra_paths: list[str] = []  # opened from outside runs_dir, kept across rescans
        self._info_cache: dict[str, tuple[tuple, Any, str | None]] = {}
        self._info_worker: BackgroundIterator | None = None
        self._info_pending: dict[str, tuple] = {}  # path -> stamp still to read
        self._info_inflight: dict[str, tuple] = {}  # path -> stamp being read now
        self._model_cache: tuple[tuple, tuple] | None = None  # (key, (model, itos, info))
        self._worker: BackgroundIterator | None = None
        self._stop = threading.Event()
        self._pending: list[str] = []
        self._generated: list[str] = []  # flushed chunks, not single characters
        self._n_chars = 0
        self._submitted_prompt = ""  # what this sample continues, even if the box is edited meanwhile
        self._started_at = 0.0
        self._first_char_at: float | None = None
        self._problem: _Problem | None = None
        self._failure: str | None = None
        self._closing = False  # set by shutdown(): start no new threads

        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)

        self._build_ui()
        self._update_buttons()
        app = QApplication.instance()
        if app is not None:  # child widgets get no closeEvent when the window closes
            app.aboutToQuit.connect(self.shutdown)
        self.refresh()

    # --- layout -------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.banner = Banner(self)
        self.error_label = self.banner.label

        # Checkpoints
        self.table = QTreeWidget()
        self.table.setRootIsDecorated(False)
        self.table.setAlternatingRowColors(True)
        self.table.setUniformRowHeights(True)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setHeaderLabels(list(COLUMNS))
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_DATE, Qt.SortOrder.DescendingOrder)
        header = self.table.header()
        header.setStretchLastSection(False)
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda *_: self.generate())

        self._refresh_button = QPushButton("Refresh")
        self._refresh_button.setToolTip("Look for new checkpoints in the runs folder")
        self._refresh_button.clicked.connect(self.refresh)
        self._open_button = QPushButton("Open…")
        self._open_button.setToolTip("Add a .pth checkpoint from anywhere, including ones made by the original train.py")
        self._open_button.clicked.connect(self.open_checkpoint_dialog)
        self._folder_label = QLabel()
        self._folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._folder_label.setStyleSheet("color: palette(placeholder-text);")
        list_buttons = stretched_row(self._folder_label, self._refresh_button, self._open_button)

        ckpt_box = QGroupBox("Checkpoints")
        ckpt_layout = QVBoxLayout(ckpt_box)
        ckpt_layout.addWidget(self.table)
        ckpt_layout.addLayout(list_buttons)

        # Sampling
        self.form = ParamForm(SamplingConfig)
        self.form.changed.connect(self._update_buttons)
        self.device_box = QComboBox()
        for dev in detect_devices():
            self.device_box.addItem(dev.name, dev.name)
            self.device_box.setItemData(self.device_box.count() - 1, dev.description, Qt.ItemDataRole.ToolTipRole)
        self.device_box.setCurrentIndex(self.device_box.findData("cpu"))  # small models sample fastest here
        self.device_box.setToolTip("Where the model runs; a seed gives the same text on every device")
        device_form = QFormLayout()
        device_form.addRow("Device", self.device_box)
        sampling_box = QGroupBox("Sampling")
        sampling_layout = QVBoxLayout(sampling_box)
        sampling_layout.addWidget(self.form)
        sampling_layout.addLayout(device_form)
        sampling_layout.addStretch(1)

        # Prompt and output
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setFont(mono)
        self.prompt_edit.setPlaceholderText("Prompt: the text to continue (empty starts from a space)")
        self.prompt_edit.setTabChangesFocus(True)
        self.prompt_edit.textChanged.connect(self._clear_prompt_marks)
        self.prompt_edit.setMaximumHeight(96)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setDefault(True)
        self.generate_button.setToolTip("Continue the prompt with the selected checkpoint (Ctrl+Enter)")
        self.generate_button.clicked.connect(self.generate)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End the sample after the current character (Esc)")
        self.stop_button.clicked.connect(self.stop)
        run_row = QHBoxLayout()
        run_row.addStretch(1)
        run_row.addWidget(self.stop_button)
        run_row.addWidget(self.generate_button)

        self.output = QTextEdit()
        self.output.setReadOnly(True)
        self.output.setAcceptRichText(False)
        self.output.setFont(mono)
        self.output.setPlaceholderText("Generated text appears here as it is produced.")
        self.output.textChanged.connect(self._update_buttons)

        self.status_label = QLabel("Select a checkpoint to sample from.")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the prompt and its continuation to the clipboard")
        self.copy_button.clicked.connect(self.copy_output)
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save the prompt and its continuation as a .txt file")
        self.save_button.clicked.connect(self.save_output_dialog)
        out_row = stretched_row(self.status_label, self.copy_button, self.save_button)

        text_box = QGroupBox("Prompt and sample")
        text_layout = QVBoxLayout(text_box)
        text_layout.addWidget(self.prompt_edit)
        text_layout.addLayout(run_row)
        text_layout.addWidget(self.output, 1)
        text_layout.addLayout(out_row)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(sampling_box)
        bottom.addWidget(text_box)
        bottom.setStretchFactor(0, 0)
        bottom.setStretchFactor(1, 1)
        bottom.setChildrenCollapsible(False)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(ckpt_box)
        main.addWidget(bottom)
        main.setStretchFactor(0, 2)
        main.setStretchFactor(1, 5)
        main.setSizes([240, 600])  # room for several checkpoints before the list scrolls
        main.setChildrenCollapsible(False)

        outer = QVBoxLayout(self)
        outer.addWidget(self.banner)
        outer.addWidget(main, 1)

        for keys, slot in (("Ctrl+Return", self.generate), ("Ctrl+Enter", self.generate),
                           (QKeySequence(Qt.Key.Key_Escape), self.stop)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)  # not while another view is shown
            shortcut.activated.connect(slot)

    # --- checkpoints ----------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """Rescan the runs folder (and keep checkpoints opened from elsewhere)."""
        root = resources.runs_dir()
        self._folder_label.setText(f"Runs folder: {root}")
        found = [p for p in sorted(root.rglob("*.pth")) if p.is_file() and not p.name.startswith(".")]
        paths = [str(p.resolve()) for p in found]
        for extra in self._extra_paths:
            if extra not in paths and Path(extra).is_file():
                paths.append(extra)
        selected = self.selected_path()
        self.table.setSortingEnabled(False)
        self.table.clear()
        for path in paths:
            self.table.addTopLevelItem(self._make_row(path))
        self.table.setSortingEnabled(True)
        if selected is not None:
            self._select(str(selected))
        if self.table.currentItem() is None and self.table.topLevelItemCount():
            self.table.setCurrentItem(self.table.topLevelItem(0))
        self._read_pending_infos()
        self._update_buttons()

    @Slot(str)
    def add_checkpoint(self, path: str | Path, select: bool = True) -> bool:
        """Show ``path`` in the list (and select it); False, with a message, if it is missing."""
        p = Path(path).expanduser()
        if not p.is_file():
            self.show_error(f"Checkpoint file not found: {p}")
            return False
        key = str(p.resolve())
        if key not in self._extra_paths and not self._under_runs_dir(p):
            self._extra_paths.append(key)
        row = self._find_row(key)
        if row is None:
            self.table.addTopLevelItem(self._make_row(key))
        else:
            self._fill_row(row, key)
        if select:
            self._select(key)
        self._read_pending_infos()
        self._update_buttons()
        return True

    @Slot()
    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open checkpoint", str(resources.runs_dir()), "Checkpoints (*.pth *.pt);;All files (*)")
        if path:
            self.add_checkpoint(path)

    def checkpoint_paths(self) -> list[Path]:
        """The checkpoints listed, in display order."""
        return [Path(self.table.topLevelItem(i).data(0, PATH_ROLE))
                for i in range(self.table.topLevelItemCount())]

    def selected_path(self) -> Path | None:
        item = self.table.currentItem()
        if item is None or not item.isSelected():
            return None
        return Path(item.data(0, PATH_ROLE))

    def checkpoint_row(self, path: str | Path) -> list[str] | None:
        """The texts shown for ``path`` (column order as in the header), or None if not listed."""
        row = self._find_row(str(Path(path).resolve()))
        return None if row is None else [row.text(c) for c in range(len(COLUMNS))]

    def is_reading_info(self) -> bool:
        return self._info_worker is not None

    def _under_runs_dir(self, p: Path) -> bool:
        return p.resolve().is_relative_to(resources.runs_dir().resolve())

    def _find_row(self, path: str) -> QTreeWidgetItem | None:
        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            if item.data(0, PATH_ROLE) == path:
                return item
        return None

    def _select(self, path: str) -> None:
        row = self._find_row(path)
        if row is not None:
            self.table.setCurrentItem(row)
            self.table.scrollToItem(row)

    def _make_row(self, path: str) -> QTreeWidgetItem:
        row = _Row()
        row.setData(0, PATH_ROLE, path)
        self._fill_row(row, path)
        return row

    def _run_name(self, p: Path) -> str:
        root = resources.runs_dir().resolve()
        if p.is_relative_to(root):
            rel = p.parent.relative_to(root)
            return rel.as_posix() if rel.parts else root.name
        return p.parent.name or str(p.parent)

    def _fill_row(self, row: QTreeWidgetItem, path: str) -> None:
        p = Path(path)
        stamp = _stamp(p)
        cached = self._info_cache.get(path)
        info, error = (cached[1], cached[2]) if cached and cached[0] == stamp else (None, None)
        known = cached is not None and cached[0] == stamp
        if stamp is not None and not known and self._info_inflight.get(path) != stamp:
            self._info_pending[path] = stamp

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

    def _read_pending_infos(self) -> None:
        """Read checkpoint details off the UI thread, one batch at a time."""
        if self._info_worker is not None or not self._info_pending or self._closing:
            return
        batch = list(self._info_pending.items())
        self._info_inflight = dict(self._info_pending)
        self._info_pending.clear()
        worker = BackgroundIterator(lambda: _read_infos(batch), self)
        worker.item.connect(self._on_info)
        worker.finished.connect(self._on_info_finished)
        self._info_worker = worker
        worker.start()

    @Slot(object)
    def _on_info(self, item: tuple) -> None:
        path, stamp, info, error = item
        self._info_cache[path] = (stamp, info, error)
        row = self._find_row(path)
        if row is not None:
            self.table.setSortingEnabled(False)
            self._fill_row(row, path)
            self.table.setSortingEnabled(True)

    @Slot()
    def _on_info_finished(self) -> None:
        worker, self._info_worker = self._info_worker, None
        self._info_inflight.clear()
        if worker is not None:
            worker.deleteLater()
        self._read_pending_infos()

    # --- generation -------------------------------------------------------------------

    def sampling(self) -> SamplingConfig:
        """The sampling options as currently entered."""
        return self.form.values()

    def set_sampling(self, **values: Any) -> None:
        """Set some sampling options, e.g. ``set_sampling(seed=7, max_new_tokens=50)``."""
        self.form.set_values(values)

    def prompt(self) -> str:
        return self.prompt_edit.toPlainText()

    def set_prompt(self, text: str) -> None:
        self.prompt_edit.setPlainText(text)

    def device(self) -> str:
        return self.device_box.currentData() or "cpu"

    def is_generating(self) -> bool:
        return self._worker is not None

    @Slot()
    def generate(self) -> None:
        """Start sampling from the selected checkpoint; ignored while a sample is running."""
        if self._worker is not None or self._closing:
            return
        path = self.selected_path()
        if path is None:
            self.show_error("Select a checkpoint first (or add one with Open…).")
            return
        problems = self.form.errors()
        if problems:
            self.show_error("Check the sampling options: " + "; ".join(problems) + ".")
            return
        sampling = self.sampling()
        prompt = self.prompt()
        device = self.device()
        stamp = _stamp(path)
        key = (str(path), stamp, device)
        cached = self._model_cache[1] if self._model_cache and self._model_cache[0] == key else None

        self.clear_error()
        self._stop = threading.Event()
        self._problem = None
        self._failure = None
        self._first_char_at = None
        self._started_at = time.perf_counter()
        self._submitted_prompt = prompt
        self.status_label.setText("Loading model…" if cached is None else "Reading the prompt…")

        stop = self._stop
        worker = BackgroundIterator(
            lambda: _generation_items(str(path), device, key, cached, prompt, sampling, stop), self)
        worker.item.connect(self._on_item)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._update_buttons()
        worker.start()
        self._flush_timer.start()
        self.generation_started.emit(str(path))

    @Slot()
    def stop(self) -> None:
        """Ask the running sample to end after the current character."""
        if self._worker is not None:
            self._stop.set()
            self.status_label.setText("Stopping…")
            self._update_buttons()

    @Slot(object)
    def _on_item(self, item: object) -> None:
        if isinstance(item, str):
            if self._first_char_at is None:
                self._first_char_at = time.perf_counter()
            self._pending.append(item)
        elif isinstance(item, _Ready):
            # Only now: a refused prompt or file leaves the last sample readable.
            self._pending.clear()
            self._generated.clear()
            self._n_chars = 0
            self.output.clear()
            self._append(self._submitted_prompt, prompt=True)
            self.status_label.setText("Generating…")
        elif isinstance(item, _Loaded):
            self._model_cache = (item.key, (item.model, item.itos, item.info))
        elif isinstance(item, _Problem):
            self._problem = item

    @Slot(str)
    def _on_failed(self, detail: str) -> None:
        self._failure = detail

    @Slot()
    def _on_finished(self) -> None:
        self._flush_timer.stop()
        self._flush()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.deleteLater()
        text = "".join(self._generated)
        if self._problem is not None:
            self.status_label.setText("Nothing generated.")
            self.show_error(self._problem.message)
            self._mark_prompt(self._problem.missing)
        elif self._failure is not None:
            self.status_label.setText(f"Failed after {len(text):,} characters.")
            self.show_error(f"Generation failed: {self._failure}")
        else:
            verb = "Stopped after" if self._stop.is_set() else "Generated"
            self.status_label.setText(f"{verb} {self._rate_text()}.")
        self._update_buttons()
        if self._problem is None and self._failure is None:
            self.generation_finished.emit(text)

    def _rate_text(self) -> str:
        n = self._n_chars
        if self._first_char_at is None or n == 0:
            return f"{n:,} characters"
        elapsed = max(time.perf_counter() - self._first_char_at, 1e-6)
        return f"{n:,} characters in {elapsed:.2f} s ({n / elapsed:,.0f} chars/s)"

    @Slot()
    def _flush(self) -> None:
        """Append the characters received since the last flush in one edit."""
        if not self._pending:
            return
        chunk = "".join(self._pending)
        self._pending.clear()
        self._generated.append(chunk)
        self._n_chars += len(chunk)
        self._append(chunk, prompt=False)
        if self._worker is not None and not self._stop.is_set():
            self.status_label.setText(f"Generating… {self._rate_text()}")

    def _append(self, text: str, prompt: bool) -> None:
        bar = self.output.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 4  # don't yank the view if the user scrolled up
        fmt = QTextCharFormat()
        if prompt:
            fmt.setFontWeight(700)
            fmt.setForeground(self.palette().color(QPalette.ColorRole.Link))
        else:
            fmt.setForeground(self.palette().color(QPalette.ColorRole.Text))
        cursor = QTextCursor(self.output.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text, fmt)
        if follow:
            self.output.moveCursor(QTextCursor.MoveOperation.End)
            bar.setValue(bar.maximum())

    # --- output ---------------------------------------------------------------------

    def output_text(self) -> str:
        """The prompt followed by everything generated so far."""
        self._flush()
        return self.output.toPlainText()

    def generated_text(self) -> str:
        """Only the continuation, without the prompt."""
        self._flush()
        return "".join(self._generated)

    @Slot()
    def copy_output(self) -> None:
        QApplication.clipboard().setText(self.output_text())
        self.status_label.setText("Copied to the clipboard.")

    @Slot()
    def save_output_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save sample", "sample.txt", "Text files (*.txt);;All files (*)")
        if path:
            self.save_output(path)

    def save_output(self, path: str | Path) -> bool:
        """Write the prompt and sample as UTF-8 text; False, with a message, on failure."""
        try:
            Path(path).write_text(self.output_text(), encoding="utf-8")
        except OSError as exc:
            self.show_error(f"Cannot save the sample to {path}: {exc.strerror or exc}")
            return False
        self.status_label.setText(f"Saved to {path}.")
        return True

    # --- messages and state -------------------------------------------------------

    def error_text(self) -> str:
        """The message in the banner, or "" when none is shown."""
        return self.banner.text()

    @Slot(str)
    def show_error(self, message: str) -> None:
        self.banner.show_message(message)
        self.error_shown.emit(message)

    @Slot()
    def clear_error(self) -> None:
        self.banner.hide()

    def status_text(self) -> str:
        return self.status_label.text()

    def _mark_prompt(self, missing: tuple[str, ...]) -> None:
        """Underline the characters the model does not know, so they are easy to find."""
        if not missing:
            return
        fmt = QTextCharFormat()
        fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        fmt.setUnderlineColor(QColor("#c0392b"))
        fmt.setBackground(QColor("#fdecea"))
        marks = []
        text = self.prompt_edit.toPlainText()
        for i, ch in enumerate(text):
            if ch in missing:
                sel = QTextEdit.ExtraSelection()
                cursor = QTextCursor(self.prompt_edit.document())
                cursor.setPosition(i)
                cursor.setPosition(i + 1, QTextCursor.MoveMode.KeepAnchor)
                sel.cursor = cursor
                sel.format = fmt
                marks.append(sel)
        self.prompt_edit.setExtraSelections(marks)

    @Slot()
    def _clear_prompt_marks(self) -> None:
        if self.prompt_edit.extraSelections():
            self.prompt_edit.setExtraSelections([])

    @Slot()
    def _update_buttons(self) -> None:
        running = self._worker is not None
        self.generate_button.setEnabled(not running and self.selected_path() is not None)
        self.stop_button.setEnabled(running and not self._stop.is_set())
        has_text = bool(self.output.document().characterCount() > 1)
        self.copy_button.setEnabled(has_text)
        self.save_button.setEnabled(has_text)

    def shutdown(self, msecs: int = 10_000) -> bool:
        """Stop sampling, start nothing new, and wait for the worker threads to end.

        Call before the view is destroyed (it also runs on application quit):
        a QThread destroyed while running aborts the process. True when all ended.
        """
        self._closing = True
        self._stop.set()
        self._flush_timer.stop()
        deadline = time.monotonic() + msecs / 1000
        ended = True
        for worker in (self._worker, self._info_worker):
            if worker is not None:
                left = max(0, int((deadline - time.monotonic()) * 1000))
                ended = worker.wait(left) and ended
        QApplication.processEvents()  # deliver their last items and `finished`, so the state is settled
        return ended

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.shutdown()
        super().closeEvent(event)
