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


WINDOW_PAGES = 4  # a character plot's x range spans this many screens of text, so scrolling rarely moves it


def follow_window(lo: float, hi: float, first: int, last: int, n: int) -> tuple[float, float] | None:
    """The x range a character plot showing ``[lo, hi]`` of ``n`` characters should move to so that
    the text pane's ``[first, last)`` stays in view, or None to leave it: it moves only when those
    characters near an edge (or the range has grown far wider than a window)."""
    span = last - first
    width = min(WINDOW_PAGES * span, max(n, span))  # a short text is shown whole
    if max(0, first - span // 2) < lo or min(n, last + span // 2) > hi or hi - lo > 2 * width:
        start = max(0, min(first - (width - span) // 2, n - width))
        return start - 0.5, start + width - 0.5
    return None
