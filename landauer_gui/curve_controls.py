"""The row above the curves: smoothing, x axis, log y and Fit (wired by :class:`MetricsPlot`)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QWidget,
)

X_MODES = {"step": "Step", "chars": "Characters", "time": "Wall time"}


class CurveControls(QWidget):
    """Named controls only; the slider and the spin box show one smoothing weight."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.smooth_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.smooth_slider.setRange(0, 99)
        self.smooth_slider.setToolTip("Debiased exponential moving average of the training curves, "
                                      "drawn over the raw values (0: raw only). Validation points "
                                      "are never smoothed.")
        self.smooth_spin = QDoubleSpinBox(self)
        self.smooth_spin.setRange(0.0, 0.99)
        self.smooth_spin.setSingleStep(0.05)
        self.smooth_spin.setDecimals(2)
        self.smooth_spin.setToolTip(self.smooth_slider.toolTip())
        self.smooth_slider.valueChanged.connect(lambda v: self.smooth_spin.setValue(v / 100))
        self.x_axis = QComboBox(self)
        for mode, text in X_MODES.items():
            self.x_axis.addItem(text, mode)
        self.x_axis.setToolTip("Horizontal axis: optimisation step, characters seen "
                               "(step × batch × sequence length) or the run's wall time")
        self.log_y = QCheckBox("Log y", self)
        self.log_y.setToolTip("Logarithmic vertical axes (values ≤ 0 are left out)")
        self.fit_button = QPushButton("Fit", self)
        self.fit_button.setToolTip("Fit the view to the curves and follow new points again "
                                   "(or double-click a plot)")

        controls = QHBoxLayout(self)
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(QLabel("Smoothing", self))
        controls.addWidget(self.smooth_slider, 1)
        controls.addWidget(self.smooth_spin)
        controls.addSpacing(12)
        controls.addWidget(QLabel("x", self))
        controls.addWidget(self.x_axis)
        controls.addWidget(self.log_y)
        controls.addWidget(self.fit_button)
        self.smooth_spin.valueChanged.connect(self._show_weight)

    def _show_weight(self, weight: float) -> None:
        self.smooth_slider.blockSignals(True)
        self.smooth_slider.setValue(round(weight * 100))
        self.smooth_slider.blockSignals(False)
