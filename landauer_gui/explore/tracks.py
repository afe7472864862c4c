"""Surprise and motion along the text, linked to the text pane's cursor.

Two stacked plots share the x axis (character position). A vertical line
follows the hovered character, a solid one the selected character; clicking a
plot selects the character under the click. The x range follows the part of
the text on screen, so each character stays distinguishable also in a
megabyte (curves are clipped to the view and peak-downsampled).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from landauer_gui.explore.colours import robust_high
from landauer_gui.explore.plot_cache import cache_axes, follow_window

CURSOR_PEN = pg.mkPen(20, 20, 20, width=1.5)
HOVER_PEN = pg.mkPen(60, 110, 220, width=1, style=Qt.PenStyle.DashLine)


class TrackPlots(QWidget):
    """``position_clicked(i)`` when a plot is clicked at character ``i``."""

    position_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setAntialiasing(False)
        self.canvas.ci.setContentsMargins(2, 2, 2, 2)
        self.surprise_plot = self.canvas.addPlot(row=0, col=0)
        self.motion_plot = self.canvas.addPlot(row=1, col=0)
        self.motion_plot.setXLink(self.surprise_plot)
        self.surprise_plot.setLabel("left", "surprise", units="bits")
        self.motion_plot.setLabel("left", "motion")
        self.motion_plot.setLabel("bottom", "character")
        self.surprise_plot.getAxis("bottom").setStyle(showValues=False)
        self.plots = (self.surprise_plot, self.motion_plot)
        self.curves = []
        self.cursor_lines = []
        self.hover_lines = []
        self.bands = []
        for plot, colour in zip(self.plots, ((200, 60, 40), (60, 120, 60)), strict=True):
            plot.setMenuEnabled(False)
            plot.disableAutoRange()  # ranges are set explicitly: no bounds search over a megabyte
            plot.hideButtons()
            plot.setMouseEnabled(x=True, y=False)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.getAxis("left").setWidth(52)
            curve = plot.plot([], [], pen=pg.mkPen(colour, width=1), antialias=False)
            band = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(40, 100, 230, 22), pen=pg.mkPen(None))
            band.hide()
            plot.addItem(band, ignoreBounds=True)
            self.bands.append(band)
            cursor = pg.InfiniteLine(angle=90, movable=False, pen=CURSOR_PEN)
            hover = pg.InfiniteLine(angle=90, movable=False, pen=HOVER_PEN)
            for line in (cursor, hover):
                line.hide()
                plot.addItem(line, ignoreBounds=True)
            self.curves.append(curve)
            self.cursor_lines.append(cursor)
            self.hover_lines.append(hover)
        cache_axes(*self.plots)
        self.canvas.scene().sigMouseClicked.connect(self._on_click)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self._n = 0

    def set_tracks(self, surprise_bits: np.ndarray, motion: np.ndarray,
                   first: int = 0, last: int = 0) -> None:
        """Per-character series (length n; NaN where a character has no value).

        ``[first, last)`` is the part of the text on screen. The ranges are set
        before the data, so pyqtgraph clips a megabyte to the view once rather
        than after every range change.
        """
        self._n = len(surprise_bits)
        self.show_range(first, max(last, first + 1))
        for plot, y in zip(self.plots, (surprise_bits, motion), strict=True):
            plot.setYRange(0, max(1.1 * robust_high(y, 99.5), 1e-6), padding=0)
        x = np.arange(self._n, dtype=np.float64)
        for curve, y in zip(self.curves, (surprise_bits, motion), strict=True):
            curve.setData(x, np.asarray(y, dtype=np.float64), connect="finite", skipFiniteCheck=True)

    def clear(self) -> None:
        self._n = 0
        for curve in self.curves:
            curve.setData([], [])
        for line in self.cursor_lines + self.hover_lines + self.bands:
            line.hide()

    def show_range(self, first: int, last: int) -> None:
        """Mark characters ``[first, last)`` (the text pane's visible part) and keep them in view."""
        if last <= first:
            return
        for band in self.bands:
            band.setRegion((first - 0.5, last - 0.5))
            band.show()
        window = follow_window(*self.x_range(), first, last, self._n)
        if window is not None:
            self.surprise_plot.setXRange(*window, padding=0)

    def x_range(self) -> tuple[float, float]:
        lo, hi = self.surprise_plot.viewRange()[0]
        return float(lo), float(hi)

    def set_cursor(self, index: int) -> None:
        for line in self.cursor_lines:
            line.setVisible(index >= 0)
            if index >= 0:
                line.setValue(index)

    def set_hover(self, index: int) -> None:
        for line in self.hover_lines:
            line.setVisible(index >= 0)
            if index >= 0:
                line.setValue(index)

    def cursor_position(self) -> int:
        line = self.cursor_lines[0]
        return int(round(line.value())) if line.isVisible() else -1

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._n == 0:
            return
        for plot in self.plots:
            vb = plot.getViewBox()
            if vb.sceneBoundingRect().contains(event.scenePos()):
                i = int(round(vb.mapSceneToView(event.scenePos()).x()))
                self.position_clicked.emit(int(np.clip(i, 0, self._n - 1)))
                return
