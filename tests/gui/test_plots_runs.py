"""Curve buffers, the plot widget's exports, and the runs panel (run folders: tests/test_runs.py)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import Qt

from core.resources import runs_dir
from landauer_gui.curve_data import SeriesBuffer, ema_into
from landauer_gui.plots import MetricsPlot
from landauer_gui.runs import RunsPanel, load_curves
from tests.test_runs import fake_run


def test_buffer_grows_by_doubling_then_caps_by_averaging_pairs():
    b = SeriesBuffer(2, capacity=4, max_points=8)
    for i in range(1, 8):
        b.append(i, float(i), 0.0)
    assert len(b) == 7 and b.capacity == 8 and b.stride == 1
    b.append(8, 8.0, 0.0)  # reaches the cap: pairs are averaged
    assert len(b) == 4 and b.stride == 2
    assert b.steps.tolist() == [2, 4, 6, 8]
    assert b.column(0).tolist() == [1.5, 3.5, 5.5, 7.5]
    for i in range(9, 100_001):
        b.append(i, float(i), 0.0)
    assert len(b) < 8 and b.capacity == 8  # memory stays bounded
    assert b.steps[-1] > 100_000 - b.stride  # at most one unfinished bin behind


def test_ema_is_debiased_incremental_and_skips_nan():
    values = np.array([1.0, 2.0, float("nan"), 4.0, 5.0])
    full = np.empty(5)
    ema_into(values, 0.5, full)
    # By hand: acc = 0.5 acc + 0.5 v from 0, shown as acc / (1 - 0.5**t) after t finite values.
    assert full.tolist() == pytest.approx([0.5 / 0.5, 1.25 / 0.75, 1.25 / 0.75, 2.625 / 0.875,
                                           3.8125 / 0.9375])
    part = np.empty(5)
    state = ema_into(values[:3], 0.5, part)
    ema_into(values, 0.5, part, start=3, state=state)
    assert np.allclose(full, part)
    lead = np.empty(3)
    ema_into(np.array([float("nan"), 2.0, 2.0]), 0.9, lead)
    assert np.isnan(lead[0]) and lead[1:].tolist() == pytest.approx([2.0, 2.0])  # no pull to 0


def test_plot_draws_on_timer_and_exports(qtbot, tmp_path):
    plot = MetricsPlot()
    qtbot.addWidget(plot)
    plot.resize(600, 400)
    plot.show()
    for step in range(1, 101):
        plot.add_step(step, 3.0 / step, 0.0 if step < 5 else 0.01)
    plot.add_eval(50, 0.2, 0.01)
    item = None

    def drawn():
        nonlocal item
        item = plot._items.get((0, "train", 0))
        return item is not None and len(item.xData) == 100

    qtbot.waitUntil(drawn, timeout=3000)
    plot.log_y.setChecked(True)  # energy has zeros: must not break the log axis
    plot.set_smoothing(0.0)
    plot.redraw()
    assert plot._items[(0, "train", 0)].yData[0] == pytest.approx(3.0)
    png = plot.export_png(tmp_path / "curves.png")
    assert png.stat().st_size > 1000
    rows = list(csv.reader(plot.export_csv(tmp_path / "c.csv").open(encoding="utf-8")))
    assert rows[0] == ["run", "split", "step", "content", "energy"]
    assert len(rows) == 1 + 100 + 1
    assert rows[-1][:3] == ["current run", "val", "50"]


def test_load_curves_fills_plot_buffers():
    curves = load_curves(fake_run(runs_dir() / "r1", steps=25))  # the cut last line is skipped
    assert curves.label == "r1"
    assert len(curves.train) == 25 and curves.val.steps.tolist() == [10, 20]


def test_runs_panel_shows_and_compares(qtbot):
    fake_run(runs_dir() / "a")
    fake_run(runs_dir() / "b", steps=20)
    panel = RunsPanel()
    qtbot.addWidget(panel)
    assert panel.table.rowCount() == 2
    assert not panel.delete_button.isEnabled()
    panel.select([runs_dir() / "a", runs_dir() / "b"])
    assert panel.delete_button.isEnabled() and not panel.rename_button.isEnabled()
    with qtbot.waitSignal(panel.show_requested) as sig:
        panel.show_selected()
    assert sorted(c.label for c in sig.args[0]) == ["a", "b"]
    with qtbot.waitSignal(panel.show_requested) as sig:  # unticking a run removes its curves
        panel.table.item(panel.row_of(runs_dir() / "a"), 0).setCheckState(Qt.CheckState.Unchecked)
    assert [c.label for c in sig.args[0]] == ["b"]
