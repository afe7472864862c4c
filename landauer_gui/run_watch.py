"""Watching a run that another process writes: the CLI, ``torchrun``, another machine.

:class:`RunWatch` follows one run folder and shows it in the Train view as if
it trained here: its curves in the view's :class:`MetricsPlot` (``add_step``,
``add_eval``, ``clear``), its progress in the run controls' bar, and the log
lines the CLI printed, rebuilt from its records by :func:`core.run_history.run_events`
and :func:`core.run_history.started_event` and written by the view's ``EventLog``
(``core.events.format_event``). New lines are read with
:class:`core.run_curves.MetricsTail`, which leaves a half-written last line for the
next poll and reports a restarted file (a resumed run), so the curves are
reloaded from its start.

Only the watched run is polled: once a second by a timer (which also serves
network and synced folders, where file notifications do not arrive), and
sooner when a :class:`QFileSystemWatcher` reports a change (coalesced, at most
every ``MIN_GAP_MS``). The widget itself is the bar above the plots naming the
run, with its state and a "Stop watching" button.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from core.events import CheckpointSaved, EvalMetrics, Finished, StepMetrics
from core.run_curves import MetricsTail
from core.run_history import (
    folder_kind,
    not_a_run_message,
    run_events,
    started_event,
)
from core.runs import (
    CONFIG_FILE,
    METRICS_FILE,
    config_part,
    display_name,
    is_being_written,
    read_config,
    step_from_name,
)
from landauer_gui.event_log import fmt_duration

INTERVAL_MS = 1000  # the steady poll (also the fallback where file notifications never come)
MIN_GAP_MS = 200  # file notifications trigger a poll at most this often
WRITER_CHECK_S = 2.0  # how often to ask whether anyone still writes the run


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


class RunWatch(QFrame):
    """Follows one run folder into a view that has ``plot``, ``log``, ``controls`` and
    ``is_running()`` (the Train view). Hidden while nothing is watched."""

    message = Signal(str)  # for the status bar
    error = Signal(str)  # for the banner

    def __init__(self, view: Any, parent: QWidget | None = None):
        super().__init__(parent or view)
        self._view = view
        self.setObjectName("runWatch")
        self.setStyleSheet("#runWatch { background: #eaf2fb; border: 1px solid #b5cde8; border-radius: 4px; }")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.stop_button = QPushButton("Stop watching", self)
        self.stop_button.setToolTip("Stop following this run (the run itself goes on)")
        self.stop_button.clicked.connect(self.stop)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 6, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.stop_button)

        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.poll)
        self._fs = QFileSystemWatcher(self)
        self._fs.fileChanged.connect(self._soon)
        self._fs.directoryChanged.connect(self._soon)
        self._pending = False
        self._last_poll = 0.0
        self._run: Path | None = None
        self._reset()
        self.hide()

    def _reset(self) -> None:
        self._tail: MetricsTail | None = None
        self._config_stamp: int | None = None
        self._total = 0
        self._step = 0
        self._elapsed = 0.0
        self._rate = 0.0
        self._checkpoints: set[str] = set()
        self._writing = False
        self._ended_logged = False
        self._writer_checked = 0.0

    # -- public -----------------------------------------------------------------------------

    def run_dir(self) -> Path | None:
        return self._run

    def is_watching(self) -> bool:
        return self._run is not None

    def set_interval(self, msecs: int) -> None:
        self._timer.setInterval(msecs)

    def watch(self, path: str | Path) -> bool:
        """Show the run in ``path`` live; False with a message if it is not a run or the
        view is training a run of its own."""
        path = Path(path).expanduser().absolute()
        if self._view.is_running():
            self.error.emit("A run is training here: stop it before watching another run")
            return False
        if folder_kind(path) != "run":
            self.error.emit(not_a_run_message(path))
            return False
        self.stop()
        self._run = path
        self._reset()
        self._tail = MetricsTail(path)
        view = self._view
        view.plot.clear()
        view.log.clear()
        view.log.appendPlainText(f"Watching {path}")
        self.poll()
        self._timer.start()
        self.show()
        self.message.emit(f"Watching {display_name(path)}")
        return True

    def stop(self) -> None:
        """Stop following (the plot keeps what it shows until the next run or watch)."""
        if self._run is None:
            return
        self._timer.stop()
        paths = self._fs.files() + self._fs.directories()
        if paths:
            self._fs.removePaths(paths)
        self._run = None
        self._reset()
        self.hide()
        self._view.controls.stats.setText("Not running")

    def forget(self, paths: list[Path]) -> None:
        """Stop quietly if the watched run is among ``paths`` (deleted on purpose)."""
        if self._run is not None and any(Path(p).absolute() == self._run for p in paths):
            self.stop()

    # -- polling ----------------------------------------------------------------------------

    def _soon(self, *_: Any) -> None:
        if self._pending or self._run is None:
            return
        self._pending = True
        wait = max(0, int(MIN_GAP_MS - (time.monotonic() - self._last_poll) * 1000))
        QTimer.singleShot(wait, self._poll_from_notification)

    def _poll_from_notification(self) -> None:
        self._pending = False
        self.poll()

    def _follow_files(self) -> None:
        """(Re)register the folder and its metrics file: a replaced file drops its watch."""
        wanted = [str(self._run)] + [str(p) for p in (self._run / METRICS_FILE,) if p.is_file()]
        missing = [p for p in wanted if p not in self._fs.files() + self._fs.directories()]
        if missing:
            self._fs.addPaths(missing)

    def poll(self) -> None:
        """Read what the run wrote since the last poll and show it."""
        run = self._run
        if run is None or self._tail is None:
            return
        self._last_poll = time.monotonic()
        if not run.is_dir():
            self.stop()
            self.error.emit(f"The run folder {run} was deleted or moved; stopped watching it")
            return
        self._follow_files()
        view = self._view
        stamp = _mtime_ns(run / CONFIG_FILE)
        if stamp != self._config_stamp:
            self._config_stamp = stamp
            self._read_config()
        update = self._tail.poll()
        if update.restarted:
            view.plot.clear()
            self._step = 0
            self._ended_logged = False
            view.log.appendPlainText("The run's metrics started over (resumed or restarted): reloading")
        events = run_events(update.records, self._total)
        for ev in events:
            if isinstance(ev, StepMetrics):
                view.plot.add_step(ev.step, ev.content, ev.energy)
                self._step = max(self._step, ev.step)
                self._elapsed, self._rate = ev.elapsed_s, ev.tokens_per_s
            elif isinstance(ev, EvalMetrics):
                view.plot.add_eval(ev.step, ev.content, ev.energy)
        events += self._new_checkpoints()
        bar = view.log.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        view.log.add_events(events)
        self._show_state()
        if at_end:  # a burst of lines (the whole run so far) keeps the newest in view
            bar.setValue(bar.maximum())

    def _read_config(self) -> None:
        info = read_config(self._run) or {}
        train = config_part(info, "train_config")
        steps, log_every = train.get("steps"), train.get("log_every")
        self._total = steps if isinstance(steps, int) else 0
        view = self._view
        view.log.log_every = log_every if isinstance(log_every, int) else 100
        started = started_event(self._run, info) if info else None
        if started is not None:
            view.log.add_events([started])
            view.plot.set_step_range(0, self._total)

    def _new_checkpoints(self) -> list[CheckpointSaved]:
        found = []
        try:
            for p in self._run.glob("*.pth"):
                step = step_from_name(p)
                if step is not None and p.name not in self._checkpoints:
                    self._checkpoints.add(p.name)
                    found.append(CheckpointSaved(step, str(p)))
        except OSError:
            pass
        return sorted(found, key=lambda ev: ev.step)

    def _show_state(self) -> None:
        now = time.monotonic()
        if now - self._writer_checked >= WRITER_CHECK_S or not self._writing:
            self._writer_checked = now
            self._writing = is_being_written(self._run)
        total, step = self._total, self._step
        done = bool(total) and step >= total
        progress = self._view.controls.progress
        progress.setRange(0, max(total, step, 1))
        progress.setValue(step)
        name = display_name(self._run)
        if self._writing:
            state = "being written"
            self._ended_logged = False
        elif done:
            state = "finished"
        else:
            state = "not being written now (stopped, or not started yet)"
        self.label.setText(f"Watching <b>{name}</b> · {state}<br><small>{self._run}</small>")
        rate = f"{self._rate:,.0f} tokens/s · " if self._writing and self._rate else ""
        self._view.controls.stats.setText(f"{rate}step {step}/{total or '?'} · {fmt_duration(self._elapsed)}")
        if not self._writing and step and not self._ended_logged:
            self._ended_logged = True
            ckpts = sorted(self._run.glob("*.pth"), key=lambda p: step_from_name(p) or -1)
            self._view.log.add_events([Finished(step=step, run_dir=str(self._run),
                                                last_checkpoint=str(ckpts[-1]) if ckpts else None,
                                                stopped=not done, elapsed_s=self._elapsed)])
