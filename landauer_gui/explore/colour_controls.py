"""The "Colour by" bar above the text: the colouring mode, its legend, and the values it colours by.

One analysis can colour the text five ways (surprise, rank bucket, state
motion, one unit's activation, the difference to a second checkpoint); this
widget keeps what each mode needs and says, through ``colouring_changed``,
which values and scale the text pane should paint.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from landauer_gui.explore import jobs
from landauer_gui.explore.colours import ColourScale, diverging_scale
from landauer_gui.explore.legend import Legend

COLOUR_MODES = (("surprise", "Surprise"), ("rank", "Rank (top 1 / 5 / 20)"), ("motion", "State motion"),
                ("unit", "Selected unit"), ("compare", "Δ surprise vs second checkpoint"))


class ColourControls(QWidget):
    """Mode combo and legend; ``colouring_changed(values, scale)`` whenever the colours change."""

    colouring_changed = Signal(object, object)  # np.ndarray | None, ColourScale | None

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._prepared: jobs.Prepared | None = None
        self._compared: jobs.Compared | None = None
        self._unit: tuple[int, int] | None = None
        self.colour_box = QComboBox()
        for key, label in COLOUR_MODES:
            self.colour_box.addItem(label, key)
        self.legend = Legend()
        bar = QHBoxLayout(self)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("Colour by"))
        bar.addWidget(self.colour_box)
        bar.addSpacing(12)
        bar.addWidget(self.legend, 1)
        self.colour_box.currentIndexChanged.connect(self.recolour)

    def mode(self) -> str:
        return self.colour_box.currentData()

    def set_mode(self, mode: str) -> None:
        self.colour_box.setCurrentIndex(self.colour_box.findData(mode))

    def show_analysis(self, prep: jobs.Prepared) -> None:
        """A new analysis: forget the comparison and the unit, colour by surprise."""
        self._prepared = prep
        self._compared = None
        self._unit = None
        self.colour_box.setCurrentIndex(0)
        self.recolour()

    def compared(self) -> jobs.Compared | None:
        return self._compared

    def show_compared(self, compared: jobs.Compared) -> None:
        self._compared = compared
        self._show_mode("compare")

    @Slot(int, int)
    def colour_by_unit(self, layer: int, unit: int) -> None:
        self._unit = (int(layer), int(unit))
        self._show_mode("unit")

    def _show_mode(self, mode: str) -> None:
        if self.mode() == mode:
            self.recolour()
        else:
            self.set_mode(mode)

    def colouring(self) -> tuple[np.ndarray | None, ColourScale | None]:
        prep = self._prepared
        if prep is None:
            return None, None
        mode = self.mode()
        if mode in prep.per_char:
            return prep.per_char[mode], prep.scales[mode]
        if mode == "compare" and self._compared is not None:
            return self._compared.delta_bits, self._compared.scale
        if mode == "unit" and self._unit is not None and prep.hidden is not None:
            layer, unit = self._unit
            values = np.full(len(prep.analysis.text), np.nan)
            acts = prep.hidden[layer, :, unit]
            values[: len(acts)] = acts
            return values, diverging_scale(acts, f"layer {layer} unit {unit} activation")
        return None, None

    @Slot()
    def recolour(self, *_args) -> None:
        values, scale = self.colouring()
        self.colouring_changed.emit(values, scale)
        self.legend.set_scale(scale)
