"""pyqtgraph pieces of the curves: colours, the log-aware y axis and the min-max band."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from landauer_gui.curve_data import log_safe

BAND_ALPHA = 50  # the min-max band of decimated points

TRAIN_PENS = ["#1f77b4", "#9467bd", "#8c564b"]
VAL_PENS = ["#ff7f0e", "#d62728", "#e377c2"]
MARKER_PEN = pg.mkPen("#2ca02c", width=1.5, style=Qt.PenStyle.DashLine)


class ValueAxis(pg.AxisItem):
    """A y axis whose log mode labels only 1, 2 and 5 of each decade (pyqtgraph labels all of
    2..9 or none, and they overlap when a plot spans about one decade)."""

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph override)
        strings = super().logTickStrings(values, scale, spacing)
        return [s if round(10 ** (v - math.floor(v)), 6) in (1, 2, 5) else ""
                for v, s in zip(values, strings, strict=True)]


class Band:
    """A min-max band behind a train line: two invisible curves and the fill between them."""

    def __init__(self, plot: pg.PlotItem, color: str):
        self.lo = pg.PlotCurveItem(pen=None, connect="finite")
        self.hi = pg.PlotCurveItem(pen=None, connect="finite")
        for c in (self.lo, self.hi):
            c.setZValue(-2)
            plot.addItem(c)  # in the plot so that fitting the view includes the extremes
        rgb = pg.mkColor(color)
        rgb.setAlpha(BAND_ALPHA)
        self.fill = pg.FillBetweenItem(self.lo, self.hi, brush=pg.mkBrush(rgb))
        plot.addItem(self.fill)

    def set(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, log: bool) -> None:
        if log:
            lo, hi = (np.log10(log_safe(v, True)) for v in (lo, hi))
        self.lo.setData(x, lo)
        self.hi.setData(x, hi)

    def setVisible(self, on: bool) -> None:  # noqa: N802 (mirrors Qt)
        for item in (self.lo, self.hi, self.fill):
            item.setVisible(on)

    def isVisible(self) -> bool:  # noqa: N802 (mirrors Qt)
        return self.fill.isVisible()
