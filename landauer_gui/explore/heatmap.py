"""One layer's hidden units over the text as an image, and the units a selected span singles out.

x is the character position, y the unit; the colour is the unit's state
after reading that character (diverging: blue below 0, red above). Like the
text pane, the image holds only a window around the part of the text on
screen (a few thousand characters), so a long text costs no more to draw. A region
marks the selected span; :func:`core.analysis.rank_units` orders the units by
how differently they behave inside it, and clicking one in the list asks the
view to colour the text by that unit.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from landauer_gui.explore.colours import DIVERGING, ramp, robust_high
from landauer_gui.explore.plot_cache import cache_axes, follow_window

UNIT_ROLE = Qt.ItemDataRole.UserRole
MAX_LISTED = 40
MIN_WINDOW = 4096  # characters drawn at least; the image holds a window, not the whole text


def _lookup_table() -> np.ndarray:
    return ramp(DIVERGING, np.linspace(0, 1, 256)).astype(np.uint8)


class HiddenHeatmap(QWidget):
    """``layer_changed(l)``, ``unit_selected(layer, unit)``, ``position_clicked(i)``."""

    layer_changed = Signal(int)
    unit_selected = Signal(int, int)
    position_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.layer_box = QComboBox()
        self.layer_box.setToolTip("Which layer's units to show (layer 0 reads the characters; "
                                  "deeper layers rotate more slowly)")
        self.layer_box.currentIndexChanged.connect(self._on_layer)
        self.note = QLabel("")
        self.note.setStyleSheet("color: palette(placeholder-text);")
        top = QHBoxLayout()
        top.addWidget(QLabel("Layer"))
        top.addWidget(self.layer_box)
        top.addWidget(self.note, 1)

        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setAntialiasing(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=True, y=True)
        self.plot.setLabel("left", "unit")
        self.plot.setLabel("bottom", "character")
        self.plot.getAxis("left").setWidth(52)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setAutoDownsample(True)
        self.image.setLookupTable(_lookup_table())
        self.plot.addItem(self.image)
        self.region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(40, 100, 230, 40),
                                          pen=pg.mkPen(40, 100, 230, 160))
        self.region.hide()
        self.plot.addItem(self.region, ignoreBounds=True)
        self.cursor_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(20, 20, 20, width=1.5))
        self.cursor_line.hide()
        self.plot.addItem(self.cursor_line, ignoreBounds=True)
        self.unit_line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(200, 30, 120, width=1))
        self.unit_line.hide()
        self.plot.addItem(self.unit_line, ignoreBounds=True)
        cache_axes(self.plot.getPlotItem())
        self.plot.scene().sigMouseClicked.connect(self._on_click)

        self.units = QListWidget()
        self.units.setToolTip("Units whose activation differs most inside the selected span than "
                              "outside it (Cohen's d); click one to colour the text by it")
        self.units.currentItemChanged.connect(self._on_unit)
        self.units_caption = QLabel("Select a span of text to rank the units.")
        self.units_caption.setWordWrap(True)
        side = QWidget()
        side.setMinimumWidth(190)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.units_caption)
        side_layout.addWidget(self.units, 1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.plot)
        split.addWidget(side)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self._hidden: np.ndarray | None = None
        self._n_text = 0
        self._window = (0, 0)  # characters [a, b) in the image
        self._wanted = (0, MIN_WINDOW)
        self._level = 1.0

    # --- data ---------------------------------------------------------------------------

    def set_hidden(self, hidden: np.ndarray | None, n_text: int) -> None:
        """``hidden (L, m, H)`` for the first ``m`` characters of an ``n_text``-character text."""
        self._hidden = hidden
        self._n_text = n_text
        self.units.clear()
        self.region.hide()
        self.unit_line.hide()
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        if hidden is not None:
            for layer in range(hidden.shape[0]):
                self.layer_box.addItem(f"{layer}", layer)
        self.layer_box.blockSignals(False)
        if hidden is None:
            self.image.clear()
            self.note.setText("no states kept")
            return
        m = hidden.shape[1]
        self.note.setText("" if m >= n_text else
                          f"states kept for the first {m:,} of {n_text:,} characters")
        self._draw()

    def layer(self) -> int:
        return max(0, self.layer_box.currentIndex())

    def set_layer(self, layer: int) -> None:
        self.layer_box.setCurrentIndex(layer)

    def covered(self) -> int:
        """How many leading characters have states (0 when none)."""
        return 0 if self._hidden is None else self._hidden.shape[1]

    def _draw(self) -> None:
        if self._hidden is None:
            return
        states = self._hidden[self.layer()]  # (m, H)
        self._level = robust_high(states, absolute=True)
        self._window = (0, 0)
        self._fill(*self._wanted)
        self.plot.setYRange(-0.5, states.shape[1] - 0.5, padding=0)

    def _fill(self, first: int, last: int) -> None:
        """Put characters around ``[first, last)`` in the image, unless they are there already."""
        if self._hidden is None:
            return
        m = self._hidden.shape[1]
        a0, b0 = self._window
        if a0 <= max(0, first) and min(last, m) <= b0 and b0 > a0:
            return
        width = max(MIN_WINDOW, 4 * (last - first))
        a = max(0, min(first - width // 2, m - width))
        b = min(m, a + width)
        data = self._hidden[self.layer(), a:b].T  # (H, b-a): rows are units
        self.image.setImage(data, levels=(-self._level, self._level), autoLevels=False)
        self.image.setRect(a - 0.5, -0.5, b - a, data.shape[0])
        self._window = (a, b)

    def image_window(self) -> tuple[int, int]:
        """The characters ``[a, b)`` the image holds now."""
        return self._window

    def _on_layer(self, _index: int) -> None:
        self._draw()
        self.units.clear()
        self.unit_line.hide()
        self.layer_changed.emit(self.layer())

    # --- cursor, span, ranking -------------------------------------------------------------

    def set_cursor(self, index: int) -> None:
        self.cursor_line.setVisible(index >= 0)
        if index >= 0:
            self.cursor_line.setValue(index)

    def show_range(self, first: int, last: int) -> None:
        """Keep characters ``[first, last)`` in view (moving the x range only when they near its edge)."""
        if last <= first:
            return
        self._wanted = (first, last)
        self._fill(first, last)
        lo, hi = self.plot.viewRange()[0]
        window = follow_window(lo, hi, first, last, self._n_text)
        if window is not None:
            self.plot.setXRange(*window, padding=0)

    def show_span(self, start: int, end: int) -> None:
        self.region.setVisible(end > start)
        if end > start:
            self.region.setRegion((start - 0.5, end - 0.5))

    def set_ranking(self, units: np.ndarray, scores: np.ndarray, caption: str) -> None:
        """Fill the list with the top units (best first)."""
        self.units.blockSignals(True)
        self.units.clear()
        for unit, score in list(zip(units, scores, strict=True))[:MAX_LISTED]:
            item = QListWidgetItem(f"unit {int(unit):>4}   d = {float(score):+.2f}")
            item.setData(UNIT_ROLE, int(unit))
            item.setToolTip("higher inside the span" if score > 0 else "lower inside the span")
            self.units.addItem(item)
        self.units.blockSignals(False)
        self.units_caption.setText(caption)
        self.units_caption.setToolTip(caption)

    def ranked_units(self) -> list[int]:
        return [self.units.item(i).data(UNIT_ROLE) for i in range(self.units.count())]

    def select_unit(self, unit: int) -> None:
        for i in range(self.units.count()):
            if self.units.item(i).data(UNIT_ROLE) == unit:
                self.units.setCurrentRow(i)
                return

    def _on_unit(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is None:
            return
        unit = int(item.data(UNIT_ROLE))
        self.unit_line.setValue(unit)
        self.unit_line.show()
        self.unit_selected.emit(self.layer(), unit)

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._hidden is None:
            return
        vb = self.plot.getPlotItem().vb
        if vb.sceneBoundingRect().contains(event.scenePos()):
            i = int(round(vb.mapSceneToView(event.scenePos()).x()))
            if 0 <= i < self._hidden.shape[1]:
                self.position_clicked.emit(i)

    def export_png(self, path: str) -> None:
        """The heatmap (with its axes) as a PNG image."""
        if not self.plot.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
