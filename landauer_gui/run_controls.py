"""Run controls: Start / Pause / Stop / Resume-from-checkpoint, progress and speed, and the run itself.

The widget owns the training worker: :meth:`RunControls.run` iterates a
:class:`core.trainer.Trainer` on a :class:`WorkerSlot` thread and forwards its
events in batches (``events``); the buttons become the trainer's thread-safe
``pause()`` / ``resume()`` / ``stop()``. What the events mean for plots and
logs is left to the view that listens.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.events import Failed, Finished, Paused, Resumed, Started, StepMetrics
from landauer_gui.event_log import batched, fmt_duration
from landauer_gui.param_form import ERROR_COLOR
from landauer_gui.widgets import stretched_row
from landauer_gui.workers import WorkerSlot

START_TIP = "Train with these settings (Ctrl+Enter)"


class RunControls(QWidget):
    """Buttons, the reason Start is disabled, the checkpoint being resumed, progress and stats."""

    start_clicked = Signal()
    resume_clicked = Signal()  # "Resume from checkpoint…": the view asks which file
    resume_cleared = Signal()
    events = Signal(object)  # a list of core.events, in order
    crashed = Signal(str)  # an unexpected exception in the trainer
    run_finished = Signal()  # the worker thread has ended; a new run may start
    paused_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._trainer: Any = None
        self._pause_requested = False
        self._stop_requested = False
        self._tokens_per_step = 1
        self.slot = WorkerSlot(self)
        self.slot.finished.connect(self._on_worker_finished)

        self.start_button = QPushButton("Start", self)
        self.start_button.setToolTip(START_TIP)
        self.start_button.clicked.connect(self.start_clicked)
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setToolTip("Hold after the current step; press again to continue (Space, Ctrl+P)")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("End the run after the current step and save a checkpoint (Ctrl+.)")
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume from checkpoint…", self)
        self.resume_button.setToolTip("Continue a saved run: its settings, optimiser and random state")
        self.resume_button.clicked.connect(self.resume_clicked)
        self.start_reason = QLabel(self)
        self.start_reason.setWordWrap(True)
        self.start_reason.setStyleSheet(f"color: {ERROR_COLOR};")
        self.resume_label = QLabel(self)
        self.resume_label.setWordWrap(True)
        self.resume_clear = QToolButton(self)
        self.resume_clear.setText("✕")
        self.resume_clear.setAutoRaise(True)
        self.resume_clear.setToolTip("Start a new run instead of resuming")
        self.resume_clear.clicked.connect(self.resume_cleared)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.stop_button)
        buttons.addSpacing(12)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)

        self.progress = QProgressBar(self)
        self.progress.setFormat("step %v / %m")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.stats = QLabel("Not running", self)
        self.stats.setMinimumWidth(260)
        self.stats.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(buttons)
        lay.addWidget(self.start_reason)
        lay.addLayout(stretched_row(self.resume_label, self.resume_clear))
        lay.addLayout(stretched_row(self.progress, self.stats))

    # -- state ----------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.slot.is_busy()

    def is_paused(self) -> bool:
        return self._pause_requested

    def update_state(self, blockers: list[str], resume_text: str = "") -> None:
        """Enable what makes sense now; ``blockers`` are why Start is disabled (empty: enabled)."""
        running = self.is_running()
        self.start_button.setEnabled(not blockers)
        self.start_reason.setText("" if running or not blockers else "Cannot start: " + blockers[0])
        self.start_reason.setVisible(bool(self.start_reason.text()))
        self.start_button.setToolTip(START_TIP if not blockers else "Cannot start: " + "; ".join(blockers))
        self.pause_button.setEnabled(running and not self._stop_requested)
        self.pause_button.setText("Resume" if self._pause_requested else "Pause")
        self.stop_button.setEnabled(running and not self._stop_requested)
        self.resume_button.setEnabled(not running)
        self.resume_label.setText(resume_text)
        self.resume_label.setVisible(bool(resume_text))
        self.resume_clear.setVisible(bool(resume_text) and not running)

    # -- running --------------------------------------------------------------------------

    def run(self, trainer: Any, start_step: int, total_steps: int, tokens_per_step: int) -> bool:
        """Iterate ``trainer.run()`` in the background; False if a run is already going."""
        if self.is_running():
            return False
        self._trainer = trainer
        self._pause_requested = False
        self._stop_requested = False
        self._tokens_per_step = max(1, tokens_per_step)
        self.progress.setRange(0, total_steps)
        self.progress.setValue(start_step)
        self.stats.setText("Starting…")
        return self.slot.start(lambda: batched(trainer.run()), self._on_batch, self._on_crash)

    def toggle_pause(self) -> None:
        if not self.is_running() or self._trainer is None or self._stop_requested:
            return
        self._pause_requested = not self._pause_requested
        if self._pause_requested:
            self._trainer.pause()
        else:
            self._trainer.resume()
        self.pause_button.setText("Resume" if self._pause_requested else "Pause")
        self.paused_changed.emit(self._pause_requested)

    def stop(self) -> None:
        """Ask the run to end after the current step; the trainer saves a checkpoint."""
        if not self.is_running() or self._trainer is None:
            return
        self._stop_requested = True
        self._trainer.stop()
        self.stats.setText("Stopping: saving a checkpoint…")
        self.pause_button.setEnabled(False)
        self.stop_button.setEnabled(False)

    def stop_and_wait(self, msecs: int = 60_000) -> bool:
        """Stop and block until the worker has ended (window closing); True if it ended."""
        self.stop()
        return self.slot.wait(msecs)

    # -- events ---------------------------------------------------------------------------

    def _on_batch(self, batch: list[Any]) -> None:
        last_metrics = None
        for ev in batch:
            if isinstance(ev, StepMetrics):
                last_metrics = ev
                continue
            if last_metrics is not None:  # progress first, so "Paused at…" is not overwritten
                self._show_progress(last_metrics)
                last_metrics = None
            self._show_event(ev)
        if last_metrics is not None:
            self._show_progress(last_metrics)
        self.events.emit(batch)

    def _show_progress(self, ev: StepMetrics) -> None:
        self.progress.setValue(ev.step)
        steps_per_s = ev.tokens_per_s / self._tokens_per_step
        eta = (ev.total_steps - ev.step) / steps_per_s if steps_per_s > 0 else 0.0
        state = "paused · " if self._pause_requested else ""
        self.stats.setText(f"{state}{ev.tokens_per_s:,.0f} tokens/s · ETA {fmt_duration(eta)}")

    def _show_event(self, ev: Any) -> None:
        if isinstance(ev, Started):
            self.progress.setRange(0, ev.total_steps)
            self.progress.setValue(ev.start_step)
        elif isinstance(ev, Paused):
            self.stats.setText(f"Paused at step {ev.step}")
        elif isinstance(ev, Resumed):
            self.stats.setText(f"Resumed at step {ev.step}")
        elif isinstance(ev, Finished):
            self.progress.setValue(ev.step)
            verb = "Stopped" if ev.stopped else "Finished"
            self.stats.setText(f"{verb} at step {ev.step} · {fmt_duration(ev.elapsed_s)}")
        elif isinstance(ev, Failed):
            self.stats.setText(f"Failed at step {ev.step}")

    def _on_crash(self, detail: str) -> None:
        self.stats.setText("Crashed")
        self.crashed.emit(detail)

    def _on_worker_finished(self) -> None:
        self._trainer = None
        self._pause_requested = False
        self._stop_requested = False
        self.run_finished.emit()
