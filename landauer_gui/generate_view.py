"""The Generate view: pick a checkpoint, set sampling options, stream text from it.

A layout plus the wiring of :class:`CheckpointTable`, the sampling
:class:`ParamForm` with a :class:`DeviceCombo`, :class:`PromptEdit` and
:class:`SampleOutput`. Everything that computes (reading checkpoints, loading
models, sampling) lives in :mod:`core` and runs on worker threads
(:mod:`landauer_gui.generation`), so the window stays responsive, also while a
training run saves new checkpoints. The model is always loaded from its file,
never borrowed from a trainer, so sampling cannot disturb a run in progress.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.hparams import SamplingConfig
from landauer_gui.checkpoint_table import CheckpointTable, file_stamp
from landauer_gui.device_picker import DeviceCombo
from landauer_gui.engine import engine
from landauer_gui.generation import Loaded, Problem, Ready, generation_items
from landauer_gui.param_form import ParamForm
from landauer_gui.sample_output import PromptEdit, SampleOutput
from landauer_gui.widgets import Banner, BannerErrors
from landauer_gui.workers import WorkerSlot, close_all


class GenerateView(BannerErrors, QWidget):
    """Sample text from any Landauer checkpoint, streamed as it is produced.

    The main window calls :meth:`refresh` and :meth:`add_checkpoint` when a
    training run saves; everything else is driven from the view's own controls.
    """

    generation_started = Signal(str)  # checkpoint path
    generation_finished = Signal(str)  # the generated text (without the prompt)
    error_shown = Signal(str)  # the message now shown in the banner
    explore_requested = Signal(str, str)  # prompt + sample, the checkpoint that wrote it

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._model_cache: tuple[tuple, tuple] | None = None  # (key, (model, itos, info))
        self._sampler = WorkerSlot(self)
        self._sampler.finished.connect(self._on_finished)
        self._stop = threading.Event()
        self._submitted_prompt = ""  # what this sample continues, even if the box is edited meanwhile
        self._sample_path = ""  # the checkpoint of the sample shown
        self._problem: Problem | None = None
        self._failure: str | None = None
        self._build_ui()
        self._update_buttons()
        app = QApplication.instance()
        if app is not None:  # child widgets get no closeEvent when the window closes
            app.aboutToQuit.connect(self.shutdown)
        engine().when_ready(self._update_buttons)
        self.refresh()

    # --- layout -------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.banner = Banner(self)
        self.checkpoints = CheckpointTable(self)
        self.checkpoints.selection_changed.connect(self._update_buttons)
        self.checkpoints.activated.connect(self.generate)
        self.checkpoints.error.connect(self.show_error)

        # Sampling
        self.form = ParamForm(SamplingConfig)
        self.form.changed.connect(self._update_buttons)
        self.device_box = DeviceCombo(preferred="cpu")  # small models sample fastest here
        self.device_box.setToolTip("Where the model runs; a seed gives the same text on every device")
        device_form = QFormLayout()
        device_form.addRow("Device", self.device_box)
        sampling_box = QGroupBox("Sampling")
        sampling_layout = QVBoxLayout(sampling_box)
        sampling_layout.addWidget(self.form)
        sampling_layout.addLayout(device_form)
        sampling_layout.addStretch(1)

        # Prompt and output
        self.prompt_edit = PromptEdit()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setDefault(True)
        self.generate_button.setToolTip("Continue the prompt with the selected checkpoint (Ctrl+Enter)")
        self.generate_button.clicked.connect(self.generate)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End the sample after the current character (Esc)")
        self.stop_button.clicked.connect(self.stop)
        self.explore_button = QPushButton("Explore this sample")
        self.explore_button.setToolTip("Open the prompt and sample in the Explore view, read by the same checkpoint")
        self.explore_button.clicked.connect(self._request_explore)
        self.colour_check = QCheckBox("Colour by probability")
        self.colour_check.setToolTip("Shade each new character by how surprising the model found it "
                                     "(−log₂ p at temperature 1: white expected, dark red 8+ bits)")
        run_row = QHBoxLayout()
        run_row.addWidget(self.colour_check)
        run_row.addWidget(self.explore_button)
        run_row.addStretch(1)
        run_row.addWidget(self.stop_button)
        run_row.addWidget(self.generate_button)
        self.sample = SampleOutput()
        self.sample.error.connect(self.show_error)
        self.output = self.sample.edit

        text_box = QGroupBox("Prompt and sample")
        text_layout = QVBoxLayout(text_box)
        text_layout.addWidget(self.prompt_edit)
        text_layout.addLayout(run_row)
        text_layout.addWidget(self.sample, 1)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(sampling_box)
        bottom.addWidget(text_box)
        bottom.setStretchFactor(0, 0)
        bottom.setStretchFactor(1, 1)
        bottom.setChildrenCollapsible(False)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(self.checkpoints)
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

    # --- checkpoints (the table's API, as the main window and tests use it) -----------

    @Slot()
    def refresh(self) -> None:
        """Rescan the runs folder (and keep checkpoints opened from elsewhere)."""
        self.checkpoints.refresh()
        self._update_buttons()

    @Slot(str)
    def add_checkpoint(self, path: str | Path, select: bool = True) -> bool:
        """Show ``path`` in the list (and select it); False, with a message, if it is missing."""
        added = self.checkpoints.add(path, select)
        self._update_buttons()
        return added

    @Slot()
    def open_checkpoint_dialog(self) -> None:
        self.checkpoints.open_dialog()

    def checkpoint_paths(self) -> list[Path]:
        return self.checkpoints.paths()

    def selected_path(self) -> Path | None:
        return self.checkpoints.selected_path()

    def checkpoint_row(self, path: str | Path) -> list[str] | None:
        return self.checkpoints.row_texts(path)

    def is_reading_info(self) -> bool:
        return self.checkpoints.is_reading()

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
        return self.device_box.name()

    def is_generating(self) -> bool:
        return self._sampler.is_busy()

    @Slot()
    def generate(self) -> None:
        """Start sampling from the selected checkpoint; ignored while a sample is running."""
        if self._sampler.is_busy() or self._sampler.is_closed():
            return
        path = self.selected_path()
        if path is None:
            self.show_error("Select a checkpoint first (or add one with Open…).")
            return
        if not engine().is_ready():
            self.show_error(engine().error() or "The engine is still loading; try again in a moment.")
            return
        problems = self.form.errors()
        if problems:
            self.show_error("Check the sampling options: " + "; ".join(problems) + ".")
            return
        sampling, prompt, device = self.sampling(), self.prompt(), self.device()
        key = (str(path), file_stamp(path), device)
        cached = self._model_cache[1] if self._model_cache and self._model_cache[0] == key else None

        self.clear_error()
        self._stop = threading.Event()
        self._problem = None
        self._failure = None
        self._submitted_prompt = prompt
        self._sample_path = str(path)
        self.sample.set_status("Loading model…" if cached is None else "Reading the prompt…")
        stop, scored = self._stop, self.colour_check.isChecked()
        self._sampler.start(lambda: generation_items(str(path), device, key, cached, prompt, sampling, stop,
                                                     scored),
                            self._on_item, self._on_failed)
        self._update_buttons()
        self.sample.begin_stream()
        self.generation_started.emit(str(path))

    @Slot()
    def stop(self) -> None:
        """Ask the running sample to end after the current character."""
        if self._sampler.is_busy():
            self._stop.set()
            self.sample.quiet()
            self.sample.set_status("Stopping…")
            self._update_buttons()

    @Slot(object)
    def _on_item(self, item: object) -> None:
        if isinstance(item, str):
            self.sample.add(item)
        elif isinstance(item, tuple):  # (char, probability) when colouring by probability
            self.sample.add(*item)
        elif isinstance(item, Ready):
            # Only now: a refused prompt or file leaves the last sample readable.
            self.sample.start_sample(self._submitted_prompt)
            self.sample.set_status("Generating…")
        elif isinstance(item, Loaded):
            self._model_cache = (item.key, (item.model, item.itos, item.info))
        elif isinstance(item, Problem):
            self._problem = item

    @Slot(str)
    def _on_failed(self, detail: str) -> None:
        self._failure = detail

    @Slot()
    def _on_finished(self) -> None:
        self.sample.end_stream()
        text = self.sample.generated_text()
        if self._problem is not None:
            self.sample.set_status("Nothing generated.")
            self.show_error(self._problem.message)
            self.prompt_edit.mark_unknown(self._problem.missing)
        elif self._failure is not None:
            self.sample.set_status(f"Failed after {len(text):,} characters.")
            self.show_error(f"Generation failed: {self._failure}")
        else:
            verb = "Stopped after" if self._stop.is_set() else "Generated"
            self.sample.set_status(f"{verb} {self.sample.rate_text()}.")
        self._update_buttons()
        if self._problem is None and self._failure is None:
            self.generation_finished.emit(text)

    @Slot()
    def _request_explore(self) -> None:
        if self._sample_path and self.sample.text():
            self.explore_requested.emit(self.sample.text(), self._sample_path)

    # --- output ---------------------------------------------------------------------

    def output_text(self) -> str:
        """The prompt followed by everything generated so far."""
        return self.sample.text()

    def generated_text(self) -> str:
        """Only the continuation, without the prompt."""
        return self.sample.generated_text()

    @Slot()
    def copy_output(self) -> None:
        self.sample.copy()

    def save_output(self, path: str | Path) -> bool:
        """Write the prompt and sample as UTF-8 text; False, with a message, on failure."""
        return self.sample.save(path)

    # --- messages and state -------------------------------------------------------




    def status_text(self) -> str:
        return self.sample.status_label.text()

    @Slot()
    def _update_buttons(self) -> None:
        running = self._sampler.is_busy()
        ready = engine().is_ready()
        self.generate_button.setEnabled(ready and not running and self.selected_path() is not None)
        self.stop_button.setEnabled(running and not self._stop.is_set())
        self.explore_button.setEnabled(not running and bool(self._sample_path) and bool(self.sample.text()))

    def shutdown(self, msecs: int = 10_000) -> bool:
        """Stop sampling, start nothing new, and wait for the worker threads to end.

        Call before the view is destroyed (it also runs on application quit):
        a QThread destroyed while running aborts the process. True when all ended.
        """
        self._stop.set()
        self.sample.end_stream()
        ended = close_all([self._sampler, self.checkpoints.reader], msecs)
        QApplication.processEvents()  # deliver their last items and `finished`, so the state is settled
        return ended

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.shutdown()
        super().closeEvent(event)
