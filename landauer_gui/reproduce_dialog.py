"""Train ▸ Reproduce published results…: the published table, measured again with several seeds.

A window over :class:`core.reproduce.Reproduction`: the rows, schedule, corpus
and output file on the left (:mod:`landauer_gui.reproduce_choices`,
:class:`CorpusPicker`), Start/Stop, the progress of the run
(:class:`ReproduceRunner`) and the table and plot filling as seeds finish
(:mod:`landauer_gui.reproduce_results`) on the right. This file is their
layout and wiring: what blocks Start, and closing while a run goes on. The
engine writes the Markdown table and its JSON state (next to it) after every
seed, so stopping keeps finished seeds and running again skips them. Each seed
is an ordinary run: ``seed_finished`` and ``checkpoint_saved`` let the window
show it in the run history and the Generate view.

Torch-free at module level (``core.reproduce`` is imported once the engine is
ready), like every module the window imports.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.reproduce_report import RowSummary, corpus_facts, corpus_warning
from landauer_gui.corpus_picker import CorpusPicker
from landauer_gui.engine import engine
from landauer_gui.memory_hint import WARN_COLOR
from landauer_gui.param_form import ERROR_COLOR
from landauer_gui.reproduce_choices import OutputPicker, RowChooser, ScheduleForm, state_path
from landauer_gui.reproduce_results import ResultsPlot, ResultsTable
from landauer_gui.reproduce_runner import ReproduceRunner
from landauer_gui.widgets import Banner

if TYPE_CHECKING:
    from core.reproduce import ReproduceConfig
    from landauer_gui.train_view import TrainView


def command_line(config: ReproduceConfig, out: Path) -> str:
    """The ``landauer-reproduce`` command that runs the same reproduction (for the Markdown)."""
    words = ["landauer-reproduce", "--rows", ",".join(map(str, config.rows)),
             "--seeds", str(config.seeds), "--steps", str(config.steps), "--device", config.device,
             "--eval-protocol", config.eval_protocol]
    if config.eval_protocol == "fixed":
        words += ["--eval-batches", str(config.eval_batches)]
    words += ["--data-path", Path(config.data_path).name, "--out", out.name]
    return shlex.join(words)


class ReproduceDialog(QDialog):
    """Choose rows and schedule, Start/Stop, and watch the table fill; not modal.

    While it runs the Train view cannot start (``running_changed``), and it does
    not start while the Train view trains: the two would share the processor and
    skew the wall times.
    """

    seed_finished = Signal(object)  # a SeedResult trained now: a new run in the history
    checkpoint_saved = Signal(str)
    running_changed = Signal(bool)

    def __init__(self, train_view: TrainView, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Reproduce published results")
        self._train_view = train_view
        self._close_when_stopped = False
        self._build_ui()
        self._connect()
        self._restore_choices(train_view)
        self._update_controls()
        train_view.running_changed.connect(self._update_controls)
        engine().when_ready(self._update_controls)

    # -- layout -----------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.banner = Banner(self)
        self.row_chooser = RowChooser(self)
        self.schedule = ScheduleForm(self)
        self.corpus_picker = CorpusPicker(self)
        self.corpus_warning = QLabel(self)
        self.corpus_warning.setWordWrap(True)
        self.corpus_warning.setStyleSheet(f"color: {WARN_COLOR};")
        self.corpus_warning.hide()
        self.corpus_picker.layout().addWidget(self.corpus_warning)
        self.output_picker = OutputPicker(self)

        left = QWidget(self)
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 4, 0)
        self._settings_widgets = (self.row_chooser, self.schedule, self.corpus_picker, self.output_picker)
        for w in self._settings_widgets:
            left_lay.addWidget(w)
        left_lay.addStretch(1)
        left.setMinimumWidth(380)

        self.start_button = QPushButton("Start", self)
        self.start_button.setDefault(True)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("Stop after the current step; finished seeds are kept and "
                                    "the stopped one continues from its checkpoint next time")
        self.copy_button = QPushButton("Copy Markdown", self)
        self.copy_button.setToolTip("Copy the table as Markdown, ready for the benchmark notes")
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        self.start_reason = QLabel(self)
        self.start_reason.setWordWrap(True)
        self.start_reason.setStyleSheet(f"color: {ERROR_COLOR};")
        self.runner = ReproduceRunner(self)

        self.table = ResultsTable(self)
        self.plot = ResultsPlot(self)
        results = QSplitter(Qt.Orientation.Vertical, self)
        results.addWidget(self.table)
        results.addWidget(self.plot)
        results.setChildrenCollapsible(False)
        results.setSizes([180, 340])
        self.plot.setMinimumHeight(220)

        right = QWidget(self)
        right_lay = QVBoxLayout(right)
        right_lay.setContentsMargins(4, 0, 0, 0)
        right_lay.addLayout(buttons)
        right_lay.addWidget(self.start_reason)
        right_lay.addWidget(self.runner)
        right_lay.addWidget(results, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        outer = QVBoxLayout(self)
        outer.addWidget(self.banner)
        outer.addWidget(splitter, 1)
        self.resize(1240, 820)

    def _connect(self) -> None:
        for w in (self.row_chooser, self.schedule, self.output_picker):
            w.changed.connect(self._update_controls)
        self.corpus_picker.changed.connect(self._on_corpus_changed)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.copy_button.clicked.connect(self.copy_markdown)
        self.runner.summaries_changed.connect(self._show_summaries)
        self.runner.corpus_warning.connect(self._show_corpus_warning)
        self.runner.error.connect(self.show_error)
        self.runner.seed_finished.connect(self.seed_finished)
        self.runner.checkpoint_saved.connect(self.checkpoint_saved)
        self.runner.ended.connect(self._on_runner_ended)

    def _restore_choices(self, train_view: TrainView) -> None:
        """The last rows and schedule; the Train view's corpus and device."""
        self.row_chooser.restore()
        self.schedule.restore(train_view.device_combo.name())
        self.output_picker.restore()
        corpus = train_view.corpus_picker.wanted_path()
        if corpus:
            self.corpus_picker.set_corpus(corpus)
        else:
            self.corpus_picker.use_bundled()

    # -- choices ----------------------------------------------------------------------------

    def rows(self) -> list[int]:
        return self.row_chooser.rows()

    def set_rows(self, rows: list[int]) -> None:
        """Check ``rows`` (and the rows sharing their settings), uncheck the others."""
        self.row_chooser.set_rows(rows)

    def _on_corpus_changed(self) -> None:
        corpus = self.corpus_picker.corpus()
        warning = None
        if corpus is not None:
            path = corpus.path or self.corpus_picker.wanted_path()
            warning = corpus_warning(corpus_facts(path, corpus.characters, corpus.sha256))
        self._show_corpus_warning(warning)
        self._update_controls()

    def _show_corpus_warning(self, warning: str | None) -> None:
        self.corpus_warning.setText(f"⚠ Not the published corpus: {warning}." if warning else "")
        self.corpus_warning.setVisible(bool(warning))

    # -- state ------------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.runner.is_running()

    def summaries(self) -> list[RowSummary]:
        return self.runner.summaries()

    def markdown(self) -> str:
        """The table as Markdown: the output file as last written, else the last run's text."""
        out = self.output_picker.path()
        if out is not None and out.is_file():
            try:
                return out.read_text(encoding="utf-8")
            except OSError:
                pass
        return self.runner.markdown()

    def start_blockers(self) -> list[str]:
        """Why Start is disabled right now (empty when it is enabled)."""
        if self.is_running():
            return ["a reproduction is running"]
        if self._train_view.is_running():
            return ["the Train view is training; stop that run first (both would share the "
                    "processor, and the wall times would mean nothing)"]
        if not engine().is_ready():
            return [engine().error() or "loading the engine…"]
        reasons = []
        if not self.rows():
            reasons.append("choose at least one row")
        if self.corpus_picker.problem():
            reasons.append(self.corpus_picker.problem())
        out = self.output_picker.path()
        if out is None:
            reasons.append("choose an output file for the table")
        elif out.is_dir():
            reasons.append(f"{out} is a folder; choose a file name for the table")
        if not reasons:
            reasons += self._config_from_form().errors()
        return reasons

    def _config_from_form(self) -> ReproduceConfig:
        from core.reproduce import ReproduceConfig

        s = self.schedule
        return ReproduceConfig(
            rows=tuple(self.rows()), seeds=s.seeds.value(), steps=s.steps.value(),
            device=s.device_combo.name(), eval_protocol=s.protocol.currentData(),
            eval_batches=s.eval_batches.value(),
            data_path=self.corpus_picker.corpus().path or self.corpus_picker.wanted_path())

    def _update_controls(self, *_: Any) -> None:
        running = self.is_running()
        blockers = self.start_blockers()
        self.start_button.setEnabled(not blockers)
        reason = "" if running or not blockers else "Cannot start: " + blockers[0]
        self.start_reason.setText(reason)
        self.start_reason.setVisible(bool(reason))
        self.stop_button.setEnabled(running and not self.runner.is_stopping())
        self.copy_button.setEnabled(bool(self.markdown()))
        for w in self._settings_widgets:
            w.setEnabled(not running)
        self.schedule.update_enabled()

    # -- running ----------------------------------------------------------------------------

    def start(self) -> bool:
        """Start the reproduction with the chosen settings; False (with the reason) if it cannot."""
        blockers = self.start_blockers()
        if blockers:
            self._update_controls()
            return False
        from core.reproduce import Reproduction

        out = self.output_picker.path()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.show_error(f"Cannot create {out.parent}: {exc.strerror or exc}")
            return False
        config = self._config_from_form()
        reproduction = Reproduction(config, state_path=state_path(out), markdown_path=out,
                                    command=command_line(config, out))
        for w in (self.row_chooser, self.schedule, self.output_picker):
            w.save()
        self.banner.hide()
        started = self.runner.run(reproduction)
        self._update_controls()
        if started:
            self.running_changed.emit(True)
        return started

    def stop(self) -> None:
        """Stop after the current step; the stopped seed saves a checkpoint to continue from."""
        if self.runner.stop():
            self._update_controls()

    def shutdown(self, msecs: int) -> bool:
        """Stop and wait for the worker (the window is closing); True if it ended."""
        self.stop()
        ended = self.runner.close_slot(msecs)
        if ended:
            self.corpus_picker.close(msecs)
        return ended

    def copy_markdown(self) -> None:
        text = self.markdown()
        if text:
            QGuiApplication.clipboard().setText(text)
            self.runner.status.setText("Copied the Markdown table to the clipboard.")

    def show_error(self, message: str) -> None:
        self.banner.show_message(message)

    def _show_summaries(self, summaries: list[RowSummary]) -> None:
        self.table.show_summaries(summaries)
        self.plot.show_summaries(summaries)

    # -- closing ----------------------------------------------------------------------------

    def confirm_stop(self) -> bool:
        """Ask before stopping a running reproduction (the window is being closed)."""
        answer = QMessageBox.question(
            self, "Stop the reproduction?",
            "A reproduction is running. Stop it and close? Finished seeds are kept, and the "
            "current one continues from its checkpoint when you start again.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def reject(self) -> None:  # Escape, the close button, close(): all come here
        if self.is_running():
            if self._close_when_stopped or self.confirm_stop():
                self._close_when_stopped = True
                self.stop()
            return  # closes once the seed has stopped and saved
        super().reject()

    def _on_runner_ended(self) -> None:
        self.output_picker.refresh()  # the state file may exist now; updates the controls
        self.running_changed.emit(False)
        if self._close_when_stopped:
            self._close_when_stopped = False
            super().reject()
