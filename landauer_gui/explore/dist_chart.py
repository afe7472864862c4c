"""The whole next-character distribution at one position, raw and as the sampler would reshape it.

Two bar series share each character's slot: the model's raw probability
(blue, the actual next character in red) and the distribution sampling with
the view's temperature and top-k would draw from (orange). Clicking a bar asks
to branch: continue the text from this position with that character instead.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from core.distribution import sampling_distribution
from landauer_gui.explore.plot_cache import cache_axes

RAW_BRUSH = pg.mkBrush(90, 130, 200)
ACTUAL_BRUSH = pg.mkBrush(215, 50, 50)
SHAPED_BRUSH = pg.mkBrush(245, 150, 40, 200)
Y_CEILINGS = (0.1, 0.25, 0.5, 1.0)
_SHOW = {"\n": "↵", " ": "␣", "\t": "→", "\r": "␍"}


def shown_char(ch: str) -> str:
    """A visible stand-in for whitespace and control characters."""
    if ch in _SHOW:
        return _SHOW[ch]
    return ch if ch.isprintable() else f"\\x{ord(ch):02x}"


class DistributionChart(QWidget):
    """Bar chart of ``probs (V,)``; ``char_clicked(id)`` when a character's bars are clicked."""

    char_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.caption = QLabel("Hover or click a character to see what the model expected there.")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        # A fixed height: a caption that changed its line count on every hover would re-lay out
        # (and repaint) the whole view each time.
        self.caption.setFixedHeight(2 * self.caption.fontMetrics().lineSpacing() + 4)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setAntialiasing(False)  # axis-aligned bars: antialiasing only costs time
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("left", "probability")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.showGrid(y=True, alpha=0.2)
        self.plot.setYRange(0, 1.0, padding=0.02)
        legend = self.plot.addLegend(offset=(-8, 6), labelTextSize="8pt")
        self.raw_bars = pg.BarGraphItem(x=[], height=[], width=0.42, brush=RAW_BRUSH, pen=None, name="model")
        self.shaped_bars = pg.BarGraphItem(x=[], height=[], width=0.42, brush=SHAPED_BRUSH, pen=None,
                                           name="as sampled")
        self.plot.addItem(self.raw_bars)
        self.plot.addItem(self.shaped_bars)
        legend.addItem(pg.BarGraphItem(x=[0], height=[0], width=1, brush=ACTUAL_BRUSH), "actual")
        cache_axes(self.plot.getPlotItem())
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot, 1)
        self._probs = np.zeros(0)
        self._shaped = np.zeros(0)
        self._order = np.zeros(0, dtype=np.int64)  # slot -> character id
        self._actual = -1
        self._itos: dict[int, str] = {}


    def clear(self) -> None:
        """No bars (the slots and their labels stay)."""
        self._probs = np.zeros(0)
        self._shaped = np.zeros(0)
        self._actual = -1
        self.raw_bars.setOpts(x=[], height=[], brushes=None)
        self.shaped_bars.setOpts(x=[], height=[])

    def show_distribution(self, probs: np.ndarray, itos: dict[int, str], actual: int,
                          temperature: float, top_k: int, caption: str = "") -> None:
        """Draw ``probs``; ``actual`` is the id of the character that really came next (-1: none)."""
        self._probs = np.asarray(probs, dtype=np.float64)
        self._shaped = sampling_distribution(self._probs, temperature, top_k)
        self._actual = int(actual)
        self._itos = itos
        v = len(self._probs)
        if len(self._order) != v:
            self.set_order(np.arange(v), itos)
        slots = np.arange(v, dtype=np.float64)
        brushes = [ACTUAL_BRUSH if int(c) == self._actual else RAW_BRUSH for c in self._order]
        self.raw_bars.setOpts(x=slots - 0.21, height=self._probs[self._order], brushes=brushes)
        self.shaped_bars.setOpts(x=slots + 0.21, height=self._shaped[self._order])
        top = max(float(self._probs.max(initial=0)), float(self._shaped.max(initial=0)))
        ceiling = next(c for c in Y_CEILINGS if top <= c)  # a few fixed ranges: the axis seldom redraws
        if self.plot.viewRange()[1][1] != ceiling:
            self.plot.setYRange(0, ceiling, padding=0)
        if caption:
            self.caption.setText(caption)

    def set_order(self, order: np.ndarray, itos: dict[int, str]) -> None:
        """Which character sits in which slot, left to right (fixed while hovering).

        One order for a whole text (the view uses the characters' mean predicted
        probability, so the usual favourites are on the left) keeps every bar in
        its place as the mouse moves, so distributions compare at a glance, and
        the axis labels are drawn once instead of on every hover.
        """
        self._order = np.asarray(order, dtype=np.int64)
        self._itos = itos
        ticks = [(float(s), shown_char(itos.get(int(c), "?"))) for s, c in enumerate(self._order)]
        self.plot.getAxis("bottom").setTicks([ticks])
        self.plot.setXRange(-0.7, len(self._order) - 0.3, padding=0)

    def heights(self) -> np.ndarray:
        """The raw bars' heights in vocabulary order (what the chart shows)."""
        return self._probs.copy()

    def shaped_heights(self) -> np.ndarray:
        return self._shaped.copy()

    def bar_count(self) -> int:
        return len(self._order)

    def actual(self) -> int:
        return self._actual

    def marked_slots(self) -> list[int]:
        """Slots drawn in the 'actual' colour (exactly one when a next character exists)."""
        brushes = self.raw_bars.opts.get("brushes") or []
        return [i for i, b in enumerate(brushes) if b is ACTUAL_BRUSH]

    def slot_of(self, char_id: int) -> int:
        hits = np.flatnonzero(self._order == int(char_id))
        return int(hits[0]) if hits.size else -1

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not len(self._order):
            return
        vb = self.plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        x = vb.mapSceneToView(event.scenePos()).x()
        slot = int(round(x))
        if 0 <= slot < len(self._order):
            self.char_clicked.emit(int(self._order[slot]))
