"""The Train view: settings, corpus, device, presets, run controls, curves, log, history.

All training happens in :class:`core.trainer.Trainer`, iterated on a
:class:`BackgroundIterator` thread; this view turns its events into widgets and
its buttons into ``pause()`` / ``resume()`` / ``stop()`` calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.checkpoint import CheckpointError, read_info
from core.data import Corpus, CorpusError, load_corpus
from core.device import detect_devices
from core.events import (
    CheckpointSaved,
    EvalMetrics,
    Failed,
    Finished,
    Paused,
    Resumed,
    Started,
    StepMetrics,
    format_event,
)
from core.hparams import ParamSpec, TrainConfig, param_specs
from core.resources import bundled_corpus, resource_path, runs_dir
from core.trainer import CONFIG_FILE, Trainer
from landauer_gui import settings
from landauer_gui.param_form import ERROR_COLOR, ParamForm
from landauer_gui.plots import MetricsPlot
from landauer_gui.runs import RunsPanel, load_curves, new_run_dir
from landauer_gui.widgets import Banner, stretched_row
from landauer_gui.workers import BackgroundIterator

LOG_MAX_LINES = 5000
EVENT_BATCH_S = 0.05  # forward step events to the UI at most ~20 times a second
FORM_SKIP = ("data_path",)  # the corpus has its own picker with a summary


class PresetError(ValueError):
    """A preset file that cannot be used; the message names the file and the problem."""


def read_preset(path: str | Path) -> dict[str, Any]:
    """``{"name", "description", "config"}`` of a preset file; config keys are TrainConfig fields."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PresetError(f"cannot read preset {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path.name} is not a JSON preset: {exc}") from None
    if isinstance(data, dict) and "config" not in data:
        data = {"config": data}  # a bare {field: value} dict is accepted too
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise PresetError(f"{path.name} is not a preset: expected an object with a \"config\" object")
    known = {s.name for s in _form_specs()}
    config = {k: v for k, v in data["config"].items() if k in known}
    if not config:
        raise PresetError(f"{path.name} sets none of the training settings")
    return {
        "name": str(data.get("name") or path.stem),
        "description": str(data.get("description") or ""),
        "config": config,
    }


def write_preset(path: str | Path, name: str, config: TrainConfig, description: str = "") -> Path:
    """Save the form's settings (not paths or device) as a preset file."""
    path = Path(path)
    keep = {s.name for s in _form_specs()}
    body = {"name": name, "description": description,
            "config": {k: v for k, v in config.to_dict().items() if k in keep}}
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _form_specs() -> list[ParamSpec]:
    """The TrainConfig fields the form shows (and a preset may set)."""
    return [s for s in param_specs(TrainConfig) if not s.param.cli_only and s.name not in FORM_SKIP]


def bundled_presets() -> list[Path]:
    try:
        folder = resource_path("resources", "presets")
    except FileNotFoundError:
        return []
    return sorted(folder.glob("*.json"))


def _batched(events: Iterator[Any], interval: float = EVENT_BATCH_S) -> Iterator[list[Any]]:
    """Group fast step events so the UI thread gets a few signals a second, not thousands.

    Anything other than a step event (eval, checkpoint, pause, end) is sent at
    once, so nothing waits behind a pause or a long evaluation.
    """
    batch: list[Any] = []
    last = time.monotonic()
    for ev in events:
        batch.append(ev)
        now = time.monotonic()
        if not isinstance(ev, StepMetrics) or now - last >= interval:
            yield batch
            batch = []
            last = now
    if batch:
        yield batch


def _load_corpus_items(path: str) -> Iterator[Corpus | CorpusError]:
    try:
        yield load_corpus(path)
    except CorpusError as exc:
        yield exc


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainView(QWidget):
    """Configure, start and watch a training run."""

    checkpoint_saved = Signal(str)  # path of every checkpoint the run writes
    running_changed = Signal(bool)
    paused_changed = Signal(bool)
    device_changed = Signal(str)  # description of the chosen device, for the status bar
    status_message = Signal(str)
    error_shown = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._trainer: Trainer | None = None
        self._worker: BackgroundIterator | None = None
        self._corpus: Corpus | None = None
        self._corpus_error: str | None = None
        self._corpus_loader: BackgroundIterator | None = None
        self._corpus_wanted = ""
        self._resume_path: str | None = None
        self._resume_step = 0
        self._run_dir: Path | None = None
        self._log_every = TrainConfig().log_every
        self._pause_requested = False
        self._stop_requested = False
        self._last_step = 0
        self._start_step = 0
        self._total_steps = 0
        self._tokens_per_step = 1
        self._presets: list[tuple[str, str, dict[str, Any]]] = []  # name, description, config
        self._applying_preset = False
        self._build_ui()
        self._load_presets()
        self._restore_choices()
        self._update_controls()

    # -- layout -----------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.banner = Banner(self)

        # Left column: what to train.
        self.corpus_edit = QLineEdit(self)  # shows the file name; the full path is its tooltip
        self.corpus_edit.setReadOnly(True)
        self.corpus_edit.setPlaceholderText("Choose a UTF-8 text file")
        browse = QToolButton(self)
        browse.setText("…")
        browse.setToolTip("Choose a UTF-8 text file to train on")
        browse.clicked.connect(self._browse_corpus)
        bundled = QToolButton(self)
        bundled.setText("Shakespeare")
        bundled.setToolTip("Use the Shakespeare corpus that ships with the studio")
        bundled.clicked.connect(self.use_bundled_corpus)
        path_row = stretched_row(self.corpus_edit, browse, bundled)
        self.corpus_info = QLabel(self)
        self.corpus_info.setWordWrap(True)
        self.corpus_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        corpus_box = QGroupBox("Corpus", self)
        corpus_lay = QVBoxLayout(corpus_box)
        corpus_lay.addLayout(path_row)
        corpus_lay.addWidget(self.corpus_info)

        self.device_combo = QComboBox(self)
        self.device_combo.addItem("Auto (best available)", "auto")
        self._devices = detect_devices()
        for dev in self._devices:
            self.device_combo.addItem(dev.description, dev.name)
        self.device_combo.setToolTip("Where the model trains; Auto picks a GPU when there is one")
        self.device_combo.currentIndexChanged.connect(self._on_device)

        self.preset_combo = QComboBox(self)
        self.preset_combo.setToolTip("Settings of the published benchmark runs, and your own presets")
        self.preset_combo.activated.connect(self._on_preset_chosen)
        load_preset = QToolButton(self)
        load_preset.setText("Load…")
        load_preset.clicked.connect(self.load_preset_dialog)
        save_preset = QToolButton(self)
        save_preset.setText("Save…")
        save_preset.clicked.connect(self.save_preset_dialog)
        preset_row = stretched_row(self.preset_combo, load_preset, save_preset)
        self.preset_info = QLabel(self)
        self.preset_info.setWordWrap(True)
        self.preset_info.setStyleSheet("color: palette(placeholder-text);")
        setup_box = QGroupBox("Run", self)
        self._setup_lay = QFormLayout(setup_box)
        self._setup_lay.addRow("Preset", preset_row)
        self._setup_lay.addRow("", self.preset_info)
        self._setup_lay.addRow("Device", self.device_combo)
        self._set_preset_info("")

        self.form = ParamForm(TrainConfig(), self, skip=FORM_SKIP, columns=2)
        self.form.changed.connect(self._on_form_changed)

        left_inner = QWidget(self)
        left_lay = QVBoxLayout(left_inner)
        left_lay.setContentsMargins(0, 0, 4, 0)
        left_lay.addWidget(corpus_box)
        left_lay.addWidget(setup_box)
        left_lay.addWidget(self.form)
        left_lay.addStretch(1)
        left = QScrollArea(self)
        left.setWidget(left_inner)
        left.setWidgetResizable(True)
        left.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left.setFrameShape(QFrame.Shape.NoFrame)
        left.setMinimumWidth(440)

        # Right column: controls, progress, curves, log and history.
        self.start_button = QPushButton("Start", self)
        self.start_button.setToolTip("Train with these settings (Ctrl+Enter)")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setToolTip("Hold after the current step; press again to continue (Space, Ctrl+P)")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("End the run after the current step and save a checkpoint (Ctrl+.)")
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume from checkpoint…", self)
        self.resume_button.setToolTip("Continue a saved run: its settings, optimiser and random state")
        self.resume_button.clicked.connect(self.resume_from_checkpoint_dialog)
        self.start_reason = QLabel(self)
        self.start_reason.setWordWrap(True)
        self.start_reason.setStyleSheet(f"color: {ERROR_COLOR};")
        self.resume_label = QLabel(self)
        self.resume_label.setWordWrap(True)
        self.resume_clear = QToolButton(self)
        self.resume_clear.setText("✕")
        self.resume_clear.setAutoRaise(True)
        self.resume_clear.setToolTip("Start a new run instead of resuming")
        self.resume_clear.clicked.connect(self.clear_resume)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.stop_button)
        buttons.addSpacing(12)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        resume_row = stretched_row(self.resume_label, self.resume_clear)

        self.progress = QProgressBar(self)
        self.progress.setFormat("step %v / %m")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.stats = QLabel("Not running", self)
        self.stats.setMinimumWidth(260)
        self.stats.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        progress_row = stretched_row(self.progress, self.stats)

        self.plot = MetricsPlot(self)

        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_MAX_LINES)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)  # long checkpoint paths
        self.log.setPlaceholderText("Training log: the same lines as the command line prints.")
        self.runs = RunsPanel(self)
        self.runs.show_requested.connect(self.plot.set_overlays)
        self.bottom_tabs = QTabWidget(self)
        self.bottom_tabs.setDocumentMode(True)
        self.bottom_tabs.addTab(self.log, "Log")
        self.bottom_tabs.addTab(self.runs, "Run history")

        right_top = QWidget(self)
        rt = QVBoxLayout(right_top)
        rt.setContentsMargins(0, 0, 0, 0)
        rt.addLayout(buttons)
        rt.addWidget(self.start_reason)
        rt.addLayout(resume_row)
        rt.addLayout(progress_row)
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
        device = settings.get("train/device", "auto", str)
        index = self.device_combo.findData(device)
        self.device_combo.setCurrentIndex(max(0, index))
        corpus = settings.get("train/corpus", "", str)
        if corpus and Path(corpus).is_file():
            self.set_corpus(corpus)
        else:
            self.use_bundled_corpus()
        self._on_device()

    def save_choices(self) -> None:
        """Remember the settings for the next launch (called by the main window on close)."""
        keep = {s.name for s in self.form.specs()}
        values = {k: v for k, v in self.form.values().to_dict().items() if k in keep}
        settings.put("train/config", json.dumps(values))
        settings.put("train/device", self.device_combo.currentData())
        settings.put("train/corpus", self._corpus_wanted)
        settings.put("train/splitter", self.splitter.saveState())
        settings.put("train/right_splitter", self.right_splitter.saveState())
        settings.put("plot/smoothing", self.plot.smoothing())
        settings.put("plot/log_y", self.plot.log_y.isChecked())

    def restore_layout(self) -> None:
        state = settings.get("train/splitter")
        if state is not None:
            self.splitter.restoreState(state)
        state = settings.get("train/right_splitter")
        if state is not None:
            self.right_splitter.restoreState(state)
        self.plot.set_smoothing(settings.get("plot/smoothing", self.plot.smoothing(), float))
        self.plot.log_y.setChecked(settings.get("plot/log_y", False, bool))

    # -- state queries ----------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._worker is not None

    def is_paused(self) -> bool:
        return self._pause_requested

    def corpus(self) -> Corpus | None:
        return self._corpus

    def run_dir(self) -> Path | None:
        return self._run_dir

    def start_blockers(self) -> list[str]:
        """Why Start is disabled right now (empty when it is enabled)."""
        if self.is_running():
            return ["a run is in progress"]
        reasons = list(self.form.errors())
        if self._corpus_loader is not None:
            reasons.append("reading the corpus…")
        elif self._corpus_error:
            reasons.append(self._corpus_error)
        elif self._corpus is None:
            reasons.append("choose a corpus")
        elif not reasons:
            cfg = self.form.values()
            try:
                self._corpus.check_seq_len(cfg.seq_len, cfg.eval_every > 0)
            except CorpusError as exc:
                reasons.append(str(exc))
        if self._resume_path and not reasons:
            steps = self.form.values().steps
            if steps <= self._resume_step:
                reasons.append(f"the checkpoint is already at step {self._resume_step}; "
                               f"raise Steps above {self._resume_step} to continue training")
        return reasons

    # -- corpus -----------------------------------------------------------------------------

    def _browse_corpus(self) -> None:
        start = self._corpus_wanted or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a text file to train on", start,
                                              "Text files (*.txt);;All files (*)")
        if path:
            self.set_corpus(path)

    def use_bundled_corpus(self) -> None:
        try:
            path = bundled_corpus()
        except FileNotFoundError:
            self.corpus_edit.clear()
            self._set_corpus_state(None, "the bundled Shakespeare corpus is missing from this "
                                   "installation; choose a text file")
            return
        self.set_corpus(str(path))

    def set_corpus(self, path: str) -> None:
        """Read ``path`` in the background; Start stays disabled until it is usable."""
        path = path.strip()
        if path == self._corpus_wanted and (self._corpus is not None or self._corpus_error):
            return
        self.corpus_edit.setText(Path(path).name if path else "")
        self.corpus_edit.setToolTip(path)
        self._corpus_wanted = path
        if not path:
            self._set_corpus_state(None, "choose a corpus")
            return
        self._corpus = None
        self._corpus_error = None
        self.corpus_info.setStyleSheet("")
        self.corpus_info.setText("Reading…")
        if self._corpus_loader is None:
            self._start_corpus_loader(path)
        self._update_controls()

    def _start_corpus_loader(self, path: str) -> None:
        loader = BackgroundIterator(lambda: _load_corpus_items(path), self)
        loader.item.connect(lambda item, p=path: self._on_corpus_item(p, item))
        loader.failed.connect(lambda detail, p=path: self._on_corpus_item(p, CorpusError(detail)))
        loader.finished.connect(self._on_corpus_loader_done)
        self._corpus_loader = loader
        loader.start()

    def _on_corpus_item(self, path: str, item: Any) -> None:
        if path != self._corpus_wanted:
            return  # the user picked another file meanwhile
        if isinstance(item, Corpus):
            self._set_corpus_state(item, None)
        else:
            self._set_corpus_state(None, str(item))

    def _on_corpus_loader_done(self) -> None:
        loader, self._corpus_loader = self._corpus_loader, None
        if loader is not None:
            loader.deleteLater()
        if self._corpus is None and self._corpus_error is None and self._corpus_wanted:
            self._start_corpus_loader(self._corpus_wanted)  # another file was chosen while reading
        self._update_controls()

    def _set_corpus_state(self, corpus: Corpus | None, error: str | None) -> None:
        self._corpus = corpus
        self._corpus_error = error
        if corpus is not None:
            s = corpus.summary()
            self.corpus_info.setStyleSheet("")
            self.corpus_info.setText(
                f"{s['characters']:,} characters · vocabulary {s['vocab_size']}\n"
                f"{s['train_tokens']:,} train / {s['val_tokens']:,} validation tokens")
            self.corpus_info.setToolTip(corpus.summary_text())
        else:
            self.corpus_info.setStyleSheet(f"color: {ERROR_COLOR};")
            self.corpus_info.setText(error or "")
            self.corpus_info.setToolTip("")
        self._update_controls()

    # -- device, presets, form --------------------------------------------------------------

    def device_name(self) -> str:
        return self.device_combo.currentData() or "auto"

    def device_description(self) -> str:
        name = self.device_name()
        devices = self._devices
        if name == "auto":
            return devices[0].description
        return next((d.description for d in devices if d.name == name), name)

    def _on_device(self, *_: Any) -> None:
        self.device_changed.emit(self.device_description())

    def _load_presets(self) -> None:
        self._presets.clear()
        for path in [*bundled_presets(), *sorted(settings.user_presets_dir().glob("*.json"))]:
            try:
                p = read_preset(path)
            except PresetError:
                continue
            self._presets.append((p["name"], p["description"], p["config"]))
        self._fill_preset_combo()

    def _fill_preset_combo(self, current: str | None = None) -> None:
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        self.preset_combo.addItem("Custom settings")
        for name, description, _ in self._presets:
            self.preset_combo.addItem(name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, description,
                                          Qt.ItemDataRole.ToolTipRole)
        index = self.preset_combo.findText(current) if current else 0
        self.preset_combo.setCurrentIndex(max(0, index))
        self.preset_combo.blockSignals(False)

    def _set_preset_info(self, text: str) -> None:
        self.preset_info.setText(text)
        self._setup_lay.setRowVisible(self.preset_info, bool(text))

    def preset_names(self) -> list[str]:
        return [name for name, _, _ in self._presets]

    def _on_preset_chosen(self, index: int) -> None:
        if index > 0:
            self.apply_preset(self.preset_combo.itemText(index))

    def apply_preset(self, name: str) -> None:
        """Defaults, then the preset's values: a preset names only what differs."""
        found = [(d, c) for n, d, c in self._presets if n == name]
        if not found:
            raise KeyError(name)
        description, config = found[-1]
        base = self.form.values().to_dict()
        defaults = TrainConfig().to_dict()
        base.update({s.name: defaults[s.name] for s in self.form.specs()})
        base.update(config)
        self._applying_preset = True
        try:
            self.form.set_values(TrainConfig.from_dict(base))
        finally:
            self._applying_preset = False
        self._fill_preset_combo(name)
        self._set_preset_info(description)

    def load_preset(self, path: str | Path) -> bool:
        """Add a preset file to the list and apply it; problems go to the banner."""
        try:
            p = read_preset(path)
        except PresetError as exc:
            self.show_error(str(exc))
            return False
        self._presets = [x for x in self._presets if x[0] != p["name"]]
        self._presets.append((p["name"], p["description"], p["config"]))
        self.apply_preset(p["name"])
        self.status_message.emit(f"Loaded preset {p['name']}")
        return True

    def save_preset(self, path: str | Path, name: str | None = None) -> Path:
        path = Path(path)
        if path.suffix.lower() != ".json":
            path = path.with_suffix(".json")
        name = name or path.stem
        write_preset(path, name, self.form.values())
        self._presets = [x for x in self._presets if x[0] != name]
        self._presets.append((name, "", read_preset(path)["config"]))
        self._fill_preset_combo(name)
        self._set_preset_info("")
        self.status_message.emit(f"Saved preset to {path}")
        return path

    def load_preset_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load preset", str(settings.user_presets_dir()),
                                              "Presets (*.json);;All files (*)")
        if path:
            self.load_preset(path)

    def save_preset_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", str(settings.user_presets_dir() / "my-preset.json"),
                                              "Presets (*.json)")
        if path:
            try:
                self.save_preset(path)
            except OSError as exc:
                self.show_error(f"could not save the preset: {exc.strerror or exc}")

    def _on_form_changed(self) -> None:
        if not self._applying_preset and self.preset_combo.currentIndex() != 0:
            self.preset_combo.setCurrentIndex(0)
            self._set_preset_info("")
        self._update_controls()

    # -- resume -----------------------------------------------------------------------------

    def resume_from_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Resume from checkpoint", str(runs_dir()),
                                              "Checkpoints (*.pth);;All files (*)")
        if path:
            self.prepare_resume(path)

    def prepare_resume(self, path: str | Path) -> bool:
        """Show the checkpoint's settings and corpus; Start then continues that run."""
        try:
            info = read_info(path)
        except (CheckpointError, OSError) as exc:
            self.show_error(str(exc))
            return False
        if info.train_config is None:
            self.show_error(f"{Path(path).name} holds weights but no training state, so training "
                            "cannot resume from it (it can still generate text)")
            return False
        cfg = TrainConfig.from_dict({**self.form.values().to_dict(), **info.train_config})
        self.form.set_values(cfg)
        corpus = (info.corpus or {}).get("path") or cfg.data_path
        if corpus and Path(corpus).is_file():
            self.set_corpus(corpus)
        self._resume_path = str(path)
        self._resume_step = info.step or 0
        self.resume_label.setText(f"Resuming {Path(path).parent.name}/{Path(path).name} "
                                  f"at step {self._resume_step}")
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
        blockers = self.start_blockers()
        self.start_button.setEnabled(not blockers)
        self.start_reason.setText("" if running or not blockers else "Cannot start: " + blockers[0])
        self.start_reason.setVisible(bool(self.start_reason.text()))
        self.start_button.setToolTip("Train with these settings (Ctrl+Enter)" if not blockers
                                     else "Cannot start: " + "; ".join(blockers))
        self.pause_button.setEnabled(running and not self._stop_requested)
        self.pause_button.setText("Resume" if self._pause_requested else "Pause")
        self.stop_button.setEnabled(running and not self._stop_requested)
        self.resume_button.setEnabled(not running)
        self.form.setEnabled(not running)
        self.corpus_edit.setEnabled(not running)
        self.device_combo.setEnabled(not running)
        self.preset_combo.setEnabled(not running)
        self.resume_label.setVisible(bool(self._resume_path))
        self.resume_clear.setVisible(bool(self._resume_path) and not running)

    def start(self) -> bool:
        """Start a run with the form's settings in a fresh folder (or continue a checkpoint)."""
        blockers = self.start_blockers()
        if blockers:
            self.status_message.emit("Cannot start: " + blockers[0])
            return False
        cfg = self.form.values()
        if self._resume_path:
            folder = Path(self._resume_path).parent
            run_dir = folder if (folder / CONFIG_FILE).is_file() else new_run_dir(folder.name)
        else:
            name = self.preset_combo.currentText() if self.preset_combo.currentIndex() > 0 else "run"
            run_dir = new_run_dir(name)
        cfg = cfg.replace(data_path=self._corpus.path or self._corpus_wanted,
                          device=self.device_name(), save_dir=str(run_dir),
                          resume=self._resume_path or "")
        self._run_dir = run_dir
        self._log_every = cfg.log_every
        self._trainer = Trainer(cfg, corpus=self._corpus)
        self._pause_requested = False
        self._stop_requested = False
        self._last_step = self._start_step = self._resume_step if self._resume_path else 0
        self._total_steps = cfg.steps
        self._tokens_per_step = cfg.batch_size * cfg.seq_len
        self.progress.setRange(0, cfg.steps)
        self.progress.setValue(self._last_step)
        self.stats.setText("Starting…")
        self.plot.clear()
        if self._resume_path:
            # Show the curve so far; the trainer drops recorded lines past the checkpoint's step.
            past = load_curves(run_dir)
            for s, c, e in zip(past.train.steps, past.train.column(0), past.train.column(1), strict=True):
                if s <= self._start_step:
                    self.plot.add_step(int(s), c, e)
            for s, c, e in zip(past.val.steps, past.val.column(0), past.val.column(1), strict=True):
                if s <= self._start_step:
                    self.plot.add_eval(int(s), c, e)
        self.banner.hide()
        self.log.appendPlainText(f"Run folder: {run_dir}")
        trainer = self._trainer
        self._worker = BackgroundIterator(lambda: _batched(trainer.run()), self)
        self._worker.item.connect(self._on_events)
        self._worker.failed.connect(self._on_crash)
        self._worker.finished.connect(self._on_worker_finished)
        self._worker.start()
        self._update_controls()
        self.running_changed.emit(True)
        self.status_message.emit(f"Training in {run_dir.name}")
        return True

    def toggle_pause(self) -> None:
        if not self.is_running() or self._trainer is None or self._stop_requested:
            return
        if self._pause_requested:
            self._pause_requested = False
            self._trainer.resume()
        else:
            self._pause_requested = True
            self._trainer.pause()
        self._update_controls()
        self.paused_changed.emit(self._pause_requested)

    def stop(self) -> None:
        """Ask the run to end after the current step; the trainer saves a checkpoint."""
        if not self.is_running() or self._trainer is None:
            return
        self._stop_requested = True
        self._trainer.stop()
        self.stats.setText("Stopping: saving a checkpoint…")
        self._update_controls()

    def stop_and_wait(self, msecs: int = 60_000) -> bool:
        """Stop and block until the worker has ended (window closing); True if it ended."""
        if self._worker is None:
            return True
        self.stop()
        return self._worker.wait(msecs)

    def shutdown(self, msecs: int = 60_000) -> bool:
        """Stop training and wait for every worker thread (the window is closing)."""
        ended = self.stop_and_wait(msecs)
        if self._corpus_loader is not None:
            self._corpus_loader.wait(msecs)
        return ended

    # -- events -----------------------------------------------------------------------------

    def _on_events(self, batch: list[Any]) -> None:
        last_metrics = None
        for ev in batch:
            if isinstance(ev, StepMetrics):
                self.plot.add_step(ev.step, ev.content, ev.energy)
                last_metrics = ev
            else:
                if last_metrics is not None:  # progress first, so "Paused at…" is not overwritten
                    self._show_progress(last_metrics)
                    last_metrics = None
                self._on_event(ev)
            line = format_event(ev, self._log_every)
            if line:
                self.log.appendPlainText(line)
        if last_metrics is not None:
            self._show_progress(last_metrics)

    def _show_progress(self, ev: StepMetrics) -> None:
        self._last_step = ev.step
        self.progress.setValue(ev.step)
        steps_per_s = ev.tokens_per_s / max(1, self._tokens_per_step)
        eta = (ev.total_steps - ev.step) / steps_per_s if steps_per_s > 0 else 0.0
        state = "paused · " if self._pause_requested else ""
        self.stats.setText(f"{state}{ev.tokens_per_s:,.0f} tokens/s · ETA {_fmt_duration(eta)}")

    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, EvalMetrics):
            self.plot.add_eval(ev.step, ev.content, ev.energy)
        elif isinstance(ev, Started):
            self._start_step = ev.start_step
            self.plot.set_step_range(0, ev.total_steps)
            self.progress.setRange(0, ev.total_steps)
            self.progress.setValue(ev.start_step)
            self.device_changed.emit(ev.device_description)
        elif isinstance(ev, CheckpointSaved):
            self.checkpoint_saved.emit(ev.path)
            self.status_message.emit(f"Saved {Path(ev.path).name}")
        elif isinstance(ev, Paused):
            self.stats.setText(f"Paused at step {ev.step}")
        elif isinstance(ev, Resumed):
            self.stats.setText(f"Resumed at step {ev.step}")
        elif isinstance(ev, Finished):
            self.progress.setValue(ev.step)
            verb = "Stopped" if ev.stopped else "Finished"
            self.stats.setText(f"{verb} at step {ev.step} · {_fmt_duration(ev.elapsed_s)}")
            self.status_message.emit(f"{verb} at step {ev.step}")
        elif isinstance(ev, Failed):
            self.stats.setText(f"Failed at step {ev.step}")
            self.show_error(f"Training failed at step {ev.step}: {ev.message}")

    def _on_crash(self, detail: str) -> None:
        """An unexpected exception in the trainer: show it; the window stays usable."""
        self.log.appendPlainText(f"Training crashed: {detail}")
        self.stats.setText("Crashed")
        self.show_error(f"Training stopped by an unexpected error: {detail}")

    def _on_worker_finished(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.deleteLater()
        self._trainer = None
        self._pause_requested = False
        self._stop_requested = False
        if self._resume_path:
            self.clear_resume()
        self._update_controls()
        self.runs.refresh()
        self.running_changed.emit(False)

    def show_error(self, message: str) -> None:
        self.banner.show_message(message)
        self.error_shown.emit(message)
