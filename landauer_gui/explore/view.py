"""The Explore view: look inside a checkpoint while it reads a text.

Pick a checkpoint and a text (typed, a file, a slice of a corpus's validation
split, or a sample sent from the Generate view); the text is analysed on a
worker thread (:mod:`landauer_gui.explore.jobs`) and drawn coloured by
surprise, rank bucket, state motion, one unit's activation or the difference
to a second checkpoint. Hovering or selecting a character shows what the
model expected there (and lets you branch from it), where it is on the
surprise and motion tracks, every layer's phase at that character, and
selecting a span ranks the hidden units that single it out.

This file is the layout and the wiring of the named widgets that do each part
(:class:`SourcePanel`, :class:`ColourControls`, :class:`BranchPanel`,
:class:`UnitRanker`, :class:`ComparePanel`, :class:`ExportActions`), plus the
analysis itself and the position every plot follows. The view renders and
forwards only; every computation is in :mod:`core`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QGroupBox,
    QLabel,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.hparams import SamplingConfig
from landauer_gui.checkpoint_table import COL_DATE, COL_SIZE, COL_VOCAB, CheckpointTable
from landauer_gui.engine import engine
from landauer_gui.explore import jobs
from landauer_gui.explore.analysis_runner import AnalysisRunner
from landauer_gui.explore.branch_panel import BranchPanel
from landauer_gui.explore.colour_controls import ColourControls
from landauer_gui.explore.colours import diverging_scale
from landauer_gui.explore.compare_panel import ComparePanel
from landauer_gui.explore.export_actions import ExportActions
from landauer_gui.explore.heatmap import HiddenHeatmap
from landauer_gui.explore.phase import PhaseCircles
from landauer_gui.explore.source_panel import SourcePanel
from landauer_gui.explore.text_pane import CharPane
from landauer_gui.explore.tracks import TrackPlots
from landauer_gui.explore.unit_ranking import UnitRanker
from landauer_gui.param_form import ParamForm
from landauer_gui.widgets import Banner, BannerErrors
from landauer_gui.workers import close_all

HOVER_MS = 40  # coalesce mouse moves: at most ~25 position updates a second
VISIBLE_MS = 30  # the plots follow scrolling in their own event-loop turn, after the text has painted
CLOSE_WAIT_MS = 10_000
DEVICE = "cpu"  # small models analyse fastest here, and training keeps the accelerator


class ExploreView(BannerErrors, QWidget):
    """Analyse a text with a checkpoint and look at what the model did, character by character."""

    analysis_finished = Signal()
    compare_finished = Signal()
    ranking_finished = Signal()
    branch_finished = Signal(str)  # the branch's whole text
    export_finished = Signal(str)  # the path written
    error_shown = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._prepared: jobs.Prepared | None = None
        self._activation_scale = None  # the phase circles' colours, set with the plots
        self._position = -1
        self._pending_hover = -1
        self._visible = (0, 0)
        self.last_analysis_s = float("nan")

        self.analyser = AnalysisRunner(DEVICE, self)
        self.analyser.slot.finished.connect(self._on_analysis_finished)
        self.analyser.prepared.connect(self._show_prepared)
        self._visible_timer = QTimer(self, singleShot=True, interval=VISIBLE_MS)
        self._visible_timer.timeout.connect(self._apply_visible)
        self._deferred: jobs.Prepared | None = None  # plots still to fill from the last analysis
        self._finish_after_fill = False
        self._hover_timer = QTimer(self, singleShot=True, interval=HOVER_MS)
        self._hover_timer.timeout.connect(self._apply_hover)

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
        self.checkpoints = CheckpointTable(self)
        self.checkpoints.setTitle("Model")
        self.checkpoints.tree.setMinimumHeight(90)
        for col in (COL_SIZE, COL_VOCAB, COL_DATE):  # a narrow column: run, file, step, val loss
            self.checkpoints.tree.setColumnHidden(col, True)
        self.checkpoints.folder_label.hide()
        self.source = SourcePanel()
        self.form = ParamForm(SamplingConfig)  # reshapes the chart and drives branches
        self.form.set_values(SamplingConfig(max_new_tokens=120))
        sampling_box = QGroupBox("Sampling (chart and branches)")
        QVBoxLayout(sampling_box).addWidget(self.form)
        self.comparison = ComparePanel(DEVICE)

        self.colours = ColourControls()
        self.summary_label = QLabel("")
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pane = CharPane()
        self.branching = BranchPanel()
        self.tracks = TrackPlots()
        self.heatmap = HiddenHeatmap()
        self.phase = PhaseCircles()
        self.ranker = UnitRanker(self.heatmap, self.pane.selection, self)
        self.exports = ExportActions(self.heatmap)

        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 4, 0)
        sl.addWidget(self.checkpoints, 2)
        sl.addWidget(self.source, 3)
        for box in (sampling_box, self.comparison, self.exports):
            sl.addWidget(box)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(320)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.pane)
        top.addWidget(self.branching)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        top.setSizes([560, 380])
        self.lower_tabs = QTabWidget()
        self.lower_tabs.setDocumentMode(True)
        self.lower_tabs.addTab(self.tracks, "Surprise and motion")
        self.lower_tabs.addTab(self.heatmap, "Hidden state")
        self.lower_tabs.addTab(self.phase, "Phase")
        main = QWidget()
        ml = QVBoxLayout(main)
        ml.setContentsMargins(4, 0, 0, 0)
        ml.addWidget(self.colours)
        ml.addWidget(self.summary_label)
        ml.addWidget(_splitter(Qt.Orientation.Vertical, (top, 3, 430), (self.lower_tabs, 2, 290)), 1)

        outer = QVBoxLayout(self)
        outer.addWidget(self.banner)
        outer.addWidget(_splitter(Qt.Orientation.Horizontal, (scroll, 0, 340), (main, 1, 940)), 1)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)  # not while another view is shown
            shortcut.activated.connect(self.analyse)

    def _connect(self) -> None:
        self.checkpoints.selection_changed.connect(self._update_buttons)
        self.checkpoints.error.connect(self.show_error)
        self.checkpoints.activated.connect(self.analyse)
        self.source.analyse_button.clicked.connect(self.analyse)
        self.source.text_read.connect(self.analyse)
        self.form.changed.connect(self._on_sampling_changed)
        self.colours.colouring_changed.connect(self.pane.set_colouring)
        self.pane.hovered.connect(self._on_hover)
        self.pane.cursor_moved.connect(self.show_position)
        self.pane.selection_changed.connect(self._on_selection)
        self.pane.visible_range_changed.connect(self._on_visible)
        self.tracks.position_clicked.connect(self.select_position)
        self.heatmap.position_clicked.connect(self.select_position)
        self.heatmap.layer_changed.connect(self.ranker.schedule)
        self.heatmap.unit_selected.connect(self.colours.colour_by_unit)
        self.ranker.finished.connect(self.ranking_finished)
        self.branching.chart.char_clicked.connect(self.branch)
        self.branching.explore_requested.connect(lambda text: self.explore_text(text, origin="Branch"))
        self.branching.finished.connect(self.branch_finished)
        self.comparison.compare_button.clicked.connect(self.compare)
        self.comparison.compared.connect(self.colours.show_compared)
        self.comparison.finished.connect(self._on_compare_finished)
        self.exports.finished.connect(self.export_finished)
        for panel in (self.comparison, self.exports):
            panel.status.connect(self.source.set_status)
        for panel in (self.source, self.branching, self.ranker, self.comparison, self.exports):
            panel.error.connect(self.show_error)

    # --- analysis ---------------------------------------------------------------------------

    def explore_text(self, text: str, origin: str = "", checkpoint: str | Path | None = None) -> None:
        """Analyse ``text`` (a sample, a branch, a file's contents); optionally with ``checkpoint``."""
        if checkpoint is not None:
            self.checkpoints.add(checkpoint, select=True)
        self.source.set_text(text, origin)
        self.analyse()

    @Slot()
    def analyse(self) -> bool:
        """Analyse the current text with the selected checkpoint; False (with a message) if it cannot start."""
        if self.analyser.is_busy() or not engine().is_ready():
            return False
        path = self.checkpoints.selected_path()
        if path is None:
            self.show_error("Select a checkpoint first (or add one with Open…).")
            return False
        text = self.source.current_text()
        if not text:
            self.show_error("There is no text to analyse yet: type one, open a file or take a corpus slice.")
            return False
        self.clear_error()
        self.source.set_status(f"Analysing {len(text):,} characters…")
        started = self.analyser.start(path, text)
        self._update_buttons()
        return started

    def _show_prepared(self, prep: jobs.Prepared) -> None:
        self._prepared = prep
        self.last_analysis_s = prep.seconds
        text = prep.analysis.text
        self.pane.set_text(text, newlines=prep.newlines)
        # The plots are filled in the next event-loop turn: one long stall becomes two short ones.
        self._deferred = prep
        QTimer.singleShot(0, self._fill_plots)
        self.branching.set_analysis(prep)
        self.ranker.set_hidden(prep.hidden)
        self.exports.set_prepared(prep)
        self._position = -1
        self.colours.show_analysis(prep)
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
        model = self.analyser.model()
        if prep.hidden is not None:
            self._activation_scale = diverging_scale(prep.hidden, "activation")
            if model is not None:
                self.phase.set_model_layers(model.config)
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
        problem = self.analyser.slot.take_problem()
        if problem is not None:
            self.source.set_status("Not analysed.")
            self.show_error(problem)
        elif self._prepared is not None:
            self.source.set_status(f"Analysed {len(self._prepared.analysis.text):,} characters with "
                                   f"{Path(self._prepared.checkpoint).name}.")
        self._update_buttons()
        self.analysis_finished.emit()

    def prepared(self) -> jobs.Prepared | None:
        """The last analysis and what is drawn from it (None before the first)."""
        return self._prepared

    def colour_mode(self) -> str:
        return self.colours.mode()

    def set_colour_mode(self, mode: str) -> None:
        self.colours.set_mode(mode)

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
        sampling = self.form.values() if not self.form.errors() else SamplingConfig()
        self.branching.show_position(prep, i, sampling)
        self._draw_phase(i)

    def _draw_phase(self, i: int) -> None:
        prep = self._prepared
        model = self.analyser.model()
        if prep is not None and prep.hidden is not None and model is not None:
            self.phase.show_character(model, prep.hidden, prep.analysis.text, i, self._activation_scale)

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

    def _on_selection(self, start: int, end: int) -> None:
        self.heatmap.show_span(start, end)
        self.ranker.schedule()

    # --- compare and branch -----------------------------------------------------------------

    def set_compare_checkpoint(self, path: str | Path) -> None:
        self.checkpoints.add(path, select=False)
        self.comparison.set_paths(self.checkpoints.paths())
        self.comparison.choose(path)

    @Slot()
    def compare(self) -> bool:
        """Analyse the same text with the second checkpoint and colour by the difference."""
        started = self.comparison.start(self._prepared)
        self._update_buttons()
        return started

    def _on_compare_finished(self) -> None:
        self._update_buttons()
        self.compare_finished.emit()

    def compared(self) -> jobs.Compared | None:
        return self.colours.compared()

    @Slot(int)
    def branch(self, char_id: int) -> bool:
        """Continue the text from the shown position with character ``char_id`` instead."""
        prep = self._prepared
        i = self._position
        if prep is None or i < 1 or self.analyser.model() is None or self.branching.is_busy():
            return False
        problems = self.form.errors()
        if problems:
            self.show_error("Check the sampling options: " + "; ".join(problems) + ".")
            return False
        model, itos = self.analyser.model(), self.analyser.itos()
        self.pane.set_marks([i])
        return self.branching.start(model, itos, prep.analysis.text[:i] + itos[int(char_id)],
                                    self.form.values(), i)

    # --- messages, state, shutdown ----------------------------------------------------------------




    @Slot()
    def _update_buttons(self) -> None:
        ready = engine().is_ready()
        busy = self.analyser.is_busy()
        has = self._prepared is not None
        self.source.analyse_button.setEnabled(ready and not busy and self.checkpoints.selected_path() is not None)
        self.comparison.compare_button.setEnabled(has and not self.comparison.is_busy())
        self.branching.update_buttons()
        if has:
            self.comparison.set_paths(self.checkpoints.paths())

    def shutdown(self, msecs: int = CLOSE_WAIT_MS) -> bool:
        """Stop the branch, start nothing new and wait for the workers (call before destruction)."""
        self.branching.shutdown()
        slots = [self.analyser.slot, self.source.read_slot, self.comparison.slot, self.branching.slot,
                 self.ranker.slot, self.exports.slot, self.checkpoints.reader]
        ended = close_all(slots, msecs)
        QApplication.processEvents()
        return ended

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.shutdown()
        super().closeEvent(event)


def _splitter(orientation: Qt.Orientation, *parts: tuple[QWidget, int, int]) -> QSplitter:
    """A splitter over ``(widget, stretch, size)`` parts whose children cannot collapse."""
    split = QSplitter(orientation)
    for k, (widget, stretch, _size) in enumerate(parts):
        split.addWidget(widget)
        split.setStretchFactor(k, stretch)
    split.setSizes([size for _w, _s, size in parts])
    split.setChildrenCollapsible(False)
    return split
