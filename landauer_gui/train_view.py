"""The Train view: corpus, preset, device and settings on the left; controls, curves, log, history on the right.

A layout plus the wiring of its widgets (:class:`CorpusPicker`,
:class:`PresetPicker`, :class:`DeviceCombo`, :class:`ParamForm`,
:class:`RunControls`, :class:`MetricsPlot`, :class:`EventLog`, the run
history). All training happens in :class:`core.trainer.Trainer`, iterated by
:class:`RunControls`; nothing here imports torch at module level, so the view
can be shown while the engine is still loading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.events import (
    CheckpointSaved,
    EvalMetrics,
    Failed,
    Finished,
    SampleText,
    Started,
    StepMetrics,
)
from core.hparams import TrainConfig
from core.presets import EXCLUDED_FIELDS
from core.resources import runs_dir
from core.resume import merge_resume
from core.run_curves import read_curves
from core.runs import CONFIG_FILE, read_samples
from landauer_gui import settings
from landauer_gui.corpus_picker import CorpusPicker
from landauer_gui.device_picker import DeviceCombo
from landauer_gui.engine import engine
from landauer_gui.event_log import EventLog
from landauer_gui.memory_hint import MemoryHint
from landauer_gui.param_form import ParamForm
from landauer_gui.plots import MetricsPlot
from landauer_gui.preset_picker import PresetPicker
from landauer_gui.run_controls import RunControls
from landauer_gui.run_watch import RunWatch
from landauer_gui.runs import RunsPanel
from landauer_gui.samples_panel import LIVE, SamplesPanel, link_to_plot
from landauer_gui.widgets import Banner, BannerErrors

if TYPE_CHECKING:
    from core.data import Corpus

FORM_SKIP = EXCLUDED_FIELDS  # the corpus has its own picker with a summary
class TrainView(BannerErrors, QWidget):
    """Configure, start and watch a training run."""

    checkpoint_saved = Signal(str)  # path of every checkpoint the run writes
    running_changed = Signal(bool)
    paused_changed = Signal(bool)
    device_changed = Signal(str)  # description of the chosen device, for the status bar
    status_message = Signal(str)
    error_shown = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._resume_path: str | None = None
        self._resume_step = 0
        self._run_dir: Path | None = None
        self._blocked_by = ""  # something else trains (a reproduction): Start waits for it
        self._build_ui()
        self._restore_choices()
        self._update_controls()
        engine().when_ready(self._on_engine_ready)
        engine().failed.connect(self.show_error)

    # -- layout -----------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.banner = Banner(self)

        # Left column: what to train.
        self.corpus_picker = CorpusPicker(self)
        self.corpus_picker.changed.connect(self._update_controls)
        self.form = ParamForm(TrainConfig(), self, skip=FORM_SKIP, columns=2)
        self.form.changed.connect(self._update_controls)
        self.presets = PresetPicker(self.form, self)
        self.presets.message.connect(self.status_message)
        self.presets.error.connect(self.show_error)
        self.device_combo = DeviceCombo(self, with_auto=True)
        self.device_combo.setToolTip("Where the model trains; Auto picks a GPU when there is one")
        self.device_combo.currentIndexChanged.connect(self._on_device)
        self.memory = MemoryHint(self._memory_inputs, self)  # under the form: what it needs
        self.memory.changed.connect(self._update_controls)
        for changed in (self.form.changed, self.corpus_picker.changed,
                        self.device_combo.currentIndexChanged):
            changed.connect(self.memory.schedule)
        setup_box = QGroupBox("Run", self)
        self._setup_lay = QFormLayout(setup_box)
        self._setup_lay.addRow("Preset", self.presets)
        self._setup_lay.addRow("", self.presets.info)
        self._setup_lay.addRow("Device", self.device_combo)
        self.presets.info_changed.connect(
            lambda text: self._setup_lay.setRowVisible(self.presets.info, bool(text)))
        self._setup_lay.setRowVisible(self.presets.info, False)

        left_inner = QWidget(self)
        left_lay = QVBoxLayout(left_inner)
        left_lay.setContentsMargins(0, 0, 4, 0)
        left_lay.addWidget(self.corpus_picker)
        left_lay.addWidget(setup_box)
        left_lay.addWidget(self.form)
        left_lay.addWidget(self.memory)
        left_lay.addStretch(1)
        left = QScrollArea(self)
        left.setWidget(left_inner)
        left.setWidgetResizable(True)
        left.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left.setFrameShape(QFrame.Shape.NoFrame)
        left.setMinimumWidth(440)

        # Right column: controls, progress, curves, log and history.
        self.controls = RunControls(self)
        self.controls.start_clicked.connect(self.start)
        self.controls.resume_clicked.connect(self.resume_from_checkpoint_dialog)
        self.controls.resume_cleared.connect(self.clear_resume)
        self.controls.events.connect(self._on_events)
        self.controls.crashed.connect(self._on_crash)
        self.controls.run_finished.connect(self._on_run_finished)
        self.controls.paused_changed.connect(self.paused_changed)
        self.plot = MetricsPlot(self)
        self.log = EventLog(self)
        self.bottom_tabs = QTabWidget(self)
        self.bottom_tabs.setDocumentMode(True)
        self.bottom_tabs.addTab(self.log, "Log")
        self.runs = RunsPanel(self)  # reads run folders through core.runs: no torch needed
        self.runs.show_requested.connect(self._show_past_runs)
        self.bottom_tabs.addTab(self.runs, "Run history")
        # A run another process writes, shown like a live run (landauer_gui/run_watch.py).
        self.watch = RunWatch(self)
        self.watch.error.connect(self.show_error)
        self.watch.message.connect(self.status_message)
        self.runs.watch_requested.connect(self.watch.watch)
        self.runs.deleted.connect(self.watch.forget)
        self.runs.error.connect(self.show_error)
        self.runs.message.connect(self.status_message)
        self.samples = SamplesPanel(self)
        self.bottom_tabs.addTab(self.samples, "Samples")
        link_to_plot(self.samples, self.plot)
        self.plot.clicked.connect(lambda _x: self.bottom_tabs.setCurrentWidget(self.samples))

        right_top = QWidget(self)
        rt = QVBoxLayout(right_top)
        rt.setContentsMargins(0, 0, 0, 0)
        rt.addWidget(self.controls)
        rt.addWidget(self.watch)
        rt.addWidget(self.plot, 1)
        self.right_splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.right_splitter.addWidget(right_top)
        self.right_splitter.addWidget(self.bottom_tabs)
        self.right_splitter.setStretchFactor(0, 3)
        self.right_splitter.setStretchFactor(1, 1)
        self.right_splitter.setChildrenCollapsible(False)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.right_splitter)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)

        outer = QVBoxLayout(self)
        outer.addWidget(self.banner)
        outer.addWidget(self.splitter, 1)

    def _on_engine_ready(self) -> None:
        self._on_device()
        self._update_controls()
        self.memory.schedule()

    def _memory_inputs(self) -> tuple[TrainConfig | None, Corpus | None, str]:
        config = None if self.form.errors() else self.form.values()
        return config, self.corpus_picker.corpus(), self.device_combo.name()

    def _restore_choices(self) -> None:
        """Last corpus, device and settings; the bundled corpus on a first launch."""
        saved = settings.get("train/config")
        if isinstance(saved, str):
            try:
                values = json.loads(saved)
                if isinstance(values, dict):
                    self.form.set_values(TrainConfig.from_dict({**TrainConfig().to_dict(), **values}))
            except (json.JSONDecodeError, TypeError):
                pass
        self.device_combo.set_wanted(settings.get("train/device", "auto", str))
        corpus = settings.get("train/corpus", "", str)
        if corpus and Path(corpus).is_file():
            self.corpus_picker.set_corpus(corpus)
        else:
            self.corpus_picker.use_bundled()
        self._on_device()

    def save_choices(self) -> None:
        """Remember the settings for the next launch (called by the main window on close)."""
        keep = {s.name for s in self.form.specs()}
        values = {k: v for k, v in self.form.values().to_dict().items() if k in keep}
        settings.put("train/config", json.dumps(values))
        settings.put("train/device", self.device_combo.name())
        settings.put("train/corpus", self.corpus_picker.wanted_path())
        settings.put("train/splitter", self.splitter.saveState())
        settings.put("train/right_splitter", self.right_splitter.saveState())
        settings.put("plot/smoothing", self.plot.smoothing())
        settings.put("plot/log_y", self.plot.log_y.isChecked())
        settings.put("plot/x_axis", self.plot.x_mode())

    def restore_layout(self) -> None:
        state = settings.get("train/splitter")
        if state is not None:
            self.splitter.restoreState(state)
        state = settings.get("train/right_splitter")
        if state is not None:
            self.right_splitter.restoreState(state)
        self.plot.set_smoothing(settings.get("plot/smoothing", self.plot.smoothing(), float))
        self.plot.log_y.setChecked(settings.get("plot/log_y", False, bool))
        try:
            self.plot.set_x_mode(settings.get("plot/x_axis", "step", str))
        except ValueError:
            pass

    # -- state queries ----------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.controls.is_running()

    def is_paused(self) -> bool:
        return self.controls.is_paused()

    def corpus(self) -> Corpus | None:
        return self.corpus_picker.corpus()

    def run_dir(self) -> Path | None:
        return self._run_dir

    def device_description(self) -> str:
        return self.device_combo.description()

    def start_blockers(self) -> list[str]:
        """Why Start is disabled right now (empty when it is enabled)."""
        if self.is_running():
            return ["a run is in progress"]
        if self._blocked_by:
            return [self._blocked_by]
        if not engine().is_ready():
            return [engine().error() or "loading the engine…"]
        reasons = list(self.form.errors())
        picker = self.corpus_picker
        if picker.problem():
            reasons.append(picker.problem())
        elif not reasons:
            from core.data import CorpusError

            cfg = self.form.values()
            try:
                picker.corpus().check_seq_len(cfg.seq_len, cfg.eval_every > 0)
            except CorpusError as exc:
                reasons.append(str(exc))
        if not reasons and self.memory.blocker():
            reasons.append(self.memory.blocker())
        if self._resume_path and not reasons:
            steps = self.form.values().steps
            if steps <= self._resume_step:
                reasons.append(f"the checkpoint is already at step {self._resume_step}; "
                               f"raise Steps above {self._resume_step} to continue training")
        return reasons

    def block_start(self, reason: str) -> None:
        """Keep Start disabled with ``reason`` while something else trains; "" allows it again."""
        self._blocked_by = reason
        self._update_controls()

    def _on_device(self, *_: Any) -> None:
        self.device_changed.emit(self.device_description())

    # -- resume -----------------------------------------------------------------------------

    def resume_from_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Resume from checkpoint", str(runs_dir()),
                                              "Checkpoints (*.pth);;All files (*)")
        if path:
            self.prepare_resume(path)

    def prepare_resume(self, path: str | Path) -> bool:
        """Show the checkpoint's settings and corpus; Start then continues that run."""
        if not engine().is_ready():
            self.show_error("The engine is still loading; try again in a moment")
            return False
        from core.checkpoint import CheckpointError, read_info

        try:
            info = read_info(path)
        except (CheckpointError, OSError) as exc:
            self.show_error(str(exc))
            return False
        if info.train_config is None:
            self.show_error(f"{Path(path).name} holds weights but no training state, so training "
                            "cannot resume from it (it can still generate text)")
            return False
        cfg = merge_resume(info.train_config, self.form.values()).config
        self.form.set_values(cfg)
        corpus = (info.corpus or {}).get("path") or cfg.data_path
        if corpus and Path(corpus).is_file():
            self.corpus_picker.set_corpus(corpus)
        self._resume_path = str(path)
        self._resume_step = info.step or 0
        self.banner.hide()
        self._update_controls()
        return True

    def clear_resume(self) -> None:
        self._resume_path = None
        self._resume_step = 0
        self._update_controls()

    # -- running ----------------------------------------------------------------------------

    def _update_controls(self) -> None:
        running = self.is_running()
        resume = ""
        if self._resume_path:
            p = Path(self._resume_path)
            resume = f"Resuming {p.parent.name}/{p.name} at step {self._resume_step}"
        self.controls.update_state(self.start_blockers(), resume)
        self.form.setEnabled(not running)
        self.corpus_picker.edit.setEnabled(not running)
        self.device_combo.setEnabled(not running)
        self.presets.combo.setEnabled(not running)

    def start(self) -> bool:
        """Start a run with the form's settings in a fresh folder (or continue a checkpoint)."""
        self.memory.flush()  # a change typed in the last moments is checked too
        blockers = self.start_blockers()
        if blockers:
            self.status_message.emit("Cannot start: " + blockers[0])
            return False
        from core.trainer import Trainer
        from landauer_gui.runs import new_run_dir

        cfg = self.form.values()
        if self._resume_path:
            folder = Path(self._resume_path).parent
            run_dir = folder if (folder / CONFIG_FILE).is_file() else new_run_dir(folder.name)
        else:
            run_dir = new_run_dir(self.presets.current_name() or "run")
        corpus = self.corpus()
        cfg = cfg.replace(data_path=corpus.path or self.corpus_picker.wanted_path(),
                          device=self.device_combo.name(), save_dir=str(run_dir),
                          resume=self._resume_path or "")
        self._run_dir = run_dir
        self.watch.stop()
        self.log.log_every = cfg.log_every
        start_step = self._resume_step if self._resume_path else 0
        self.plot.clear()
        tokens = cfg.batch_size * cfg.seq_len  # characters a step reads
        self.plot.set_tokens_per_step(tokens)
        so_far: list[SampleText] = []
        if self._resume_path:
            # Show the curve and samples so far; the trainer drops records past the checkpoint's step.
            self.plot.preload(read_curves(run_dir), start_step)
            so_far = [s for s in read_samples(run_dir) if s.step <= start_step]
        self.samples.set_samples(so_far, source=LIVE)
        self.banner.hide()
        self.log.appendPlainText(f"Run folder: {run_dir}")
        self.controls.run(Trainer(cfg, corpus=corpus), start_step, cfg.steps, tokens)
        self._update_controls()
        self.running_changed.emit(True)
        self.status_message.emit(f"Training in {run_dir.name}")
        return True

    def toggle_pause(self) -> None:
        self.controls.toggle_pause()

    def stop(self) -> None:
        """Ask the run to end after the current step; the trainer saves a checkpoint."""
        self.controls.stop()

    def stop_and_wait(self, msecs: int = 60_000) -> bool:
        """Stop and block until the worker has ended (window closing); True if it ended."""
        return self.controls.stop_and_wait(msecs)

    def shutdown(self, msecs: int = 60_000) -> bool:
        """Stop training and wait for every worker thread (the window is closing)."""
        ended = self.stop_and_wait(msecs)
        if ended:  # the window really closes: read no corpus any more
            self.corpus_picker.close(msecs)
        return ended

    # -- events -----------------------------------------------------------------------------

    def _on_events(self, batch: list[Any]) -> None:
        for ev in batch:
            if isinstance(ev, StepMetrics):
                self.plot.add_step(ev.step, ev.content, ev.energy, ev.elapsed_s)
            elif isinstance(ev, EvalMetrics):
                self.plot.add_eval(ev.step, ev.content, ev.energy)
            elif isinstance(ev, SampleText):
                self.samples.add_sample(ev)
            elif isinstance(ev, Started):
                self.plot.set_step_range(0, ev.total_steps)
                self.device_changed.emit(ev.device_description)
            elif isinstance(ev, CheckpointSaved):
                self.checkpoint_saved.emit(ev.path)
                self.status_message.emit(f"Saved {Path(ev.path).name}")
            elif isinstance(ev, Finished):
                self.status_message.emit(f"{'Stopped' if ev.stopped else 'Finished'} at step {ev.step}")
            elif isinstance(ev, Failed):
                self.show_error(f"Training failed at step {ev.step}: {ev.message}")
        self.log.add_events(batch)

    def _show_past_runs(self, runs: list) -> None:
        """Past runs' curves next to the live run; the Samples tab shows the first one's samples."""
        self.plot.set_overlays(runs)
        chosen = self.runs.selected()[: len(runs)]
        if runs and chosen:
            self.samples.set_samples(read_samples(chosen[0].path), source=1, label=chosen[0].name)
        else:
            self.samples.show_live()

    def _on_crash(self, detail: str) -> None:
        """An unexpected exception in the trainer: show it; the window stays usable."""
        self.log.appendPlainText(f"Training crashed: {detail}")
        self.show_error(f"Training stopped by an unexpected error: {detail}")

    def _on_run_finished(self) -> None:
        if self._resume_path:
            self.clear_resume()
        self._update_controls()
        self.runs.refresh()
        self.running_changed.emit(False)

