"""The Explore view's pieces on their own: the paged text pane, colour scales, the bar chart."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from landauer_gui.explore.colours import rank_scale, surprise_scale
from landauer_gui.explore.dist_chart import DistributionChart
from landauer_gui.explore.text_pane import CharPane, newline_positions


@pytest.fixture
def pane(qtbot):
    p = CharPane()
    qtbot.addWidget(p)
    p.resize(420, 220)
    p.show()
    qtbot.waitExposed(p)
    return p


def test_newline_positions_handle_any_character():
    assert newline_positions("a\nbé\n\n😀\n").tolist() == [1, 4, 5, 7]
    assert newline_positions("").tolist() == []


def test_rank_buckets_follow_gltr():
    scale = rank_scale()
    colours = scale.rgb(np.array([1, 2, 5, 6, 20, 21, 500, np.nan]))
    as_tuples = [tuple(c) for c in colours]
    assert as_tuples[0] != as_tuples[1] and as_tuples[1] == as_tuples[2]
    assert as_tuples[3] == as_tuples[4] != as_tuples[5] == as_tuples[6]
    assert as_tuples[7] == (255, 255, 255)
    assert scale.legend()[0][0] == "top 1"


def test_layout_maps_positions_to_cells_and_back(pane):
    text = "first line\n" + "x" * 100 + "\n\nend"
    pane.set_text(text)
    cols = pane.columns()
    assert pane.total_rows() == 1 + -(-100 // cols) + 1 + 1
    for i in [0, 5, 10, 11, 11 + cols, len(text) - 1]:
        rect = pane.cell_rect(i)
        if pane.viewport().rect().contains(rect.center()):
            assert pane.index_at(rect.center()) == i
    assert pane.index_at(QPoint(2, 2)) == -1


def test_a_row_drawn_as_one_string_stays_on_its_cells(pane):
    """Glyph advances are padded to whole-pixel cells, so long rows do not drift off their colours."""
    from PySide6.QtGui import QFontMetricsF

    fm = QFontMetricsF(pane.viewport().font())
    for ch in "Mi .":
        assert abs(fm.horizontalAdvance(ch * 120) - 120 * pane.cell_w) < 1.0


def test_click_drag_and_keys_move_cursor_and_selection(qtbot, pane):
    pane.set_text("hello world\nsecond line")
    moved = []
    pane.cursor_moved.connect(moved.append)
    qtbot.mouseClick(pane.viewport(), Qt.MouseButton.LeftButton, pos=pane.cell_rect(4).center())
    assert pane.cursor() == 4 and moved[-1] == 4
    qtbot.mousePress(pane.viewport(), Qt.MouseButton.LeftButton, pos=pane.cell_rect(6).center())
    qtbot.mouseMove(pane.viewport(), pane.cell_rect(10).center())
    qtbot.mouseRelease(pane.viewport(), Qt.MouseButton.LeftButton, pos=pane.cell_rect(10).center())
    assert pane.selection() == (6, 11)
    qtbot.keyClick(pane, Qt.Key.Key_Right)
    assert pane.cursor() == 11 and pane.selection() == (11, 11)


def test_only_visible_rows_are_painted_in_their_colours(qtbot, pane):
    text = ("the quick brown fox\n" * 50_000)  # a megabyte
    values = np.linspace(0.0, 8.0, len(text))
    scale = surprise_scale(values * np.log(2.0))
    pane.set_text(text, values, scale)
    pane.verticalScrollBar().setValue(pane.verticalScrollBar().maximum())
    first, last = pane.visible_range()
    assert last == len(text) and first > len(text) - 2000
    i = last - 5
    image = pane.viewport().grab().toImage()
    corner = pane.cell_rect(i).topLeft() + QPoint(1, 1)
    ratio = image.width() / pane.viewport().width()
    got = image.pixelColor(int(corner.x() * ratio), int(corner.y() * ratio))
    want = scale.rgb(values[i:i + 1])[0]
    assert (got.red(), got.green(), got.blue()) == tuple(int(c) for c in want)


def test_chart_shows_every_character_marks_the_actual_one_and_reports_clicks(qtbot):
    chart = DistributionChart()
    qtbot.addWidget(chart)
    chart.resize(600, 300)
    chart.show()
    qtbot.waitExposed(chart)
    itos = dict(enumerate("abcdefgh"))
    probs = np.array([0.04, 0.4, 0.12, 0.2, 0.05, 0.1, 0.06, 0.03])
    chart.show_distribution(probs, itos, actual=3, temperature=0.5, top_k=3)
    assert chart.bar_count() == 8
    assert chart.marked_slots() == [chart.slot_of(3)]
    np.testing.assert_allclose(chart.heights(), probs)
    assert np.count_nonzero(chart.shaped_heights()) == 3
    clicked = []
    chart.char_clicked.connect(clicked.append)
    vb = chart.plot.getPlotItem().vb
    slot = chart.slot_of(5)
    scene = vb.mapViewToScene(pg_point(slot, 0.02))
    pos = chart.plot.mapFromScene(scene)
    qtbot.mouseClick(chart.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert clicked == [5]


def pg_point(x: float, y: float):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)
