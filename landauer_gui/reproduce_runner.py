"""Runs a :class:`core.reproduce.Reproduction` on a worker and shows how far it is.

The bars (all seeds, this seed), the status line and the per-seed log, fed by
the engine's events; finished seeds become :class:`RowSummary` lists
(``summaries_changed``) for the results table and plot. Stopping saves the
running seed's checkpoint, and the engine keeps every finished seed, so Start
continues where a stop left off. Torch-free at module level: the event classes
are imported once the engine runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from core.hparams import TrainConfig
from core.published import PUBLISHED_ROWS, rows_of_setting
from core.reproduce_report import RowSummary, format_duration, summarize
from landauer_gui.event_log import batched, fmt_duration, is_step
from landauer_gui.workers import WorkerSlot

if TYPE_CHECKING:
    from core.reproduce import ReproduceConfig, Reproduction
    from core.reproduce_report import SeedResult

SEED_UNITS = 1000  # overall progress: a seed run is this many units
LOG_LINES = 500


def rows_label(rows: tuple[int, ...] | list[int]) -> str:
    return f"row {rows[0]}" if len(rows) == 1 else f"rows {rows[0]}-{rows[-1]}"


class ReproduceRunner(QWidget):
    """Progress bars, status and log of one reproduction at a time; ``ended`` once its worker is done."""

    seed_finished = Signal(object)  # a SeedResult trained now: a new run in the history
    checkpoint_saved = Signal(str)
    summaries_changed = Signal(list)  # list[RowSummary]
    corpus_warning = Signal(object)  # str | None: the engine's word on the corpus
    error = Signal(str)
    ended = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._reproduction: Reproduction | None = None
        self._config: ReproduceConfig | None = None
        self._out: Path | None = None  # the Markdown table
        self._state: Path | None = None  # the seeds done so far
        self._results: dict[tuple[str, int], SeedResult] = {}
        self._summaries: list[RowSummary] = []
        self._markdown = ""
        self._stopping = False
        self._plan_total = 0
        self._done = 0
        self.slot = WorkerSlot(self)
        self.slot.finished.connect(self._on_worker_finished)

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
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(self._labelled("All seeds", self.overall))
        lay.addLayout(self._labelled("This seed", self.seed_progress))
        lay.addWidget(self.status)
        lay.addWidget(self.log)

    def _labelled(self, text: str, bar: QProgressBar) -> QHBoxLayout:
        label = QLabel(text, self)
        label.setMinimumWidth(70)
        row = QHBoxLayout()
        row.addWidget(label)
        row.addWidget(bar, 1)
        return row

    # -- state ------------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.slot.is_busy()

    def is_stopping(self) -> bool:
        return self._stopping

    def summaries(self) -> list[RowSummary]:
        return list(self._summaries)

    def markdown(self) -> str:
        """The table the last run ended with ('' before)."""
        return self._markdown

    # -- running ----------------------------------------------------------------------------

    def run(self, reproduction: Reproduction) -> bool:
        """Iterate ``reproduction`` (writing its Markdown and state files) on the worker; False if
        one runs already."""
        from core.reproduce import SeedProgress

        self._reproduction, self._config = reproduction, reproduction.config
        self._out, self._state = reproduction.markdown_path, reproduction.state_path
        self._results.clear()
        self._markdown = ""
        self._stopping = False
        self._done = 0
        self._plan_total = 0
        self._show_results()
        self.log.clear()
        self.overall.setValue(0)
        self.overall.setFormat("Planning…")
        self.seed_progress.setRange(0, reproduction.config.steps)
        self.seed_progress.setValue(0)
        self.status.setText("Reading the corpus and the earlier results…")

        def frequent(ev: Any) -> bool:
            return isinstance(ev, SeedProgress) and is_step(ev.event)

        return self.slot.start(lambda: batched(reproduction.run(), frequent=frequent),
                               self._on_batch, self._on_crash)

    def stop(self) -> bool:
        """Stop after the current step; the stopped seed saves a checkpoint to continue from."""
        if self._reproduction is None or not self.is_running():
            return False
        self._stopping = True
        self._reproduction.stop()
        self.status.setText("Stopping after this step: the seed saves a checkpoint; finished "
                            "seeds are kept…")
        return True

    def close_slot(self, msecs: int) -> bool:
        """Start nothing new and wait for the worker; True if it ended."""
        return self.slot.close(msecs)

    def _on_worker_finished(self) -> None:
        self._reproduction = None
        self._stopping = False
        self.ended.emit()

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
            self.corpus_warning.emit(ev.warning)
            self._show_overall(0.0)
        elif isinstance(ev, rp.SeedStarted):
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
            message = f"{rows_label(rows_of_setting(ev.setting))}, seed {ev.seed} failed: {ev.message}"
            self._log("  " + message)
            self.error.emit(message)
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
            self.summaries_changed.emit(self.summaries())
        if ev.error:
            self.error.emit(f"The reproduction could not go on: {ev.error}")
            self.status.setText("Ended with an error; finished seeds are kept.")
            self.overall.setFormat("Ended with an error")
        elif ev.stopped:
            self.status.setText(f"Stopped: {self._done} of {self._plan_total} seed runs are kept "
                                f"in {self._state.name}; Start continues where this stopped.")
            self.overall.setFormat(f"Stopped · {self._done} of {self._plan_total} seed runs")
        else:
            self.status.setText(f"Finished: the table is in {self._out}.")
            self.overall.setValue(self.overall.maximum())
            self.overall.setFormat(f"Finished · {self._plan_total} seed runs")
        self._log(self.status.text())

    def _on_crash(self, detail: str) -> None:
        self.error.emit(f"The reproduction stopped by an unexpected error: {detail}")
        self.status.setText("Crashed; finished seeds are kept.")

    # -- display ----------------------------------------------------------------------------

    def _show_results(self) -> None:
        rows = self._config.table_rows() if self._config is not None else []
        self._summaries = summarize(rows, list(self._results.values()))
        self.summaries_changed.emit(self.summaries())

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
