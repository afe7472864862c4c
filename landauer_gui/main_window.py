"""The studio window: Train, Generate and Explore views, menus, shortcuts, status bar.

The window owns no logic of its own: it wires the views together (a saved
checkpoint appears in the Generate view), maps menus and keys onto the views'
slots, and remembers its geometry between launches.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QWidget,
)

from core import __version__
from core.resources import resource_path, user_data_dir
from landauer_gui import settings
from landauer_gui.engine import LOADING_TEXT, engine
from landauer_gui.generate_view import GenerateView
from landauer_gui.train_view import TrainView

APP_TITLE = "Landauer Studio"
TRAIN_TAB, GENERATE_TAB, EXPLORE_TAB = 0, 1, 2
START_KEYS = [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")]
PAUSE_KEYS = [QKeySequence("Ctrl+P"), QKeySequence(Qt.Key.Key_Space)]
CLOSE_WAIT_MS = 120_000


class MainWindow(QMainWindow):
    """Train, Generate and Explore views in tabs; the status bar always names the device."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(APP_TITLE)
        try:
            self.setWindowIcon(QIcon(str(resource_path("resources", "icons", "landauer-studio.png"))))
        except FileNotFoundError:
            pass

        self.train_view = TrainView(self)
        self.reproduce_dialog = None  # Train ▸ Reproduce published results…, made on first use
        self.generate_view = GenerateView(self)
        self._explore = None  # built when first shown: the first paint does not wait for it
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.train_view, "Train")
        self.tabs.addTab(self.generate_view, "Generate")
        self.tabs.addTab(QWidget(self), "Explore")
        self.setCentralWidget(self.tabs)

        self.device_label = QLabel(self)
        self.device_label.setToolTip("The device training runs on")
        self.statusBar().addPermanentWidget(self.device_label)
        self.device_label.setText(self.train_view.device_description())
        if not engine().is_ready():
            self.statusBar().showMessage(LOADING_TEXT)
            engine().ready.connect(self.statusBar().clearMessage)
            engine().failed.connect(self.statusBar().showMessage)

        self._build_actions()
        self._connect()
        self._restore_state()
        self._on_tab_changed(self.tabs.currentIndex())

    # -- menus and shortcuts ----------------------------------------------------------------

    def _action(self, text: str, slot, keys=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if keys:
            action.setShortcuts(keys if isinstance(keys, list) else [QKeySequence(keys)])
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even while the menu bar is hidden
        return action

    def _build_actions(self) -> None:
        tv = self.train_view
        self.open_action = self._action("&Open checkpoint…", self.open_checkpoint, QKeySequence.StandardKey.Open,
                                        "Add a checkpoint to the Generate view")
        self.open_run_action = self._action("Open &run folder…", self.open_run_folder_dialog, "Ctrl+Shift+O",
                                            "List a run folder (or a folder of runs) in the run history "
                                            "and watch a run live as another process writes it")
        self.load_preset_action = self._action("&Load preset…", tv.presets.load_dialog)
        self.save_preset_action = self._action("&Save preset…", tv.presets.save_dialog)
        self.export_png_action = self._action("Export plot as &PNG…", self.export_png_dialog)
        self.export_csv_action = self._action("Export plot data as &CSV…", self.export_csv_dialog)
        self.quit_action = self._action("&Quit", self.close, "Ctrl+Q")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)

        self.start_action = self._action("&Start", tv.start, START_KEYS, "Start training")
        self.pause_action = self._action("&Pause", tv.toggle_pause, PAUSE_KEYS, "Pause or resume training")
        self.stop_action = self._action("S&top", tv.stop, "Ctrl+.", "Stop and save a checkpoint")
        self.resume_action = self._action("&Resume from checkpoint…", tv.resume_from_checkpoint_dialog)
        self.reproduce_action = self._action(
            "Reproduce &published results…", self.open_reproduce_dialog,
            tip="Train the published benchmark rows with several seeds and compare")

        self.train_tab_action = self._action("&Train", lambda: self.show_view(TRAIN_TAB), "Ctrl+1")
        self.generate_tab_action = self._action("&Generate", lambda: self.show_view(GENERATE_TAB), "Ctrl+2")
        self.explore_tab_action = self._action("&Explore", lambda: self.show_view(EXPLORE_TAB), "Ctrl+3")
        self.about_action = self._action("&About Landauer Studio", self.about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addAction(self.open_run_action)
        file_menu.addSeparator()
        file_menu.addAction(self.load_preset_action)
        file_menu.addAction(self.save_preset_action)
        file_menu.addSeparator()
        file_menu.addAction(self.export_png_action)
        file_menu.addAction(self.export_csv_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        train_menu = bar.addMenu("&Train")
        for a in (self.start_action, self.pause_action, self.stop_action):
            train_menu.addAction(a)
        train_menu.addSeparator()
        train_menu.addAction(self.resume_action)
        train_menu.addAction(self.reproduce_action)
        view_menu = bar.addMenu("&View")
        view_menu.addAction(self.train_tab_action)
        view_menu.addAction(self.generate_tab_action)
        view_menu.addAction(self.explore_tab_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _connect(self) -> None:
        tv = self.train_view
        tv.checkpoint_saved.connect(self._on_checkpoint_saved)
        tv.running_changed.connect(self._update_actions)
        tv.paused_changed.connect(self._update_actions)
        tv.form.changed.connect(self._update_actions)
        tv.device_changed.connect(self.device_label.setText)
        tv.status_message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        tv.error_shown.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.generate_view.explore_requested.connect(self._explore_sample)
        # Start's enabled state follows the corpus loader and the engine too.
        tv.controls.start_button.installEventFilter(self)
        self._update_actions()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt override)
        if obj is self.train_view.controls.start_button and event.type() == event.Type.EnabledChange:
            self._update_actions()
        return super().eventFilter(obj, event)

    def _update_actions(self, *_) -> None:
        tv, controls = self.train_view, self.train_view.controls
        running = tv.is_running()
        self.start_action.setEnabled(controls.start_button.isEnabled())
        self.pause_action.setEnabled(controls.pause_button.isEnabled())
        self.pause_action.setText("&Resume" if tv.is_paused() else "&Pause")
        self.stop_action.setEnabled(controls.stop_button.isEnabled())
        self.resume_action.setEnabled(not running)
        self.load_preset_action.setEnabled(not running)

    @property
    def explore_view(self):
        """The Explore tab's view, built on first use (about 70 ms less before the first paint)."""
        if self._explore is None:
            from landauer_gui.explore.view import ExploreView

            self._explore = ExploreView(self)
            current = self.tabs.currentIndex()
            self.tabs.blockSignals(True)
            placeholder = self.tabs.widget(EXPLORE_TAB)
            self.tabs.removeTab(EXPLORE_TAB)
            placeholder.deleteLater()
            self.tabs.insertTab(EXPLORE_TAB, self._explore, "Explore")
            self.tabs.setCurrentIndex(current)
            self.tabs.blockSignals(False)
        return self._explore

    def _on_tab_changed(self, index: int) -> None:
        """Keys that mean something else in the Generate view (Ctrl+Enter, Space) only act on Train."""
        if index == EXPLORE_TAB:
            self.explore_view  # noqa: B018 (builds the tab on first show)
        on_train = index == TRAIN_TAB
        self.start_action.setShortcuts(START_KEYS if on_train else [])
        self.pause_action.setShortcuts(PAUSE_KEYS if on_train else PAUSE_KEYS[:1])

    def show_view(self, index: int) -> None:
        self.tabs.setCurrentIndex(index)

    # -- slots ------------------------------------------------------------------------------

    def _on_checkpoint_saved(self, path: str) -> None:
        self.generate_view.add_checkpoint(path, select=False)
        if self._explore is not None:  # otherwise it lists the runs folder when built
            self._explore.checkpoints.add(path, select=False)

    def _explore_sample(self, text: str, checkpoint: str) -> None:
        self.show_view(EXPLORE_TAB)
        self.explore_view.explore_text(text, "Sample from the Generate view", checkpoint)

    def open_reproduce_dialog(self) -> None:
        """Show the reproduction window (one per window; it keeps its results when closed)."""
        if self.reproduce_dialog is None:
            from landauer_gui.reproduce_dialog import ReproduceDialog

            tv = self.train_view
            dialog = ReproduceDialog(tv, self)
            dialog.seed_finished.connect(lambda _result: tv.runs.refresh())
            dialog.checkpoint_saved.connect(self._on_checkpoint_saved)
            dialog.running_changed.connect(self._on_reproduction_running)
            self.reproduce_dialog = dialog
        self.reproduce_dialog.show()
        self.reproduce_dialog.raise_()
        self.reproduce_dialog.activateWindow()

    def _on_reproduction_running(self, running: bool) -> None:
        """One training at a time: the Train view waits while a reproduction runs."""
        tv = self.train_view
        tv.block_start("a reproduction is running (Train ▸ Reproduce published results…)"
                       if running else "")
        if not running:
            tv.runs.refresh()  # a stopped seed is a run too

    def open_checkpoint(self) -> None:
        self.show_view(GENERATE_TAB)
        self.generate_view.open_checkpoint_dialog()

    def open_run_folder_dialog(self) -> None:
        self.show_view(TRAIN_TAB)
        self.train_view.runs.open_folder_dialog()

    def watch_run(self, path: str | Path) -> bool:
        """List ``path`` in the run history and, if it is a run, follow it live (``--watch``)."""
        self.show_view(TRAIN_TAB)
        return self.train_view.runs.add_folder(path) is not None

    def export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plot", str(Path.home() / "landauer-curves.png"),
                                              "PNG images (*.png)")
        if path:
            self._export(self.train_view.plot.export_png, path)

    def export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plot data", str(Path.home() / "landauer-curves.csv"),
                                              "CSV files (*.csv)")
        if path:
            self._export(self.train_view.plot.export_csv, path)

    def _export(self, fn, path: str) -> None:
        try:
            fn(path)
        except OSError as exc:
            self.train_view.show_error(f"Could not export to {path}: {exc.strerror or exc}")
            return
        self.statusBar().showMessage(f"Exported {path}", 5000)

    def about(self) -> None:
        QMessageBox.about(
            self, f"About {APP_TITLE}",
            f"<h3>{APP_TITLE} {__version__}</h3>"
            "<p>Train and sample the Landauer LLM, a gate-free character-level RNN whose layers "
            "rotate by the golden angle, with an energy term for thermodynamic inertia.</p>"
            f"<p>Your runs and settings live in<br><code>{user_data_dir()}</code></p>")

    # -- persistence and shutdown -----------------------------------------------------------

    def _restore_state(self) -> None:
        geometry = settings.get("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        state = settings.get("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self.tabs.setCurrentIndex(settings.get("window/tab", TRAIN_TAB, int))
        self.train_view.restore_layout()

    def save_state(self) -> None:
        settings.put("window/geometry", self.saveGeometry())
        settings.put("window/state", self.saveState())
        settings.put("window/tab", self.tabs.currentIndex())
        self.train_view.save_choices()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        """Closing mid-run stops it cleanly, so the last steps end up in a checkpoint."""
        tv = self.train_view
        if self.reproduce_dialog is not None and not self.reproduce_dialog.shutdown(CLOSE_WAIT_MS):
            self.statusBar().showMessage("The reproduction did not stop in time; still waiting…")
            event.ignore()
            return
        if tv.is_running():
            self.statusBar().showMessage("Stopping training and saving a checkpoint…")
        if not tv.shutdown(CLOSE_WAIT_MS):
            self.statusBar().showMessage("Training did not stop in time; still waiting…")
            event.ignore()
            return
        self.generate_view.shutdown()
        if self._explore is not None:
            self._explore.shutdown()
        engine().wait(CLOSE_WAIT_MS)  # closed while the engine loads: let its thread end
        self.save_state()
        event.accept()
