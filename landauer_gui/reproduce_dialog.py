"""Train ▸ Reproduce published results…: the published table, measured again with several seeds.

A window over :class:`core.reproduce.Reproduction`: it collects the rows, seeds,
schedule, corpus and output file, iterates the engine on a :class:`WorkerSlot`
thread and shows its events: progress overall and per seed, the table filling
as seeds finish, and a plot of published against ours. The engine writes the
Markdown table and its JSON state (next to it) after every seed, so stopping
keeps finished seeds and running again skips them. Each seed is an ordinary
run: ``seed_finished`` and ``checkpoint_saved`` let the window show it in the
run history and the Generate view.

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
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.hparams import TrainConfig
from core.published import PUBLISHED_ROWS, rows_of_setting, setting_key
from core.reproduce_report import (
    RowSummary,
    corpus_facts,
    corpus_warning,
    format_duration,
    override_flags,
    summarize,
)
from core.resources import user_data_dir
from landauer_gui import settings
from landauer_gui.corpus_picker import CorpusPicker
from landauer_gui.device_picker import DeviceCombo
from landauer_gui.engine import engine
from landauer_gui.event_log import batched, fmt_duration, is_step
from landauer_gui.memory_hint import WARN_COLOR
from landauer_gui.param_form import ERROR_COLOR
from landauer_gui.reproduce_results import ResultsPlot, ResultsTable
from landauer_gui.widgets import Banner, stretched_row
from landauer_gui.workers import WorkerSlot

if TYPE_CHECKING:
    from core.reproduce import ReproduceConfig, Reproduction
    from core.reproduce_report import SeedResult
    from landauer_gui.train_view import TrainView

PROTOCOLS = (("Fixed: the mean of N validation batches", "fixed"),
             ("Published: one new random batch per evaluation", "published"))
SEED_UNITS = 1000  # overall progress: a seed run is this many units
LOG_LINES = 500


def default_output() -> Path:
    return user_data_dir() / "reproductions" / "published-table.md"


def state_path(markdown: Path) -> Path:
    """The JSON state beside the Markdown file (the command line's default, ``OUT.json``)."""
    return markdown.with_name(markdown.name + ".json")


def command_line(config: ReproduceConfig, out: Path) -> str:
    """The ``landauer-reproduce`` command that runs the same reproduction (for the Markdown)."""
    words = ["landauer-reproduce", "--rows", ",".join(map(str, config.rows)),
             "--seeds", str(config.seeds), "--steps", str(config.steps), "--device", config.device,
             "--eval-protocol", config.eval_protocol]
    if config.eval_protocol == "fixed":
        words += ["--eval-batches", str(config.eval_batches)]
    words += ["--data-path", Path(config.data_path).name, "--out", out.name]
    return shlex.join(words)


def rows_label(rows: tuple[int, ...] | list[int]) -> str:
    return f"row {rows[0]}" if len(rows) == 1 else f"rows {rows[0]}-{rows[-1]}"


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
        self._reproduction: Reproduction | None = None
        self._config: ReproduceConfig | None = None
        self._results: dict[tuple[str, int], SeedResult] = {}
        self._summaries: list[RowSummary] = []
        self._markdown = ""
        self._stopping = False
        self._close_when_stopped = False
        self._plan_total = 0
        self._done = 0
        self._seed: tuple[str, int, int] | None = None  # setting, seed, plan index
        self.slot = WorkerSlot(self)
        self.slot.finished.connect(self._on_worker_finished)
        self._build_ui()
        self._restore_choices(train_view)
        self._update_controls()
        train_view.running_changed.connect(self._update_controls)
        engine().when_ready(self._update_controls)

    # -- layout -----------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.banner = Banner(self)

        rows_box = QGroupBox("Published rows", self)
        grid = QGridLayout(rows_box)
        grid.setHorizontalSpacing(12)
        self.row_boxes: dict[int, QCheckBox] = {}
        for i, (n, row) in enumerate(sorted(PUBLISHED_ROWS.items())):
            box = QCheckBox(f"Row {n}", rows_box)
            box.setToolTip(row.note or "The published defaults")
            box.toggled.connect(lambda on, n=n: self._on_row_toggled(n, on))
            value = QLabel(row.val_text, rows_box)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value.setToolTip(f"Published validation loss after 2000 steps ({row.hardware})")
            flags = QLabel(override_flags(n) or "published defaults", rows_box)
            flags.setWordWrap(True)
            flags.setStyleSheet("color: #555;")
            grid.addWidget(box, i, 0)
            grid.addWidget(value, i, 1)
            grid.addWidget(flags, i, 2)
            self.row_boxes[n] = box
        grid.setColumnStretch(2, 1)
        shared = QLabel("Rows 1-3 are one setting run three times: it is trained once and "
                        "compared with all three values.", rows_box)
        shared.setWordWrap(True)
        shared.setStyleSheet("color: #555;")
        grid.addWidget(shared, len(PUBLISHED_ROWS), 0, 1, 3)

        schedule = QGroupBox("Schedule", self)
        form = QFormLayout(schedule)
        self.seeds = QSpinBox(schedule)
        self.seeds.setRange(1, 100)
        self.seeds.setToolTip("Seeds per row (0, 1, 2, …); the table shows their mean and sd")
        self.steps = QSpinBox(schedule)
        self.steps.setRange(1, 10_000_000)
        self.steps.setSingleStep(100)
        self.steps.setToolTip("Training steps per seed; the published table used 2000")
        self.device_combo = DeviceCombo(schedule, with_auto=True)
        self.protocol = QComboBox(schedule)
        for text, name in PROTOCOLS:
            self.protocol.addItem(text, name)
        self.protocol.setToolTip("Fixed batches measure each model precisely; the published "
                                 "protocol reproduces the published numbers' own noise")
        self.eval_batches = QSpinBox(schedule)
        self.eval_batches.setRange(1, 100_000)
        self.eval_batches.setToolTip("Fixed validation batches averaged at each evaluation")
        self.protocol.currentIndexChanged.connect(self._update_controls)
        form.addRow("Seeds per row", self.seeds)
        form.addRow("Steps per seed", self.steps)
        form.addRow("Device", self.device_combo)
        form.addRow("Validation", self.protocol)
        form.addRow("Validation batches", self.eval_batches)

        self.corpus_picker = CorpusPicker(self)
        self.corpus_picker.changed.connect(self._on_corpus_changed)
        self.corpus_warning = QLabel(self)
        self.corpus_warning.setWordWrap(True)
        self.corpus_warning.setStyleSheet(f"color: {WARN_COLOR};")
        self.corpus_warning.hide()
        self.corpus_picker.layout().addWidget(self.corpus_warning)

        out_box = QGroupBox("Output", self)
        out_lay = QVBoxLayout(out_box)
        self.output = QLineEdit(out_box)
        self.output.setPlaceholderText("Markdown file for the table")
        self.output.textChanged.connect(self._on_output_changed)
        browse = QToolButton(out_box)
        browse.setText("…")
        browse.setToolTip("Choose where to write the Markdown table")
        browse.clicked.connect(self.browse_output)
        self.output_hint = QLabel(out_box)
        self.output_hint.setWordWrap(True)
        self.output_hint.setStyleSheet("color: #555;")
        out_lay.addLayout(stretched_row(self.output, browse))
        out_lay.addWidget(self.output_hint)

        left = QWidget(self)
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 4, 0)
        for w in (rows_box, schedule, self.corpus_picker, out_box):
            left_lay.addWidget(w)
        left_lay.addStretch(1)
        left.setMinimumWidth(380)
        self._settings_widgets = (rows_box, schedule, self.corpus_picker, out_box)

        self.start_button = QPushButton("Start", self)
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("Stop after the current step; finished seeds are kept and "
                                    "the stopped one continues from its checkpoint next time")
        self.stop_button.clicked.connect(self.stop)
        self.copy_button = QPushButton("Copy Markdown", self)
        self.copy_button.setToolTip("Copy the table as Markdown, ready for the benchmark notes")
        self.copy_button.clicked.connect(self.copy_markdown)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        self.start_reason = QLabel(self)
        self.start_reason.setWordWrap(True)
        self.start_reason.setStyleSheet(f"color: {ERROR_COLOR};")

        self.overall = QProgressBar(self)
        self.overall.setRange(0, SEED_UNITS)
        self.overall.setValue(0)
        self.overall.setFormat("Not started")
        self.seed_progress = QProgressBar(self)
        self.seed_progress.setRange(0, 1)
        self.seed_progress.setValue(0)
        self.seed_progress.setFormat("step %v / %m")
        self.status = QLabel("Not running", self)
        self.status.setWordWrap(True)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.log.setPlaceholderText("One line per seed: started, finished (validation loss), "
                                    "skipped or failed.")
        self.log.setMaximumHeight(110)

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
        right_lay.addLayout(self._labelled("All seeds", self.overall))
        right_lay.addLayout(self._labelled("This seed", self.seed_progress))
        right_lay.addWidget(self.status)
        right_lay.addWidget(self.log)
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

    def _labelled(self, text: str, bar: QProgressBar) -> QHBoxLayout:
        label = QLabel(text, self)
        label.setMinimumWidth(70)
        row = QHBoxLayout()
        row.addWidget(label)
        row.addWidget(bar, 1)
        return row

    def _restore_choices(self, train_view: TrainView) -> None:
        """The last rows and schedule; the Train view's corpus and device."""
        rows = settings.get("reproduce/rows", "1,4", str)
        self.set_rows([int(r) for r in rows.split(",") if r.strip().isdigit()])
        self.seeds.setValue(settings.get("reproduce/seeds", 3, int))
        self.steps.setValue(settings.get("reproduce/steps", 2000, int))
        self.protocol.setCurrentIndex(max(0, self.protocol.findData(
            settings.get("reproduce/protocol", "fixed", str))))
        self.eval_batches.setValue(settings.get("reproduce/eval_batches", 20, int))
        self.output.setText(settings.get("reproduce/output", str(default_output()), str))
        self.device_combo.set_wanted(train_view.device_combo.name())
        corpus = train_view.corpus_picker.wanted_path()
        if corpus:
            self.corpus_picker.set_corpus(corpus)
        else:
            self.corpus_picker.use_bundled()

    def _save_choices(self) -> None:
        settings.put("reproduce/rows", ",".join(map(str, self.rows())))
        settings.put("reproduce/seeds", self.seeds.value())
        settings.put("reproduce/steps", self.steps.value())
        settings.put("reproduce/protocol", self.protocol.currentData())
        settings.put("reproduce/eval_batches", self.eval_batches.value())
        settings.put("reproduce/output", self.output.text().strip())

    # -- choices ----------------------------------------------------------------------------

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
        self._update_controls()

    def output_path(self) -> Path | None:
        text = self.output.text().strip()
        return Path(text).expanduser() if text else None

    def browse_output(self) -> None:
        start = str(self.output_path() or default_output())
        path, _ = QFileDialog.getSaveFileName(self, "Write the results table to", start,
                                              "Markdown (*.md);;All files (*)")
        if path:
            self.output.setText(path if Path(path).suffix else path + ".md")

    def _on_output_changed(self) -> None:
        out = self.output_path()
        if out is None:
            self.output_hint.setText("")
        else:
            done = " (it exists: its finished seeds will be skipped)" if state_path(out).is_file() else ""
            self.output_hint.setText(f"Finished seeds are recorded in {state_path(out).name} "
                                     f"beside it{done}; running again skips them.")
        self._update_controls()

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
        return self.slot.is_busy()

    def summaries(self) -> list[RowSummary]:
        return list(self._summaries)

    def markdown(self) -> str:
        """The table as Markdown: the output file as last written, else the last run's text."""
        out = self.output_path()
        if out is not None and out.is_file():
            try:
                return out.read_text(encoding="utf-8")
            except OSError:
                pass
        return self._markdown

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
        out = self.output_path()
        if out is None:
            reasons.append("choose an output file for the table")
        elif out.is_dir():
            reasons.append(f"{out} is a folder; choose a file name for the table")
        if not reasons:
            reasons += self._config_from_form().errors()
        return reasons

    def _config_from_form(self) -> ReproduceConfig:
        from core.reproduce import ReproduceConfig

        return ReproduceConfig(
            rows=tuple(self.rows()), seeds=self.seeds.value(), steps=self.steps.value(),
            device=self.device_combo.name(), eval_protocol=self.protocol.currentData(),
            eval_batches=self.eval_batches.value(),
            data_path=self.corpus_picker.corpus().path or self.corpus_picker.wanted_path())

    def _update_controls(self, *_: Any) -> None:
        running = self.is_running()
        blockers = self.start_blockers()
        self.start_button.setEnabled(not blockers)
        reason = "" if running or not blockers else "Cannot start: " + blockers[0]
        self.start_reason.setText(reason)
        self.start_reason.setVisible(bool(reason))
        self.stop_button.setEnabled(running and not self._stopping)
        self.copy_button.setEnabled(bool(self.markdown()))
        for w in self._settings_widgets:
            w.setEnabled(not running)
        self.eval_batches.setEnabled(self.protocol.currentData() == "fixed")

    # -- running ----------------------------------------------------------------------------

    def start(self) -> bool:
        """Start the reproduction with the chosen settings; False (with the reason) if it cannot."""
        blockers = self.start_blockers()
        if blockers:
            self._update_controls()
            return False
        from core.reproduce import Reproduction, SeedProgress

        out = self.output_path()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.show_error(f"Cannot create {out.parent}: {exc.strerror or exc}")
            return False
        config = self._config_from_form()
        reproduction = Reproduction(config, state_path=state_path(out), markdown_path=out,
                                    command=command_line(config, out))
        self._save_choices()
        self._reproduction, self._config = reproduction, config
        self._results.clear()
        self._markdown = ""
        self._stopping = False
        self._done = 0
        self._plan_total = 0
        self._seed = None
        self._show_results()
        self.banner.hide()
        self.log.clear()
        self.overall.setValue(0)
        self.overall.setFormat("Planning…")
        self.seed_progress.setRange(0, config.steps)
        self.seed_progress.setValue(0)
        self.status.setText("Reading the corpus and the earlier results…")

        def frequent(ev: Any) -> bool:
            return isinstance(ev, SeedProgress) and is_step(ev.event)

        started = self.slot.start(lambda: batched(reproduction.run(), frequent=frequent),
                                  self._on_batch, self._on_crash)
        self._update_controls()
        if started:
            self.running_changed.emit(True)
        return started

    def stop(self) -> None:
        """Stop after the current step; the stopped seed saves a checkpoint to continue from."""
        if self._reproduction is None or not self.is_running():
            return
        self._stopping = True
        self._reproduction.stop()
        self.status.setText("Stopping after this step: the seed saves a checkpoint; finished "
                            "seeds are kept…")
        self._update_controls()

    def shutdown(self, msecs: int) -> bool:
        """Stop and wait for the worker (the window is closing); True if it ended."""
        self.stop()
        ended = self.slot.close(msecs)
        if ended:
            self.corpus_picker.close(msecs)
        return ended

    def copy_markdown(self) -> None:
        text = self.markdown()
        if text:
            QGuiApplication.clipboard().setText(text)
            self.status.setText("Copied the Markdown table to the clipboard.")

    def show_error(self, message: str) -> None:
        self.banner.show_message(message)

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

    # -- events -----------------------------------------------------------------------------

    def _on_batch(self, batch: list[Any]) -> None:
        for ev in batch:
            self._on_event(ev)

    def _on_event(self, ev: Any) -> None:
        from core import reproduce as rp

        if isinstance(ev, rp.SeedProgress):
            self._on_progress(ev)
        elif isinstance(ev, rp.Planned):
            self._plan_total = ev.total
            self._done = 0
            settings_text = ", ".join(rows_label(rows) for _, rows in ev.settings)
            earlier = f", {ev.done} finished earlier (skipped)" if ev.done else ""
            self._log(f"Reproducing {settings_text}: {ev.total} seed runs{earlier} on "
                      f"{ev.device_description}, PyTorch {ev.torch_version}")
            self.status.setText(f"{ev.total} seed runs{earlier}.")
            self._show_corpus_warning(ev.warning)
            self._show_overall(0.0)
        elif isinstance(ev, rp.SeedStarted):
            self._seed = (ev.setting, ev.seed, ev.index)
            again = f", continuing from {Path(ev.resumed_from).name}" if ev.resumed_from else ""
            self._log(f"[{ev.index}/{ev.total}] {rows_label(ev.rows)}, seed {ev.seed}: "
                      f"{Path(ev.run_dir).name}{again}")
            self.seed_progress.setValue(0)
            self.status.setText(f"{rows_label(ev.rows)}, seed {ev.seed}: starting…")
        elif isinstance(ev, rp.SeedFinished):
            r = ev.result
            self._results[(r.setting, r.seed)] = r
            self._done += 1
            when = "finished earlier, skipped" if ev.skipped else format_duration(r.wall_s)
            self._log(f"  {rows_label(rows_of_setting(r.setting))}, seed {r.seed}: validation "
                      f"loss {r.val_loss:.4f} ({when})")
            self._show_results()
            self._show_overall(0.0)
            if not ev.skipped:
                self.seed_finished.emit(r)
        elif isinstance(ev, rp.SeedFailed):
            self._done += 1
            self._log(f"  {rows_label(rows_of_setting(ev.setting))}, seed {ev.seed} failed: "
                      f"{ev.message}")
            self.show_error(f"{rows_label(rows_of_setting(ev.setting))}, seed {ev.seed} failed: "
                            f"{ev.message}")
            self._show_overall(0.0)
        elif isinstance(ev, rp.ReproductionFinished):
            self._on_finished(ev)

    def _on_progress(self, ev: Any) -> None:
        from core.events import CheckpointSaved, EvalMetrics, Started, StepMetrics

        inner = ev.event
        if isinstance(inner, StepMetrics):
            self.seed_progress.setRange(0, inner.total_steps)
            self.seed_progress.setValue(inner.step)
            self._show_overall(inner.step / max(1, inner.total_steps))
            tokens = _tokens_per_step(ev.setting)
            eta = (inner.total_steps - inner.step) * tokens / inner.tokens_per_s \
                if inner.tokens_per_s > 0 else 0.0
            self.status.setText(
                f"{rows_label(rows_of_setting(ev.setting))}, seed {ev.seed}: step {inner.step} of "
                f"{inner.total_steps} · loss {inner.loss:.4f} · {inner.tokens_per_s:,.0f} tokens/s · "
                f"ETA {fmt_duration(eta)}")
        elif isinstance(inner, Started):
            self.seed_progress.setRange(0, inner.total_steps)
            self.seed_progress.setValue(inner.start_step)
        elif isinstance(inner, EvalMetrics):
            self._log(f"    step {inner.step}: validation loss {inner.loss:.4f}")
        elif isinstance(inner, CheckpointSaved):
            self.checkpoint_saved.emit(inner.path)

    def _on_finished(self, ev: Any) -> None:
        self._markdown = ev.markdown
        if ev.summaries:
            self._summaries = list(ev.summaries)
            self.table.show_summaries(self._summaries)
            self.plot.show_summaries(self._summaries)
        out = self.output_path()
        if ev.error:
            self.show_error(f"The reproduction could not go on: {ev.error}")
            self.status.setText("Ended with an error; finished seeds are kept.")
            self.overall.setFormat("Ended with an error")
        elif ev.stopped:
            self.status.setText(f"Stopped: {self._done} of {self._plan_total} seed runs are kept "
                                f"in {state_path(out).name}; Start continues where this stopped.")
            self.overall.setFormat(f"Stopped · {self._done} of {self._plan_total} seed runs")
        else:
            self.status.setText(f"Finished: the table is in {out}.")
            self.overall.setValue(self.overall.maximum())
            self.overall.setFormat(f"Finished · {self._plan_total} seed runs")
        self._log(self.status.text())

    def _on_crash(self, detail: str) -> None:
        self.show_error(f"The reproduction stopped by an unexpected error: {detail}")
        self.status.setText("Crashed; finished seeds are kept.")

    def _on_worker_finished(self) -> None:
        self._reproduction = None
        self._stopping = False
        self._on_output_changed()  # the state file may exist now; updates the controls
        self.running_changed.emit(False)
        if self._close_when_stopped:
            self._close_when_stopped = False
            super().reject()

    # -- display ----------------------------------------------------------------------------

    def _show_results(self) -> None:
        rows = self._config.table_rows() if self._config is not None else []
        self._summaries = summarize(rows, list(self._results.values()))
        self.table.show_summaries(self._summaries)
        self.plot.show_summaries(self._summaries)

    def _show_overall(self, seed_fraction: float) -> None:
        total = max(1, self._plan_total)
        self.overall.setRange(0, total * SEED_UNITS)
        self.overall.setValue(int((self._done + seed_fraction) * SEED_UNITS))
        self.overall.setFormat(f"{self._done} of {self._plan_total} seed runs done")

    def _log(self, line: str) -> None:
        self.log.appendPlainText(line)


def _tokens_per_step(setting: str) -> int:
    """Characters one step of a setting reads (its batch size × sequence length)."""
    cfg = TrainConfig().replace(**PUBLISHED_ROWS[int(setting.removeprefix("row"))].overrides)
    return cfg.batch_size * cfg.seq_len
