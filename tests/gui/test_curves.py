"""MetricsPlot: debiased smoothing over the raw series, x axes, log-y, zoom kept, read-out, min-max band."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from core.run_curves import read_curves
from landauer_gui.curve_data import RunCurves, SeriesBuffer
from landauer_gui.plots import MetricsPlot
from tests.test_runs import fake_run


@pytest.fixture
def plot(qtbot):
    p = MetricsPlot()
    qtbot.addWidget(p)
    p.resize(640, 480)
    p.show()
    qtbot.waitExposed(p)
    return p


def line(plot, run=0, split="train", col=0):
    return plot._items[(run, split, col)]


def settle(plot):
    """Draw, let the views fit themselves (pyqtgraph does it when painting), draw again."""
    plot.redraw()
    plot.graphics.grab()
    QApplication.processEvents()
    plot.redraw()


def test_smoothing_is_the_debiased_ema_over_a_faint_raw_series(plot):
    for step, v in enumerate([1.0, 2.0, 4.0, 0.0], start=1):
        plot.add_step(step, v, 1.0)
    plot.set_smoothing(0.5)
    plot.redraw()
    # acc = 0.5 acc + 0.5 v from 0; shown acc / (1 - 0.5**t): 0.5/0.5, 1.25/0.75, 2.625/0.875, 1.3125/0.9375
    assert line(plot).yData.tolist() == pytest.approx([1.0, 5 / 3, 3.0, 1.4])
    raw = plot._raw_items[(0, "train", 0)]
    assert raw.isVisible() and raw.yData.tolist() == [1.0, 2.0, 4.0, 0.0]
    assert raw.opts["pen"].color().alpha() < 255  # faint, behind
    assert raw.zValue() < line(plot).zValue()
    plot.set_smoothing(0.0)
    plot.redraw()
    assert line(plot).yData.tolist() == [1.0, 2.0, 4.0, 0.0] and not raw.isVisible()


def test_x_axis_modes(plot):
    for step in range(1, 11):
        plot.add_step(step, 1.0, 0.5, elapsed_s=step * 0.5)
    plot.add_eval(10, 1.0, 0.5)
    plot.set_tokens_per_step(4 * 16)
    plot.set_x_mode("chars")
    plot.redraw()
    assert line(plot).xData.tolist() == [64.0 * s for s in range(1, 11)]
    assert line(plot, split="val").xData.tolist() == [640.0]
    assert "characters" in plot.energy_plot.getAxis("bottom").labelText
    plot.set_x_mode("time")
    plot.redraw()
    assert line(plot).xData.tolist() == pytest.approx([0.5 * s for s in range(1, 11)])
    assert line(plot, split="val").xData.tolist() == pytest.approx([5.0])
    assert plot.step_at(2.6) == 5  # a click on the time axis finds the step
    # A resumed run counts elapsed_s from 0 again: the clock keeps going forward.
    plot.add_step(11, 1.0, 0.5, elapsed_s=0.5)
    plot.redraw()
    assert line(plot).xData[-1] == pytest.approx(5.5)
    plot.set_x_mode("step")
    plot.redraw()
    assert line(plot).xData.tolist() == list(range(1, 12))
    with pytest.raises(ValueError):
        plot.set_x_mode("epochs")


def test_past_run_axes_come_from_its_folder(plot, tmp_path):
    run = fake_run(tmp_path / "r", steps=20)
    curves = RunCurves(label="r")
    curves.add_recorded(read_curves(run))
    assert curves.tokens_per_step is None  # fake_run's config has no batch_size/seq_len
    plot.set_overlays([curves])
    plot.set_x_mode("time")
    plot.redraw()
    assert line(plot, run=1).xData.tolist() == pytest.approx([s / 10 for s in range(1, 21)])
    plot.set_x_mode("chars")
    plot.redraw()
    assert line(plot, run=1).getData()[0] is None  # unknown scale: not drawn rather than drawn wrong


def test_log_y_is_a_true_log_axis_without_made_up_values(plot):
    for step, e in enumerate([0.1, 0.0, -1.0, 0.01], start=1):
        plot.add_step(step, 10.0 ** -step, e)
    plot.set_smoothing(0.0)
    plot.set_log_y(True)
    plot.redraw()
    assert plot.content_plot.getAxis("left").logMode and plot.content_plot.vb.state["logMode"][1]
    energy = line(plot, col=1)
    assert np.isnan(energy.yData[1:3]).all() and energy.yData[[0, 3]].tolist() == [0.1, 0.01]
    # The plotted curve is in decades: 10**-1 .. 10**-4 lie at -1 .. -4.
    assert line(plot).curve.yData.tolist() == pytest.approx([-1, -2, -3, -4])
    plot.set_log_y(False)
    plot.redraw()
    assert energy.yData.tolist() == [0.1, 0.0, -1.0, 0.01]


def _centre(plot) -> QPoint:
    return plot.graphics.mapFromScene(plot.content_plot.vb.sceneBoundingRect().center())


def _double_click(widget, pos: QPoint) -> None:
    """What a window system sends for a double-click: press, release, double-click, release."""
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    for kind, buttons in ((QEvent.Type.MouseButtonPress, left), (QEvent.Type.MouseButtonRelease, none),
                          (QEvent.Type.MouseButtonDblClick, left), (QEvent.Type.MouseButtonRelease, none)):
        ev = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), left, buttons,
                         Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, ev)


def _wheel(plot, delta=120):
    view = plot.graphics
    centre = _centre(plot)
    ev = QWheelEvent(QPointF(centre), QPointF(view.mapToGlobal(centre)), QPoint(0, 0),
                     QPoint(0, delta), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), ev)


def test_zoom_is_kept_while_points_arrive_and_fit_follows_again(qtbot, plot):
    for step in range(1, 101):
        plot.add_step(step, 3.0 / step, 0.01)
    settle(plot)
    assert plot.is_following()
    _wheel(plot)  # the user zooms in
    assert not plot.is_following()
    zoomed = plot.content_plot.vb.viewRange()
    for step in range(101, 301):
        plot.add_step(step, 10.0 + step, 0.01)  # far outside the zoomed view
    settle(plot)
    (x0, x1), (y0, y1) = plot.content_plot.vb.viewRange()
    assert (x0, x1) == pytest.approx(zoomed[0], rel=0.02) and (y0, y1) == pytest.approx(zoomed[1], rel=0.02)
    assert y1 < 10  # the new points did not pull the view
    plot.fit_button.click()
    assert plot.is_following()
    settle(plot)
    assert plot.content_plot.vb.viewRange()[1][1] >= 300  # the new points are in view again
    _wheel(plot)
    assert not plot.is_following()
    _double_click(plot.graphics.viewport(), _centre(plot))
    assert plot.is_following()  # a double-click fits too


def test_hover_read_out_lists_every_series_at_the_nearest_point(qtbot, plot):
    for step in range(1, 51):
        plot.add_step(step, float(step), 100.0 + step)
    plot.add_eval(20, 7.0, 70.0)
    plot.add_eval(40, 8.0, 80.0)
    overlay = RunCurves(label="old")
    for step in range(1, 31):
        overlay.train.append(step, 2.0 * step, 0.0)
    plot.set_overlays([overlay])
    plot.set_smoothing(0.0)
    settle(plot)
    text = plot.readout_at(24.4)
    assert text == "step 24 · train 24.0000 · val 7.0000 @ step 20 · old train 48.0000"
    assert "train 124.0000" in plot.readout_at(24.4, col=1)
    plot.set_smoothing(0.5)
    plot.redraw()
    assert "(raw 24.0000)" in plot.readout_at(24)
    # Through the mouse: a move over the energy plot shows its values.
    vb = plot.energy_plot.vb
    plot.graphics.scene().sigMouseMoved.emit(vb.mapViewToScene(QPointF(30, 120)))
    qtbot.waitUntil(lambda: "val 80.0000" in plot.readout.text() or "val 70.0000" in plot.readout.text())
    assert plot.readout.text().startswith("step 30") and "train " in plot.readout.text()


def test_min_max_band_when_points_share_a_pixel(plot):
    rng = np.random.default_rng(0)
    values = 2.0 + rng.normal(0, 0.3, 6000)
    for step, v in enumerate(values, start=1):
        plot.add_step(step, v, 0.01)
    plot.set_smoothing(0.0)
    settle(plot)
    assert plot.band_shown()
    band = plot._bands[(0, "train", 0)]
    y = line(plot).yData
    assert len(y) <= plot.content_plot.vb.width() + 1  # about one point per pixel
    lo, hi = band.lo.yData, band.hi.yData
    assert (lo <= y + 1e-12).all() and (y <= hi + 1e-12).all()
    assert lo.min() == pytest.approx(values.min()) and hi.max() == pytest.approx(values.max())
    assert band.fill.zValue() < line(plot).zValue()
    # Zoomed in to a few points: every point is drawn, no band.
    plot.content_plot.vb.setXRange(100, 140, padding=0)
    settle(plot)
    assert not plot.band_shown()
    assert 41 <= len(line(plot).xData) <= 6000


def test_buffer_keeps_min_and_max_of_what_it_averages():
    b = SeriesBuffer(1, capacity=4, max_points=8)
    for i, v in enumerate([5, 1, 2, 9, 3, 3, 4, 0, 7, 7, 7, 7], start=1):
        b.append(i, float(v))
    assert b.stride == 2
    assert b.low(0).tolist() == [1, 2, 3, 0, 7, 7] and b.high(0).tolist() == [5, 9, 3, 4, 7, 7]
