"""Axes drawn from a pixmap: pyqtgraph replays each axis's labels (a QPicture of text) on every
repaint of its view, which costs milliseconds per axis; cached, a repaint that leaves an
axis unchanged (a moving cursor line, new bars) copies pixels instead."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem


def cache_axes(*plots: pg.PlotItem) -> None:
    for plot in plots:
        for name in ("left", "bottom", "right", "top"):
            axis = plot.getAxis(name)
            axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
