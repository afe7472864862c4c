"""A device chooser that fills itself once the engine has detected the devices."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QWidget

from landauer_gui.engine import LOADING_TEXT, engine

AUTO = "auto"


class DeviceCombo(QComboBox):
    """Devices by torch name in ``currentData()``; empty (``Loading engine…``) until detected.

    ``with_auto`` adds "Auto (best available)" first (training picks a GPU when
    there is one); otherwise items are labelled by device name with the
    description as tooltip. ``set_wanted`` picks a device now or, before the
    engine is ready, as soon as the list is filled.
    """

    devices_listed = Signal()

    def __init__(self, parent: QWidget | None = None, *, with_auto: bool = False,
                 preferred: str = AUTO):
        super().__init__(parent)
        self._with_auto = with_auto
        self._wanted = preferred
        self.setPlaceholderText(LOADING_TEXT)
        if with_auto:
            self.addItem("Auto (best available)", AUTO)
        engine().when_ready(self._fill)

    def set_wanted(self, name: str) -> None:
        self._wanted = name
        index = self.findData(name)
        if index >= 0:
            self.setCurrentIndex(index)

    def name(self) -> str:
        """The chosen device's torch name ("auto" when Auto is chosen or nothing is listed yet)."""
        return self.currentData() or (AUTO if self._with_auto else self._wanted)

    def description(self) -> str:
        """How the status bar names the chosen device (Auto: the one it resolves to)."""
        devices = engine().devices()
        if not devices:
            return "No engine" if engine().error() else LOADING_TEXT
        name = self.name()
        if name == AUTO:
            return devices[0].description
        return next((d.description for d in devices if d.name == name), name)

    def _fill(self) -> None:
        for dev in engine().devices():
            if self._with_auto:
                self.addItem(dev.description, dev.name)
            else:
                self.addItem(dev.name, dev.name)
                self.setItemData(self.count() - 1, dev.description, Qt.ItemDataRole.ToolTipRole)
        self.setCurrentIndex(max(0, self.findData(self._wanted)))
        self.devices_listed.emit()
