"""A one-line colour legend: the scale's title and a swatch per step or bucket."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from landauer_gui.explore.colours import ColourScale

SWATCH = 14
GAP = 8


class Legend(QWidget):
    """Draws :meth:`ColourScale.legend` as swatches with labels; empty when no scale is set."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._scale: ColourScale | None = None
        self._items: list[tuple[str, tuple[int, int, int]]] = []
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def set_scale(self, scale: ColourScale | None) -> None:
        self._scale = scale
        self._items = scale.legend() if scale is not None else []
        self.setToolTip(scale.title if scale is not None else "")
        self.updateGeometry()
        self.update()

    def entries(self) -> list[str]:
        """The labels shown (for tests and screen readers)."""
        return [label for label, _ in self._items]

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        fm = QFontMetrics(self.font())
        width = sum(SWATCH + 4 + fm.horizontalAdvance(label) + GAP for label, _ in self._items)
        if self._scale is not None:
            width += fm.horizontalAdvance(self._scale.title + ":") + GAP
        return QSize(width, max(SWATCH, fm.height()) + 4)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        if self._scale is None:
            return
        p = QPainter(self)
        fm = QFontMetrics(self.font())
        h = self.height()
        x = 0
        title = self._scale.title + ":"
        p.setPen(self.palette().color(self.foregroundRole()))
        p.drawText(QRect(x, 0, fm.horizontalAdvance(title) + 2, h), Qt.AlignmentFlag.AlignVCenter, title)
        x += fm.horizontalAdvance(title) + GAP
        for label, (r, g, b) in self._items:
            p.setPen(QPen(QColor(120, 120, 120)))
            p.setBrush(QColor(r, g, b))
            p.drawRect(x, (h - SWATCH) // 2, SWATCH, SWATCH)
            x += SWATCH + 4
            p.setPen(self.palette().color(self.foregroundRole()))
            w = fm.horizontalAdvance(label)
            p.drawText(QRect(x, 0, w + 2, h), Qt.AlignmentFlag.AlignVCenter, label)
            x += w + GAP
        p.end()
