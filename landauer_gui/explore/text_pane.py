"""A read-only text pane that colours each character's cell, painting only the visible rows.

A megabyte of text in a QTextDocument with a format per character takes
seconds to build on the UI thread. This pane keeps the text as a Python string
plus numpy arrays of line starts, lays it out in fixed-width cells (monospaced
font, soft-wrapped at the viewport's width) with a few vectorised operations,
and on each paint colours only the characters on screen. Scrolling, hovering
and recolouring therefore cost the same for 100 characters or 1 MB.

Character ``i`` gets the colour of ``values[i]`` under the current
:class:`~landauer_gui.explore.colours.ColourScale`; a newline is drawn as a
faint ``↵`` cell so its own surprise is visible too.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QFontMetrics,
    QFontMetricsF,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
)
from PySide6.QtWidgets import QAbstractScrollArea, QWidget

from landauer_gui.explore.colours import DARK_LUMA, ColourScale, luma

_SHOWN = {i: "·" for i in range(32)} | {9: "→", 13: "␍", 10: "↵", 127: "·"}
_NEWLINE_PEN = QColor(150, 150, 150)
_CURSOR_PEN = QColor(20, 20, 20)
_HOVER_PEN = QColor(60, 110, 220)
_SELECTION = QColor(40, 100, 230, 70)
_MARK_PEN = QColor(200, 30, 120)
MARGIN = 6
# The screen's native pixel layout (no conversion when blitting): B, G, R, A bytes on
# little-endian machines; cells are opaque or fully transparent, so premultiplying is a no-op.
if sys.byteorder == "little":
    _PIXELS, _RGB = QImage.Format.Format_ARGB32_Premultiplied, slice(2, None, -1)
else:
    _PIXELS, _RGB = QImage.Format.Format_RGBA8888_Premultiplied, slice(0, 3)


def newline_positions(text: str) -> np.ndarray:
    """Indices of every ``\\n`` in ``text`` (one vectorised pass, also for megabytes)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.flatnonzero(codes == 10)


class CharPane(QAbstractScrollArea):
    """Coloured characters in cells; hover, click, drag-select and arrow keys report positions."""

    hovered = Signal(int)  # character under the mouse, -1 when none
    cursor_moved = Signal(int)  # the selected (clicked / keyed) character
    selection_changed = Signal(int, int)  # [start, end) of the dragged span; end == start when none
    visible_range_changed = Signal(int, int)  # [first, last) characters on screen

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        # Whole-pixel cells: a glyph advance of e.g. 7.8 px would make a row drawn as one
        # string drift away from its cells, so the spacing pads each advance to the cell.
        advance = QFontMetricsF(font).horizontalAdvance("M")
        self.cell_w = max(1, math.ceil(advance - 1e-3))
        font.setLetterSpacing(QFont.SpacingType.AbsoluteSpacing, self.cell_w - advance)
        self.viewport().setFont(font)
        self.setFont(font)
        fm = QFontMetrics(font)
        self.cell_h = fm.height() + 3
        self._ascent = fm.ascent() + 1
        self.viewport().setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self._text = ""
        self._starts = np.zeros(1, dtype=np.int64)
        self._ends = np.zeros(1, dtype=np.int64)  # exclusive; the newline (if any) sits at ends[i]
        self._row_start = np.zeros(1, dtype=np.int64)  # first visual row of each line
        self._cols = 80
        self._total_rows = 1
        self._values: np.ndarray | None = None
        self._scale: ColourScale | None = None
        self._cursor = -1
        self._hover = -1
        self._anchor = -1
        self._sel = (0, 0)
        self._marks: set[int] = set()
        self._last_visible = (-1, -1)
        self.set_text("")

    # --- content --------------------------------------------------------------------

    def text(self) -> str:
        return self._text

    def set_text(self, text: str, values: np.ndarray | None = None,
                 scale: ColourScale | None = None, newlines: np.ndarray | None = None) -> None:
        """Show ``text`` (coloured by ``values (len(text),)`` under ``scale``, if given).

        ``newlines`` (:func:`newline_positions` of the text) may be computed on a
        worker thread beforehand; for a megabyte that saves ~50 ms here.
        """
        self._text = text
        nl = newline_positions(text) if newlines is None else newlines
        self._starts = np.concatenate([[0], nl + 1]).astype(np.int64)
        self._ends = np.concatenate([nl, [len(text)]]).astype(np.int64)
        self._cursor = -1
        self._hover = -1
        self._anchor = -1
        self._sel = (0, 0)
        self._marks = set()
        self.set_colouring(values, scale)
        self._relayout(keep=0)

    def set_colouring(self, values: np.ndarray | None, scale: ColourScale | None) -> None:
        """Recolour without re-laying out; ``None`` shows the text uncoloured."""
        if values is not None and len(values) != len(self._text):
            raise ValueError(f"{len(values)} values for {len(self._text)} characters")
        self._values = None if values is None else np.asarray(values, dtype=np.float64)
        self._scale = scale if values is not None else None
        self.viewport().update()

    def scale(self) -> ColourScale | None:
        return self._scale

    def set_marks(self, positions: set[int] | list[int]) -> None:
        """Outline these characters (e.g. where a branch departs from the text)."""
        self._marks = set(int(p) for p in positions)
        self.viewport().update()

    # --- layout ---------------------------------------------------------------------

    def columns(self) -> int:
        return self._cols

    def total_rows(self) -> int:
        return self._total_rows

    def _visible_rows(self) -> int:
        return max(1, (self.viewport().height() - MARGIN) // self.cell_h)

    def _relayout(self, keep: int | None = None) -> None:
        if keep is None:
            keep = self.first_visible_char()
        width = self.viewport().width() - 2 * MARGIN
        self._cols = max(8, width // self.cell_w - 1)  # one spare cell for a newline's mark
        lengths = self._ends - self._starts
        rows = np.maximum(1, -(-lengths // self._cols))
        self._row_start = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
        self._total_rows = int(rows.sum())
        bar = self.verticalScrollBar()
        page = self._visible_rows()
        bar.setRange(0, max(0, self._total_rows - page))
        bar.setPageStep(page)
        bar.setSingleStep(1)
        bar.setValue(self.row_of(keep)[0] if self._text else 0)
        self.viewport().update()
        self._emit_visible()

    def row_of(self, index: int) -> tuple[int, int]:
        """``(visual row, column)`` of character ``index``."""
        if not self._text:
            return 0, 0
        index = int(np.clip(index, 0, len(self._text) - 1))
        line = int(np.searchsorted(self._starts, index, side="right")) - 1
        off = index - int(self._starts[line])
        length = int(self._ends[line] - self._starts[line])
        rows = max(1, -(-length // self._cols))
        r = min(off // self._cols, rows - 1)
        return int(self._row_start[line]) + r, off - r * self._cols

    def row_span(self, row: int) -> tuple[int, int, bool]:
        """Characters ``[a, b)`` on visual ``row``, and whether a newline follows at ``b``."""
        line = int(np.searchsorted(self._row_start, row, side="right")) - 1
        line = max(0, min(line, len(self._starts) - 1))
        a = int(self._starts[line]) + (row - int(self._row_start[line])) * self._cols
        end = int(self._ends[line])
        b = min(a + self._cols, end)
        return a, b, b == end and end < len(self._text)

    def index_at(self, pos: QPoint) -> int:
        """The character under a viewport point, or -1."""
        if not self._text:
            return -1
        row = self.verticalScrollBar().value() + (pos.y() - MARGIN) // self.cell_h
        if pos.y() < MARGIN or row >= self._total_rows:
            return -1
        col = (pos.x() - MARGIN) // self.cell_w
        a, b, newline = self.row_span(row)
        if col < 0:
            return -1
        if a + col < b:
            return a + col
        if newline and a + col == b:
            return b
        return -1

    def first_visible_char(self) -> int:
        if not self._text:
            return 0
        return self.row_span(self.verticalScrollBar().value())[0]

    def visible_range(self) -> tuple[int, int]:
        """``[first, last)`` characters on screen."""
        if not self._text:
            return 0, 0
        top = self.verticalScrollBar().value()
        last_row = min(self._total_rows - 1, top + self._visible_rows() - 1)
        a = self.row_span(top)[0]
        b, nl = self.row_span(last_row)[1:]
        return a, min(len(self._text), b + (1 if nl else 0))

    def ensure_visible(self, index: int) -> None:
        row = self.row_of(index)[0]
        bar = self.verticalScrollBar()
        page = self._visible_rows()
        if row < bar.value():
            bar.setValue(max(0, row - page // 3))
        elif row >= bar.value() + page:
            bar.setValue(row - 2 * page // 3)

    def cell_rect(self, index: int) -> QRect:
        """Where character ``index`` is drawn, in viewport coordinates."""
        row, col = self.row_of(index)
        y = MARGIN + (row - self.verticalScrollBar().value()) * self.cell_h
        return QRect(MARGIN + col * self.cell_w, y, self.cell_w, self.cell_h)

    def _on_scrolled(self, _value: int) -> None:
        self.viewport().update()
        self._emit_visible()

    def _emit_visible(self) -> None:
        vr = self.visible_range()
        if vr != self._last_visible:
            self._last_visible = vr
            self.visible_range_changed.emit(*vr)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._relayout()

    # --- cursor and selection ---------------------------------------------------------

    def cursor(self) -> int:
        return self._cursor

    def selection(self) -> tuple[int, int]:
        return self._sel

    def set_cursor(self, index: int, *, scroll: bool = True) -> None:
        if not self._text:
            return
        index = int(np.clip(index, 0, len(self._text) - 1))
        changed = index != self._cursor
        self._cursor = index
        if scroll:
            self.ensure_visible(index)
        self.viewport().update()
        if changed:
            self.cursor_moved.emit(index)

    def set_selection(self, start: int, end: int) -> None:
        n = len(self._text)
        start, end = sorted((int(np.clip(start, 0, n)), int(np.clip(end, 0, n))))
        if (start, end) != self._sel:
            self._sel = (start, end)
            self.viewport().update()
            self.selection_changed.emit(start, end)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        i = self.index_at(event.position().toPoint())
        if i < 0:
            return
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier and self._cursor >= 0:
            self._anchor = self._anchor if self._anchor >= 0 else self._cursor
            self.set_selection(self._anchor, i + 1)
        else:
            self._anchor = i
            self.set_selection(i, i)
        self.set_cursor(i, scroll=False)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        i = self.index_at(event.position().toPoint())
        if event.buttons() & Qt.MouseButton.LeftButton and self._anchor >= 0 and i >= 0:
            lo, hi = sorted((self._anchor, i))
            self.set_selection(lo, hi + 1)
            self.set_cursor(i, scroll=False)
        if i != self._hover:
            self._hover = i
            self.viewport().update()
            self.hovered.emit(i)

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self._hover != -1:
            self._hover = -1
            self.viewport().update()
            self.hovered.emit(-1)
        super().leaveEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        if not self._text:
            return super().keyPressEvent(event)
        key = event.key()
        cur = max(0, self._cursor)
        step = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1,
                Qt.Key.Key_Up: -self._cols, Qt.Key.Key_Down: self._cols}.get(key)
        if step is None:
            return super().keyPressEvent(event)
        target = int(np.clip(cur + step, 0, len(self._text) - 1))
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            if self._anchor < 0:
                self._anchor = cur
            lo, hi = sorted((self._anchor, target))
            self.set_selection(lo, hi + 1)
        else:
            self._anchor = target
            self.set_selection(target, target)
        self.set_cursor(target)

    # --- painting ---------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self.viewport())
        p.fillRect(self.viewport().rect(), QColor(255, 255, 255))
        if not self._text:
            p.end()
            return
        top = self.verticalScrollBar().value()
        rows = min(self._visible_rows() + 1, self._total_rows - top)
        spans = [self.row_span(top + r) for r in range(rows)]
        first = spans[0][0]
        last = spans[-1][1] + 1
        colours = None
        if self._values is not None and self._scale is not None:
            colours = self._scale.rgb(self._values[first:last])
        cw, ch = self.cell_w, self.cell_h
        sel_a, sel_b = self._sel
        text_pen = QColor(20, 20, 20)
        white = QColor(255, 255, 255)
        dark = None
        if colours is not None:  # glyphs on dark cells are drawn white
            dark = luma(colours) < DARK_LUMA
        if colours is not None:  # all cell colours as one image, blitted in one call
            cells = np.zeros((len(spans), self._cols + 1, 4), dtype=np.uint8)
            for r, (a, b, newline) in enumerate(spans):
                stop = b + 1 if newline else b
                cells[r, : stop - a, _RGB] = colours[a - first:stop - first]
                cells[r, : stop - a, 3] = 255
            pixels = np.ascontiguousarray(np.repeat(np.repeat(cells, ch, axis=0), cw, axis=1))
            image = QImage(pixels.data, pixels.shape[1], pixels.shape[0], pixels.shape[1] * 4, _PIXELS)
            p.drawImage(MARGIN, MARGIN, image)
        for r, (a, b, newline) in enumerate(spans):
            y = MARGIN + r * ch
            stop = b + 1 if newline else b
            if sel_b > sel_a and sel_a < stop and sel_b > a:
                x0 = MARGIN + (max(sel_a, a) - a) * cw
                x1 = MARGIN + (min(sel_b, stop) - a) * cw
                p.fillRect(x0, y, x1 - x0, ch, _SELECTION)
            chunk = self._text[a:b].translate(_SHOWN)
            row_dark = np.flatnonzero(dark[a - first:b - first]) if dark is not None else ()
            if len(row_dark):
                chars = list(chunk)
                for k in row_dark:
                    chars[k] = " "
                chunk_light = "".join(chars)
            else:
                chunk_light = chunk
            p.setPen(text_pen)
            if chunk_light.isascii():
                p.drawText(MARGIN, y + self._ascent, chunk_light)
            else:  # glyphs from fallback fonts may be wider than a cell: one cell each
                for k, c in enumerate(chunk_light):
                    if c != " ":
                        p.drawText(MARGIN + k * cw, y + self._ascent, c)
            p.setPen(white)
            for k in row_dark:
                p.drawText(MARGIN + int(k) * cw, y + self._ascent, chunk[k])
            if newline:
                p.setPen(_NEWLINE_PEN)
                p.drawText(MARGIN + (b - a) * cw, y + self._ascent, "↵")
        for index, colour, width in ([(m, _MARK_PEN, 2) for m in self._marks if first <= m < last]
                                     + [(self._hover, _HOVER_PEN, 1), (self._cursor, _CURSOR_PEN, 2)]):
            if first <= index < last:
                p.setPen(QPen(colour, width))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRect(self.cell_rect(index).adjusted(0, 0, -1, -1))
        p.end()
