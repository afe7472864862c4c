"""The Explore view: look inside a checkpoint while it reads a text.

Pick a checkpoint and a text (typed, a file, a slice of a corpus's validation
split, or a sample sent from the Generate view); the text is analysed on a
worker thread (:mod:`landauer_gui.explore.jobs`) and drawn coloured by
surprise, rank bucket, state motion, one unit's activation or the difference
to a second checkpoint. Hovering or selecting a character shows what the
model expected there (and lets you branch from it), where it is on the
surprise and motion tracks, every layer's phase at that character, and
selecting a span ranks the hidden units that single it out.

The view renders and forwards only; every computation is in :mod:`core`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QFontDatabase,
    QKeySequence,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from core import resources
from core.hparams import SamplingConfig
from landauer_gui.checkpoint_table import COL_DATE, COL_SIZE, COL_VOCAB, CheckpointTable, file_stamp
from landauer_gui.engine import engine
from landauer_gui.explore import jobs
from landauer_gui.explore.colours import ColourScale, diverging_scale
from landauer_gui.explore.dist_chart import DistributionChart, shown_char
from landauer_gui.explore.heatmap import HiddenHeatmap
from landauer_gui.explore.legend import Legend
from landauer_gui.explore.phase import GOLDEN_DEG, PhaseCircles
from landauer_gui.explore.text_pane import CharPane
from landauer_gui.explore.tracks import TrackPlots
from landauer_gui.param_form import ParamForm
from landauer_gui.widgets import Banner
from landauer_gui.workers import WorkerSlot, close_all

SOURCES = ("Type or paste", "File", "Corpus validation slice", "Sample or branch")
SRC_TYPED, SRC_FILE, SRC_CORPUS, SRC_SENT = range(len(SOURCES))
COLOUR_MODES = (("surprise", "Surprise"), ("rank", "Rank (top 1 / 5 / 20)"), ("motion", "State motion"),
                ("unit", "Selected unit"), ("compare", "Δ surprise vs second checkpoint"))
TYPED_BOX_LIMIT = 20_000  # longer texts are kept aside, not pasted into the edit box
CONTEXT_CHARS = 24
HOVER_MS = 40  # coalesce mouse moves: at most ~25 position updates a second
VISIBLE_MS = 30  # the plots follow scrolling in their own event-loop turn, after the text has painted
RANK_DELAY_MS = 150
BRANCH_FLUSH_MS = 50
CLOSE_WAIT_MS = 10_000
DEVICE = "cpu"  # small models analyse fastest here, and training keeps the accelerator


def _context(text: str, i: int) -> str:
    tail = text[max(0, i - CONTEXT_CHARS):i]
    return "".join(shown_char(c) if c in "\n\t\r" else c for c in tail)


class ExploreView(QWidget):
    """Analyse a text with a checkpoint and look at what the model did, character by character."""

    analysis_finished = Signal()
    compare_finished = Signal()
    ranking_finished = Signal()
    branch_finished = Signal(str)  # the branch's whole text
    export_finished = Signal(str)  # the path written
    error_shown = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._model: tuple[tuple, tuple] | None = None  # (key, (model, itos, info))
        self._prepared: jobs.Prepared | None = None
        self._compared: jobs.Compared | None = None
        self._unit: tuple[int, int] | None = None
        self._source: tuple[str, str] | None = None  # (text, origin) for non-typed sources
        self._position = -1
        self._pending_hover = -1
        self._visible = (0, 0)
        self._branch_chars: list[str] = []
        self._branch_prefix = ""
        self._branch_stop = threading.Event()
        self._problem: str | None = None
        self._started = 0.0
        self.last_analysis_s = float("nan")

        self.analysis_slot = WorkerSlot(self)
        self.read_slot = WorkerSlot(self)
        self.compare_slot = WorkerSlot(self)
        self.branch_slot = WorkerSlot(self)
        self.rank_slot = WorkerSlot(self)
        self.export_slot = WorkerSlot(self)
        self.analysis_slot.finished.connect(self._on_analysis_finished)
        self.read_slot.finished.connect(self._on_read_finished)
        self.compare_slot.finished.connect(self._on_compare_finished)
        self.branch_slot.finished.connect(self._on_branch_finished)
        self.rank_slot.finished.connect(self._on_rank_finished)
        self.export_slot.finished.connect(self._on_export_finished)

        self._visible_timer = QTimer(self, singleShot=True, interval=VISIBLE_MS)
        self._visible_timer.timeout.connect(self._apply_visible)
        self._deferred: jobs.Prepared | None = None  # plots still to fill from the last analysis
        self._finish_after_fill = False
        self._hover_timer = QTimer(self, singleShot=True, interval=HOVER_MS)
        self._hover_timer.timeout.connect(self._apply_hover)
        self._rank_timer = QTimer(self, singleShot=True, interval=RANK_DELAY_MS)
        self._rank_timer.timeout.connect(self.rank_selection)
        self._branch_timer = QTimer(self, interval=BRANCH_FLUSH_MS)
        self._branch_timer.timeout.connect(self._flush_branch)

        self._build_ui()
        self._connect()
        self._update_buttons()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        engine().when_ready(self._update_buttons)
        self.checkpoints.refresh()

    # --- layout -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.banner = Banner(self)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

        self.checkpoints = CheckpointTable(self)
        self.checkpoints.setTitle("Model")
        self.checkpoints.tree.setMinimumHeight(90)
        for col in (COL_SIZE, COL_VOCAB, COL_DATE):  # a narrow column: run, file, step, val loss
            self.checkpoints.tree.setColumnHidden(col, True)
        self.checkpoints.folder_label.hide()

        # Text source
        self.source_box = QComboBox()
        self.source_box.addItems(list(SOURCES))
        self.typed_edit = QPlainTextEdit()
        self.typed_edit.setFont(mono)
        self.typed_edit.setPlaceholderText("Type or paste a text to analyse")
        self.typed_edit.setTabChangesFocus(True)
        self.file_label = QLabel("No file chosen.")
        self.file_label.setWordWrap(True)
        self.file_button = QPushButton("Open file…")
        self.file_button.setToolTip("Read a UTF-8 text file and analyse it")
        file_page = QWidget()
        fl = QVBoxLayout(file_page)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.addWidget(self.file_label)
        fl.addWidget(self.file_button)
        fl.addStretch(1)
        self.corpus_label = QLabel(str(resources.bundled_corpus()) if self._has_bundled() else "")
        self.corpus_label.setWordWrap(True)
        self.corpus_button = QPushButton("Corpus…")
        self.corpus_start = QSpinBox()
        self.corpus_start.setRange(0, 2**31 - 1)
        self.corpus_start.setSingleStep(1000)
        self.corpus_start.setToolTip("First character of the slice, counted from the start of the validation split")
        self.corpus_length = QSpinBox()
        self.corpus_length.setRange(2, 2**31 - 1)
        self.corpus_length.setValue(2000)
        self.corpus_length.setSingleStep(1000)
        self.corpus_take = QPushButton("Take slice")
        self.corpus_take.setToolTip("Read this slice of the validation split (text the model never trained on)")
        corpus_page = QWidget()
        cf = QFormLayout(corpus_page)
        cf.setContentsMargins(0, 0, 0, 0)
        cf.addRow(self.corpus_label)
        cf.addRow("Start", self.corpus_start)
        cf.addRow("Length", self.corpus_length)
        row = QHBoxLayout()
        row.addWidget(self.corpus_button)
        row.addWidget(self.corpus_take)
        cf.addRow(row)
        self.sent_label = QLabel("Use “Explore” in the Generate view, or “Explore this branch” here.")
        self.sent_label.setWordWrap(True)
        self.source_stack = QStackedWidget()
        for page in (self.typed_edit, file_page, corpus_page, self.sent_label):
            self.source_stack.addWidget(page)
        self.analyse_button = QPushButton("Analyse")
        self.analyse_button.setDefault(True)
        self.analyse_button.setToolTip("Read the text with the selected checkpoint (Ctrl+Enter)")
        self.status_label = QLabel("Select a checkpoint and a text.")
        self.status_label.setWordWrap(True)
        text_box = QGroupBox("Text")
        tl = QVBoxLayout(text_box)
        tl.addWidget(self.source_box)
        tl.addWidget(self.source_stack, 1)
        tl.addWidget(self.analyse_button)
        tl.addWidget(self.status_label)

        # Sampling: reshapes the chart and drives branches
        self.form = ParamForm(SamplingConfig)
        self.form.set_values(SamplingConfig(max_new_tokens=120))
        sampling_box = QGroupBox("Sampling (chart and branches)")
        QVBoxLayout(sampling_box).addWidget(self.form)

        # Compare and export
        self.compare_box = QComboBox()
        self.compare_box.setToolTip("A second checkpoint (e.g. an earlier step of the same run)")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Colour the text by how much more (red) or less (blue) the second "
                                       "checkpoint is surprised than the first")
        compare_group = QGroupBox("Compare with")
        cl = QVBoxLayout(compare_group)
        cl.addWidget(self.compare_box)
        cl.addWidget(self.compare_button)
        self.export_html_button = QPushButton("HTML…")
        self.export_csv_button = QPushButton("CSV…")
        self.export_png_button = QPushButton("Heatmap PNG…")
        export_group = QGroupBox("Export")
        el = QHBoxLayout(export_group)
        for b in (self.export_html_button, self.export_csv_button, self.export_png_button):
            el.addWidget(b)

        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 4, 0)
        sl.addWidget(self.checkpoints, 2)
        sl.addWidget(text_box, 3)
        sl.addWidget(sampling_box)
        sl.addWidget(compare_group)
        sl.addWidget(export_group)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(320)

        # Main area
        self.colour_box = QComboBox()
        for key, label in COLOUR_MODES:
            self.colour_box.addItem(label, key)
        self.legend = Legend()
        self.summary_label = QLabel("")
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Colour by"))
        bar.addWidget(self.colour_box)
        bar.addSpacing(12)
        bar.addWidget(self.legend, 1)

        self.pane = CharPane()
        self.chart = DistributionChart()
        self.branch_output = QTextEdit()
        self.branch_output.setReadOnly(True)
        self.branch_output.setFont(mono)
        self.branch_output.setPlaceholderText("Click a bar to branch: the text continues from here "
                                              "with that character instead.")
        self.branch_status = QLabel("")
        self.branch_explore = QPushButton("Explore this branch")
        self.branch_stop_button = QPushButton("Stop")
        branch_row = QHBoxLayout()
        branch_row.addWidget(self.branch_status, 1)
        branch_row.addWidget(self.branch_stop_button)
        branch_row.addWidget(self.branch_explore)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.chart)
        branch_w = QWidget()
        bl = QVBoxLayout(branch_w)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(self.branch_output, 1)
        bl.addLayout(branch_row)
        right.addWidget(branch_w)
        right.setSizes([260, 140])
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.pane)
        top.addWidget(right)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        top.setSizes([560, 380])

        self.tracks = TrackPlots()
        self.heatmap = HiddenHeatmap()
        self.phase = PhaseCircles()
        self.lower_tabs = QTabWidget()
        self.lower_tabs.setDocumentMode(True)
        self.lower_tabs.addTab(self.tracks, "Surprise and motion")
        self.lower_tabs.addTab(self.heatmap, "Hidden state")
        self.lower_tabs.addTab(self.phase, "Phase")

        main = QWidget()
        ml = QVBoxLayout(main)
        ml.setContentsMargins(4, 0, 0, 0)
        ml.addLayout(bar)
        ml.addWidget(self.summary_label)
        vsplit = QSplitter(Qt.Orientation.Vertical)
        vsplit.addWidget(top)
        vsplit.addWidget(self.lower_tabs)
        vsplit.setStretchFactor(0, 3)
        vsplit.setStretchFactor(1, 2)
        vsplit.setSizes([430, 290])
        vsplit.setChildrenCollapsible(False)
        ml.addWidget(vsplit, 1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(main)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([340, 940])
        split.setChildrenCollapsible(False)
        outer = QVBoxLayout(self)
        outer.addWidget(self.banner)
        outer.addWidget(split, 1)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)  # not while another view is shown
            shortcut.activated.connect(self.analyse)

    @staticmethod
    def _has_bundled() -> bool:
        try:
            return resources.bundled_corpus().is_file()
        except (FileNotFoundError, OSError):
            return False

    def _connect(self) -> None:
        self.checkpoints.selection_changed.connect(self._update_buttons)
        self.checkpoints.error.connect(self.show_error)
        self.checkpoints.activated.connect(self.analyse)
        self.source_box.currentIndexChanged.connect(self.source_stack.setCurrentIndex)
        self.file_button.clicked.connect(self.open_file_dialog)
        self.corpus_button.clicked.connect(self._choose_corpus)
        self.corpus_take.clicked.connect(self.take_corpus_slice)
        self.analyse_button.clicked.connect(self.analyse)
        self.form.changed.connect(self._on_sampling_changed)
        self.compare_button.clicked.connect(self.compare)
        self.export_html_button.clicked.connect(lambda: self.export_dialog("html"))
        self.export_csv_button.clicked.connect(lambda: self.export_dialog("csv"))
        self.export_png_button.clicked.connect(lambda: self.export_dialog("png"))
        self.colour_box.currentIndexChanged.connect(self._recolour)
        self.pane.hovered.connect(self._on_hover)
        self.pane.cursor_moved.connect(self.show_position)
        self.pane.selection_changed.connect(self._on_selection)
        self.pane.visible_range_changed.connect(self._on_visible)
        self.tracks.position_clicked.connect(self.select_position)
        self.heatmap.position_clicked.connect(self.select_position)
        self.heatmap.layer_changed.connect(lambda _l: self._schedule_rank())
        self.heatmap.unit_selected.connect(self.colour_by_unit)
        self.chart.char_clicked.connect(self.branch)
        self.branch_explore.clicked.connect(self.explore_branch)
        self.branch_stop_button.clicked.connect(self._branch_stop.set)

    # --- sources ----------------------------------------------------------------------------

    def set_typed_text(self, text: str) -> None:
        """Put ``text`` in the edit box (source: typed)."""
        self.source_box.setCurrentIndex(SRC_TYPED)
        self.typed_edit.setPlainText(text)

    def explore_text(self, text: str, origin: str = "", checkpoint: str | Path | None = None) -> None:
        """Analyse ``text`` (a sample, a branch, a file's contents); optionally with ``checkpoint``."""
        if checkpoint is not None:
            self.checkpoints.add(checkpoint, select=True)
        if len(text) <= TYPED_BOX_LIMIT and not origin:
            self.set_typed_text(text)
        else:
            self._source = (text, origin or "text")
            self.source_box.setCurrentIndex(SRC_SENT)
            self.sent_label.setText(f"{origin or 'Text'}: {len(text):,} characters.")
        self.analyse()

    def current_text(self) -> str | None:
        """The text the Analyse button would read, or None when the chosen source has none yet."""
        if self.source_box.currentIndex() == SRC_TYPED:
            return self.typed_edit.toPlainText()
        return None if self._source is None else self._source[0]

    @Slot()
    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Analyse a text file", "", "Text files (*.txt);;All files (*)")
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path) -> bool:
        """Read a text file in the background, then analyse it."""
        self.source_box.setCurrentIndex(SRC_FILE)
        self.file_label.setText(str(path))
        return self._read(lambda: jobs.read_file_items(str(path)))

    @Slot()
    def _choose_corpus(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Corpus", "", "Text files (*.txt);;All files (*)")
        if path:
            self.corpus_label.setText(path)

    def set_corpus_slice(self, path: str | Path, start: int, length: int) -> None:
        self.source_box.setCurrentIndex(SRC_CORPUS)
        self.corpus_label.setText(str(path))
        self.corpus_start.setValue(int(start))
        self.corpus_length.setValue(int(length))

    @Slot()
    def take_corpus_slice(self) -> bool:
        path = self.corpus_label.text().strip()
        if not path:
            self.show_error("Choose a corpus first (Corpus…).")
            return False
        start, length = self.corpus_start.value(), self.corpus_length.value()
        return self._read(lambda: jobs.corpus_slice_items(path, start, length))

    def _read(self, factory) -> bool:
        if not engine().is_ready() or self.read_slot.is_busy():
            return False
        self._problem = None
        self.status_label.setText("Reading…")
        return self.read_slot.start(factory, self._on_read_item, self._on_failed)

    def _on_read_item(self, item: object) -> None:
        if isinstance(item, jobs.Problem):
            self._problem = item.message
        elif isinstance(item, jobs.TextRead):
            self._source = (item.text, item.origin)
            self.sent_label.setText(f"{item.origin}: {len(item.text):,} characters.")

    def _on_read_finished(self) -> None:
        if self._problem is not None:
            self.status_label.setText("Nothing read.")
            self.show_error(self._problem)
            self._problem = None
            return
        if self._source is not None:
            self.status_label.setText(f"Read {len(self._source[0]):,} characters.")
            self.analyse()

    # --- analysis ---------------------------------------------------------------------------

    def _model_key(self, path: Path) -> tuple:
        return (str(path), file_stamp(path), DEVICE)

    def _cached_model(self, key: tuple) -> tuple | None:
        return self._model[1] if self._model and self._model[0] == key else None

    def is_busy(self) -> bool:
        return self.analysis_slot.is_busy() or self.read_slot.is_busy()

    @Slot()
    def analyse(self) -> bool:
        """Analyse the current text with the selected checkpoint; False (with a message) if it cannot start."""
        if self.analysis_slot.is_busy() or not engine().is_ready():
            return False
        path = self.checkpoints.selected_path()
        if path is None:
            self.show_error("Select a checkpoint first (or add one with Open…).")
            return False
        text = self.current_text()
        if not text:
            self.show_error("There is no text to analyse yet: type one, open a file or take a corpus slice.")
            return False
        key = self._model_key(path)
        cached = self._cached_model(key)
        self.clear_error()
        self._problem = None
        self._started = time.perf_counter()
        self.status_label.setText(f"Analysing {len(text):,} characters…")
        started = self.analysis_slot.start(
            lambda: jobs.analysis_items(str(path), DEVICE, key, cached, text),
            self._on_analysis_item, self._on_failed)
        self._update_buttons()
        return started

    def _on_analysis_item(self, item: object) -> None:
        if isinstance(item, jobs.Loaded):
            self._model = (item.key, (item.model, item.itos, item.info))
        elif isinstance(item, jobs.Problem):
            self._problem = item.message
        elif isinstance(item, jobs.Prepared):
            self._show_prepared(item)

    def _show_prepared(self, prep: jobs.Prepared) -> None:
        self._prepared = prep
        self._compared = None
        self._unit = None
        self.last_analysis_s = prep.seconds
        text = prep.analysis.text
        self.pane.set_text(text, newlines=prep.newlines)
        # The plots are filled in the next event-loop turn: one long stall becomes two short ones.
        self._deferred = prep
        QTimer.singleShot(0, self._fill_plots)
        self.chart.clear()
        self.chart.set_order(prep.char_order, prep.analysis.itos)
        self._position = -1
        self.colour_box.setCurrentIndex(0)
        self._recolour()
        s = prep.summary
        energy = "—" if s.energy is None else f"{s.energy:.3g}"
        self.summary_label.setText(
            f"<b>{s.bits_per_char:.3f}</b> bits/char · mean surprise {s.mean_surprise:.3f} nats · "
            f"top-1 {100 * s.top1_accuracy:.1f}% · mean motion {s.mean_motion:.3g} · energy {energy} · "
            f"{s.n_chars:,} chars read in {prep.seconds:.2f} s")
        self.pane.set_cursor(min(1, len(text) - 1))

    def _fill_plots(self) -> None:
        prep, self._deferred = self._deferred, None
        if prep is None:
            return
        self.tracks.set_tracks(prep.per_char["surprise"], prep.per_char["motion"], *self.pane.visible_range())
        self.heatmap.set_hidden(prep.hidden, len(prep.analysis.text))
        model = self._model[1][0] if self._model else None
        if prep.hidden is not None:
            self._activation_scale = diverging_scale(prep.hidden, "activation")
            if model is not None:
                cfg = model.config
                self.phase.set_layers([f"layer {layer} · {GOLDEN_DEG / cfg.phase_scaling ** layer:.1f}°/unit"
                                       for layer in range(cfg.num_layers)])
        self._on_visible(*self.pane.visible_range())
        self._apply_visible()
        if self.pane.cursor() >= 0:
            self.show_position(self.pane.cursor())
        if self._finish_after_fill:
            self._complete_analysis()

    def _on_analysis_finished(self) -> None:
        if self._deferred is not None:  # finish once the plots are filled, in their own turn
            self._finish_after_fill = True
            return
        self._complete_analysis()

    def _complete_analysis(self) -> None:
        self._finish_after_fill = False
        if self._problem is not None:
            self.status_label.setText("Not analysed.")
            self.show_error(self._problem)
            self._problem = None
        elif self._prepared is not None:
            self.status_label.setText(f"Analysed {len(self._prepared.analysis.text):,} characters with "
                                      f"{Path(self._prepared.checkpoint).name}.")
        self._update_buttons()
        self.analysis_finished.emit()

    def prepared(self) -> jobs.Prepared | None:
        """The last analysis and what is drawn from it (None before the first)."""
        return self._prepared

    def _on_failed(self, detail: str) -> None:
        self._problem = f"Something went wrong: {detail}"

    # --- colouring ----------------------------------------------------------------------------

    def colour_mode(self) -> str:
        return self.colour_box.currentData()

    def set_colour_mode(self, mode: str) -> None:
        self.colour_box.setCurrentIndex(self.colour_box.findData(mode))

    def _colouring(self) -> tuple[np.ndarray | None, ColourScale | None]:
        prep = self._prepared
        if prep is None:
            return None, None
        mode = self.colour_mode()
        if mode in prep.per_char:
            return prep.per_char[mode], prep.scales[mode]
        if mode == "compare" and self._compared is not None:
            return self._compared.delta_bits, self._compared.scale
        if mode == "unit" and self._unit is not None and prep.hidden is not None:
            layer, unit = self._unit
            values = np.full(len(prep.analysis.text), np.nan)
            acts = prep.hidden[layer, :, unit]
            values[: len(acts)] = acts
            return values, diverging_scale(acts, f"layer {layer} unit {unit} activation")
        return None, None

    @Slot()
    def _recolour(self, *_args) -> None:
        values, scale = self._colouring()
        self.pane.set_colouring(values, scale)
        self.legend.set_scale(scale)

    @Slot(int, int)
    def colour_by_unit(self, layer: int, unit: int) -> None:
        self._unit = (int(layer), int(unit))
        if self.colour_mode() == "unit":
            self._recolour()
        else:
            self.set_colour_mode("unit")

    # --- position: chart, tracks, heatmap, phase ------------------------------------------------

    def _on_hover(self, index: int) -> None:
        self._pending_hover = index
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def _apply_hover(self) -> None:
        self.tracks.set_hover(self._pending_hover)
        i = self._pending_hover if self._pending_hover >= 0 else self.pane.cursor()
        self._draw_position(i)

    @Slot(int)
    def select_position(self, index: int) -> None:
        """Move the text cursor to character ``index`` (from a plot click, a test, a key)."""
        self.pane.set_cursor(index)

    @Slot(int)
    def show_position(self, index: int) -> None:
        self.tracks.set_cursor(index)
        self.heatmap.set_cursor(index)
        self._draw_position(index)

    def position(self) -> int:
        """The character whose distribution and phase are shown."""
        return self._position

    def _draw_position(self, i: int) -> None:
        prep = self._prepared
        if prep is None or i < 0:
            return
        self._position = i
        text = prep.analysis.text
        itos = prep.analysis.itos
        if i >= 1:
            actual = int(prep.analysis.ids[i])
            probs = prep.analysis.probs[i - 1]
            rank = int(prep.analysis.rank[i - 1])
            caption = (f"After “{_escape(_context(text, i))}” the model gave "
                       f"<b>{_escape(shown_char(text[i]))}</b> p = {float(probs[actual]):.3f} "
                       f"(rank {rank}, {prep.per_char['surprise'][i]:.2f} bits). Click a bar to branch.")
            sampling = self.form.values() if not self.form.errors() else SamplingConfig()
            self.chart.show_distribution(probs, itos, actual, sampling.temperature, sampling.top_k, caption)
        else:
            self.chart.clear()
            self.chart.caption.setText("The first character is only read; nothing predicts it.")
        self._draw_phase(i)

    def _draw_phase(self, i: int) -> None:
        prep = self._prepared
        model = self._model[1][0] if self._model else None
        if prep is None or prep.hidden is None or model is None or i >= prep.hidden.shape[1]:
            return
        if self.phase.layer_count() != prep.hidden.shape[0]:
            return
        from core.analysis import phase_angles  # torch is loaded by now (the analysis used it)

        angles = phase_angles(model, prep.hidden, i)
        reference = phase_angles(model, prep.hidden, 0)  # position 0 reads from a zero state
        acts = prep.hidden[:, i, :]
        char = shown_char(prep.analysis.text[i])
        caption = (f"Phase of every unit while reading “{char}” (character {i:,}); colour: the unit's "
                   "state after it; grey: where a zero state would put it")
        self.phase.show_angles(angles, acts, self._activation_scale, caption, reference=reference)

    @Slot()
    def _on_sampling_changed(self) -> None:
        if self._position >= 0:
            self._draw_position(self._position)
        self._update_buttons()

    @Slot(int, int)
    def _on_visible(self, first: int, last: int) -> None:
        self._visible = (first, last)
        if not self._visible_timer.isActive():
            self._visible_timer.start()

    def _apply_visible(self) -> None:
        first, last = self._visible
        self.tracks.show_range(first, last)
        self.heatmap.show_range(first, last)

    # --- span ranking ----------------------------------------------------------------------------

    def _on_selection(self, start: int, end: int) -> None:
        self.heatmap.show_span(start, end)
        self._schedule_rank()

    def _schedule_rank(self) -> None:
        self._rank_timer.start()

    @Slot()
    def rank_selection(self) -> bool:
        """Rank the chosen layer's units by how differently they behave inside the selected span."""
        prep = self._prepared
        start, end = self.pane.selection()
        if prep is None or prep.hidden is None or end - start < 1:
            return False
        if self.rank_slot.is_busy():
            self._rank_timer.start()  # run again once the current ranking is in
            return False
        m = prep.hidden.shape[1]
        end = min(end, m)
        if start >= end or end - start >= m:
            self.heatmap.set_ranking(np.zeros(0, np.int64), np.zeros(0), "Select a shorter span inside the "
                                     f"first {m:,} characters to rank the units.")
            return False
        layer = self.heatmap.layer()
        states = prep.hidden[layer]

        def work():
            from core.analysis import rank_units

            yield rank_units(states, start, end), (layer, start, end)

        return self.rank_slot.start(work, self._on_rank_item, self._on_failed)

    def _on_rank_item(self, item: object) -> None:
        (units, scores), (layer, start, end) = item
        self.heatmap.set_ranking(units, scores, f"Layer {layer}, characters {start:,}–{end:,}: "
                                                "units by Cohen's d, inside vs outside")

    def _on_rank_finished(self) -> None:
        self._report_problem()
        self.ranking_finished.emit()

    # --- compare -----------------------------------------------------------------------------

    def _fill_compare_box(self) -> None:
        current = self.compare_box.currentData()
        self.compare_box.blockSignals(True)
        self.compare_box.clear()
        for p in self.checkpoints.paths():
            self.compare_box.addItem(f"{p.parent.name}/{p.name}", str(p))
        if current is not None:
            self.compare_box.setCurrentIndex(max(0, self.compare_box.findData(current)))
        self.compare_box.blockSignals(False)

    def set_compare_checkpoint(self, path: str | Path) -> None:
        self.checkpoints.add(path, select=False)
        self._fill_compare_box()
        self.compare_box.setCurrentIndex(self.compare_box.findData(str(Path(path).resolve())))

    @Slot()
    def compare(self) -> bool:
        """Analyse the same text with the second checkpoint and colour by the difference."""
        prep = self._prepared
        path = self.compare_box.currentData()
        if prep is None or not path or self.compare_slot.is_busy():
            return False
        first = prep.analysis
        self._problem = None
        self.status_label.setText(f"Comparing with {Path(path).name}…")
        started = self.compare_slot.start(lambda: jobs.compare_items(path, DEVICE, first),
                                          self._on_compare_item, self._on_failed)
        self._update_buttons()
        return started

    def _on_compare_item(self, item: object) -> None:
        if isinstance(item, jobs.Problem):
            self._problem = item.message
        elif isinstance(item, jobs.Compared):
            self._compared = item
            a, b = self._prepared.summary.bits_per_char, item.summary_b.bits_per_char
            self.status_label.setText(f"{Path(item.checkpoint).name}: {b:.3f} bits/char vs {a:.3f} "
                                      f"({b - a:+.3f}). Red: it is more surprised than this checkpoint "
                                      "there (what this one learned), blue: less.")
            if self.colour_mode() == "compare":
                self._recolour()
            else:
                self.set_colour_mode("compare")

    def _on_compare_finished(self) -> None:
        self._report_problem()
        self._update_buttons()
        self.compare_finished.emit()

    def compared(self) -> jobs.Compared | None:
        return self._compared

    # --- branch ------------------------------------------------------------------------------

    @Slot(int)
    def branch(self, char_id: int) -> bool:
        """Continue the text from the shown position with character ``char_id`` instead."""
        prep = self._prepared
        i = self._position
        if prep is None or i < 1 or self._model is None or self.branch_slot.is_busy():
            return False
        problems = self.form.errors()
        if problems:
            self.show_error("Check the sampling options: " + "; ".join(problems) + ".")
            return False
        model, itos, _info = self._model[1]
        prefix = prep.analysis.text[:i] + itos[int(char_id)]
        sampling = self.form.values()
        self._branch_prefix = prefix
        self._branch_chars = []
        self._branch_stop = threading.Event()
        stop = self._branch_stop
        self.branch_output.clear()
        self.branch_status.setText(f"Branching at character {i:,} with {shown_char(itos[int(char_id)])!r}…")
        self.pane.set_marks([i])
        self._problem = None
        started = self.branch_slot.start(lambda: jobs.branch_items(model, itos, prefix, sampling, stop),
                                         self._on_branch_item, self._on_failed)
        self._branch_timer.start()
        self._update_buttons()
        return started

    def _on_branch_item(self, item: object) -> None:
        if isinstance(item, str):
            self._branch_chars.append(item)
        elif isinstance(item, jobs.Problem):
            self._problem = item.message

    def _flush_branch(self) -> None:
        """Redraw the branch: the text before it (grey), the chosen character, the continuation."""
        prefix = self._branch_prefix
        head = prefix[max(0, len(prefix) - 1 - 160):-1]
        self.branch_output.clear()
        cursor = QTextCursor(self.branch_output.document())
        for part, colour, weight in ((head, "#888888", 400), (prefix[-1:], "#c81e78", 700),
                                     ("".join(self._branch_chars), "#141414", 400)):
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(colour))
            fmt.setFontWeight(weight)
            cursor.insertText(part, fmt)
        self.branch_output.moveCursor(QTextCursor.MoveOperation.End)

    def _on_branch_finished(self) -> None:
        self._branch_timer.stop()
        self._flush_branch()
        self.branch_status.setText(f"Branch: {len(self._branch_chars):,} characters after the new one.")
        self._report_problem()
        self._update_buttons()
        self.branch_finished.emit(self.branch_text())

    def branch_text(self) -> str:
        """The branch: the text up to the branch point, the chosen character, and the continuation."""
        return self._branch_prefix + "".join(self._branch_chars) if self._branch_prefix else ""

    @Slot()
    def explore_branch(self) -> None:
        text = self.branch_text()
        if text:
            self.explore_text(text, origin="Branch")

    # --- export ------------------------------------------------------------------------------

    def export_dialog(self, kind: str) -> None:
        filters = {"html": "HTML pages (*.html)", "csv": "CSV files (*.csv)", "png": "PNG images (*.png)"}
        name = {"html": "analysis.html", "csv": "analysis.csv", "png": "hidden-state.png"}[kind]
        path, _ = QFileDialog.getSaveFileName(self, "Export", str(Path.home() / name), filters[kind])
        if path:
            self.export(path)

    def export(self, path: str | Path) -> bool:
        """Write the analysis as .html or .csv (the CLI's report writer), or the heatmap as .png."""
        prep = self._prepared
        if prep is None:
            self.show_error("Analyse a text first; there is nothing to export yet.")
            return False
        path = str(path)
        if path.lower().endswith(".png"):
            try:
                self.heatmap.export_png(path)
            except OSError as exc:
                self.show_error(f"Cannot export to {path}: {exc}")
                return False
            self.status_label.setText(f"Exported {path}.")
            self.export_finished.emit(path)
            return True
        from core.report import report_format

        try:
            report_format(path)
        except ValueError as exc:
            self.show_error(str(exc))
            return False
        analysis, title = prep.analysis, f"{Path(prep.checkpoint).name}"
        self._problem = None
        self.status_label.setText(f"Exporting {Path(path).name}…")

        def work():
            from core.report import write_report

            try:
                yield write_report(analysis, path, title)
            except (OSError, ValueError) as exc:
                yield jobs.Problem(f"Cannot export to {path}: {getattr(exc, 'strerror', None) or exc}")

        return self.export_slot.start(work, self._on_export_item, self._on_failed)

    def _on_export_item(self, item: object) -> None:
        if isinstance(item, jobs.Problem):
            self._problem = item.message
        else:
            self.status_label.setText(f"Exported {item}.")
            self._exported = str(item)

    def _on_export_finished(self) -> None:
        if not self._report_problem():
            self.export_finished.emit(getattr(self, "_exported", ""))

    # --- messages, state, shutdown ----------------------------------------------------------------

    def _report_problem(self) -> bool:
        if self._problem is None:
            return False
        self.show_error(self._problem)
        self._problem = None
        return True

    def error_text(self) -> str:
        return self.banner.text()

    @Slot(str)
    def show_error(self, message: str) -> None:
        self.banner.show_message(message)
        self.error_shown.emit(message)

    def clear_error(self) -> None:
        self.banner.hide()

    @Slot()
    def _update_buttons(self) -> None:
        ready = engine().is_ready()
        busy = self.analysis_slot.is_busy()
        has = self._prepared is not None
        self.analyse_button.setEnabled(ready and not busy and self.checkpoints.selected_path() is not None)
        self.compare_button.setEnabled(has and not self.compare_slot.is_busy())
        for b in (self.export_html_button, self.export_csv_button, self.export_png_button):
            b.setEnabled(has)
        self.branch_explore.setEnabled(bool(self._branch_prefix) and not self.branch_slot.is_busy())
        self.branch_stop_button.setEnabled(self.branch_slot.is_busy())
        if has:
            self._fill_compare_box()

    def shutdown(self, msecs: int = CLOSE_WAIT_MS) -> bool:
        """Stop the branch, start nothing new and wait for the workers (call before destruction)."""
        self._branch_stop.set()
        self._branch_timer.stop()
        slots = [self.analysis_slot, self.read_slot, self.compare_slot, self.branch_slot,
                 self.rank_slot, self.export_slot, self.checkpoints.reader]
        ended = close_all(slots, msecs)
        QApplication.processEvents()
        return ended

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.shutdown()
        super().closeEvent(event)


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)
