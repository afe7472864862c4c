"""The preset chooser: bundled benchmark presets and the user's own, applied to a settings form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QToolButton, QWidget

from core.hparams import TrainConfig
from core.presets import PresetError, bundled_presets, read_preset, write_preset
from landauer_gui import settings
from landauer_gui.param_form import ParamForm

CUSTOM = "Custom settings"


class PresetPicker(QWidget):
    """Combo plus Load…/Save… for the presets of ``form`` (a TrainConfig :class:`ParamForm`).

    ``info`` is the chosen preset's description; it is not in this widget's
    layout, so a view can place it on its own row (``info_changed`` says when
    its text changed). Editing the form switches the combo back to "Custom
    settings". Problems are reported through ``error``, never as dialogs.
    """

    info_changed = Signal(str)
    message = Signal(str)  # for the status bar
    error = Signal(str)

    def __init__(self, form: ParamForm, parent: QWidget | None = None):
        super().__init__(parent)
        self._form = form
        self._presets: list[tuple[str, str, dict[str, Any]]] = []  # name, description, config
        self._applying = False
        self.combo = QComboBox(self)
        self.combo.setToolTip("Settings of the published benchmark runs, and your own presets")
        self.combo.activated.connect(self._on_chosen)
        load = QToolButton(self)
        load.setText("Load…")
        load.clicked.connect(self.load_dialog)
        save = QToolButton(self)
        save.setText("Save…")
        save.clicked.connect(self.save_dialog)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(load)
        row.addWidget(save)
        self.info = QLabel(parent)
        self.info.setWordWrap(True)
        self.info.setStyleSheet("color: palette(placeholder-text);")
        form.changed.connect(self._on_form_changed)
        self.reload()

    def reload(self) -> None:
        """The bundled presets, then the user's own folder; unreadable files are skipped."""
        self._presets.clear()
        for path in [*bundled_presets(), *sorted(settings.user_presets_dir().glob("*.json"))]:
            try:
                p = read_preset(path)
            except PresetError:
                continue
            self._presets.append((p["name"], p["description"], p["config"]))
        self._fill_combo()

    def names(self) -> list[str]:
        return [name for name, _, _ in self._presets]

    def current_name(self) -> str | None:
        """The applied preset, or None when the form holds custom settings."""
        return self.combo.currentText() if self.combo.currentIndex() > 0 else None

    def apply(self, name: str) -> None:
        """Defaults, then the preset's values: a preset names only what differs."""
        found = [(d, c) for n, d, c in self._presets if n == name]
        if not found:
            raise KeyError(name)
        description, config = found[-1]
        base = self._form.values().to_dict()
        defaults = TrainConfig().to_dict()
        base.update({s.name: defaults[s.name] for s in self._form.specs()})
        base.update(config)
        self._applying = True
        try:
            self._form.set_values(TrainConfig.from_dict(base))
        finally:
            self._applying = False
        self._fill_combo(name)
        self._set_info(description)

    def load(self, path: str | Path) -> bool:
        """Add a preset file to the list and apply it; problems go to ``error``."""
        try:
            p = read_preset(path)
        except PresetError as exc:
            self.error.emit(str(exc))
            return False
        self._remember(p["name"], p["description"], p["config"])
        self.apply(p["name"])
        self.message.emit(f"Loaded preset {p['name']}")
        return True

    def save(self, path: str | Path, name: str | None = None) -> Path:
        """Write the form's settings as a preset (``.json`` added) and select it."""
        path = Path(path)
        if path.suffix.lower() != ".json":
            path = path.with_suffix(".json")
        name = name or path.stem
        write_preset(path, name, self._form.values())
        self._remember(name, "", read_preset(path)["config"])
        self._fill_combo(name)
        self._set_info("")
        self.message.emit(f"Saved preset to {path}")
        return path

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load preset", str(settings.user_presets_dir()),
                                              "Presets (*.json);;All files (*)")
        if path:
            self.load(path)

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", str(settings.user_presets_dir() / "my-preset.json"),
                                              "Presets (*.json)")
        if path:
            try:
                self.save(path)
            except OSError as exc:
                self.error.emit(f"could not save the preset: {exc.strerror or exc}")

    def _remember(self, name: str, description: str, config: dict[str, Any]) -> None:
        self._presets = [x for x in self._presets if x[0] != name]
        self._presets.append((name, description, config))

    def _fill_combo(self, current: str | None = None) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem(CUSTOM)
        for name, description, _ in self._presets:
            self.combo.addItem(name)
            self.combo.setItemData(self.combo.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
        index = self.combo.findText(current) if current else 0
        self.combo.setCurrentIndex(max(0, index))
        self.combo.blockSignals(False)

    def _set_info(self, text: str) -> None:
        self.info.setText(text)
        self.info_changed.emit(text)

    def _on_chosen(self, index: int) -> None:
        if index > 0:
            self.apply(self.combo.itemText(index))

    def _on_form_changed(self) -> None:
        if not self._applying and self.combo.currentIndex() != 0:
            self.combo.setCurrentIndex(0)
            self._set_info("")
