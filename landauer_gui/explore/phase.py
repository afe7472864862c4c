"""Each layer's rotation angles at one character, drawn as points on a circle per layer.

Unit ``j`` of layer ``l`` reads its input through the angle
``(phase_l * j + h_prev) mod 2pi`` (:func:`core.analysis.phase_angles`). Drawn
at that angle, the golden-angle spacing of the units and the slower turn of
the deeper layers are visible at a glance; points are coloured by the unit's
activation. "Spread by unit" puts unit ``j`` at radius ``sqrt(j / H)``, which
turns the golden angle into a sunflower. Hovering along the text asks for a
redraw per character, so the circles redraw only while they are on screen.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from landauer_gui.explore.colours import ColourScale
from landauer_gui.explore.dist_chart import shown_char

GOLDEN_DEG = 180.0 * (3.0 - 5.0 ** 0.5)  # 137.5 degrees
LEVELS = 21  # activation colours are quantised, so pyqtgraph renders each symbol once, not per unit


class PhaseCircles(QWidget):
    """One circle per layer; :meth:`show_angles` redraws them for one character."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.spread = QCheckBox("Spread by unit")
        self.spread.setToolTip("Place unit j at radius √(j/H): the golden angle becomes a sunflower")
        self.spread.setChecked(True)
        self.spread.toggled.connect(self._redraw)
        self.caption = QLabel("Hover or click a character to see each layer's phase.")
        top = QHBoxLayout()
        top.addWidget(self.caption, 1)
        top.addWidget(self.spread)
        self.canvas = pg.GraphicsLayoutWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.canvas, 1)
        self._boxes: list[pg.PlotItem] = []
        self._references: list[pg.ScatterPlotItem] = []
        self._scatters: list[pg.ScatterPlotItem] = []
        self._last: tuple | None = None
        self._stale = False
        self._titles: list[str] = []
        self._brushes: tuple[ColourScale | None, list] = (None, [])

    def set_layers(self, titles: list[str]) -> None:
        """One circle per layer (titles such as 'layer 1 · 68.8°/unit'), made when first shown."""
        self._last = None
        self._titles = list(titles)
        for scatter in self._scatters + self._references:
            scatter.clear()
        if self.isVisible():
            self._make_circles()

    def _make_circles(self) -> None:
        titles = self._titles
        if titles == [b.titleLabel.text for b in self._boxes]:
            return
        self.canvas.clear()
        self._boxes, self._scatters, self._references = [], [], []
        theta = np.linspace(0, 2 * np.pi, 181)
        for col, title in enumerate(titles):
            plot = self.canvas.addPlot(row=0, col=col, title=title)
            plot.setAspectLocked(True)
            plot.hideAxis("left")
            plot.hideAxis("bottom")
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.setMouseEnabled(x=False, y=False)
            plot.plot(np.cos(theta), np.sin(theta), pen=pg.mkPen(180, 180, 180))
            plot.plot([0, 1.08], [0, 0], pen=pg.mkPen(200, 200, 200, style=pg.QtCore.Qt.PenStyle.DotLine))
            reference = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(170, 170, 170, 150))
            plot.addItem(reference)
            scatter = pg.ScatterPlotItem(size=6, pen=pg.mkPen(80, 80, 80, 120))
            plot.addItem(scatter)
            self._references.append(reference)
            plot.setRange(xRange=(-1.12, 1.12), yRange=(-1.12, 1.12), padding=0)
            self._boxes.append(plot)
            self._scatters.append(scatter)
        self._stale = self._last is not None

    def layer_count(self) -> int:
        return len(self._titles)

    def set_model_layers(self, config) -> None:
        """One circle per layer of a model with ``config``, titled by its rotation per unit."""
        self.set_layers([f"layer {layer} · {GOLDEN_DEG / config.phase_scaling ** layer:.1f}°/unit"
                         for layer in range(config.num_layers)])

    def show_character(self, model, hidden: np.ndarray, text: str, i: int, scale: ColourScale) -> None:
        """Every unit's phase while ``model`` reads ``text[i]`` (``hidden``: layers × chars × units)."""
        if i >= hidden.shape[1] or self.layer_count() != hidden.shape[0]:
            return
        from core.analysis import phase_angles  # torch is loaded by now (the analysis used it)

        angles = phase_angles(model, hidden, i)
        reference = phase_angles(model, hidden, 0)  # position 0 reads from a zero state
        caption = (f"Phase of every unit while reading “{shown_char(text[i])}” (character {i:,}); colour: "
                   "the unit's state after it; grey: where a zero state would put it")
        self.show_angles(angles, hidden[:, i, :], scale, caption, reference=reference)

    def show_angles(self, angles: np.ndarray, activations: np.ndarray, scale: ColourScale,
                    caption: str, reference: np.ndarray | None = None) -> None:
        """``angles (L, H)`` in radians and ``activations (L, H)`` for one character.

        ``reference (L, H)``, the angles from a zero state (``phase_l * j``), is
        drawn as small grey points: how far the state turned each unit.
        """
        self._last = (np.asarray(angles), np.asarray(activations), scale, [caption], reference)
        self._stale = True
        if self.isVisible():
            self._redraw()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        self._make_circles()
        if self._stale:
            self._redraw()

    def _brush_list(self, scale: ColourScale) -> list:
        if self._brushes[0] is not scale:
            values = np.linspace(-scale.high, scale.high, LEVELS)
            self._brushes = (scale, [pg.mkBrush(*(int(c) for c in rgb)) for rgb in scale.rgb(values)])
        return self._brushes[1]

    def points(self, layer: int) -> np.ndarray:
        """The drawn ``(H, 2)`` positions of ``layer``'s units (once the circles were on screen)."""
        x, y = self._scatters[layer].getData()
        return np.stack([x, y], axis=1)

    def _redraw(self, *_args) -> None:
        if self._last is None:
            return
        angles, acts, scale, (caption,), reference = self._last
        self._stale = False
        self.caption.setText(caption)
        palette = self._brush_list(scale)
        for layer, scatter in enumerate(self._scatters[: len(angles)]):
            a = angles[layer].astype(np.float64)
            h = len(a)
            r = np.sqrt((np.arange(h) + 0.5) / h) if self.spread.isChecked() else np.ones(h)
            level = np.clip(np.rint((acts[layer] / scale.high + 1) * (LEVELS - 1) / 2), 0, LEVELS - 1)
            brushes = [palette[int(k)] for k in level]
            scatter.setData(r * np.cos(a), r * np.sin(a), brush=brushes)
            if reference is not None:
                base = reference[layer].astype(np.float64)
                self._references[layer].setData(r * np.cos(base), r * np.sin(base))
