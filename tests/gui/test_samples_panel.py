"""The Samples tab: slider and curve clicks select a step's sample, the curves mark it."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QPointF, Qt

from core.events import SampleText
from core.runs import SAMPLES_FILE, read_samples
from landauer_gui.curve_data import RunCurves
from landauer_gui.plots import MetricsPlot
from landauer_gui.samples_panel import SamplesPanel, link_to_plot
from tests.gui.test_curves import settle
from tests.gui.test_studio import _wait_finished, corpus, window  # noqa: F401, F811 (fixtures)

SAMPLES = [SampleText(100, "\n", "noise qz"), SampleText(200, "\n", "the the"), SampleText(300, "\n", "To be")]


@pytest.fixture
def linked(qtbot):
    plot, panel = MetricsPlot(), SamplesPanel()
    for w in (plot, panel):
        qtbot.addWidget(w)
    link_to_plot(panel, plot)
    plot.resize(640, 400)
    plot.show()
    for step in range(1, 301):
        plot.add_step(step, 3.0 - step / 200, 0.01, elapsed_s=step / 10)
    settle(plot)
    return plot, panel


def test_slider_shows_a_steps_sample_and_the_curve_marks_it(linked):
    plot, panel = linked
    assert panel.current() is None and plot.marker_x() is None
    for s in SAMPLES:
        panel.add_sample(s)
    assert panel.current_step() == 300 and panel.text.toPlainText() == "⏎\nTo be"  # follows the newest
    assert plot.marker_x() == 300
    panel.slider.setValue(0)
    assert panel.text.toPlainText().endswith("noise qz") and plot.marker_x() == 100
    assert "step 100 (1/3)" in panel.step_label.text()
    panel.add_sample(SampleText(400, "\n", "later"))
    assert panel.current_step() == 100  # a reader who went back is not pulled forward
    plot.set_x_mode("time")
    assert plot.marker_x() == pytest.approx(10.0)  # the marker follows the axis


def test_clicking_a_curve_selects_the_nearest_sample(qtbot, linked):
    plot, panel = linked
    panel.set_samples(SAMPLES)
    vb = plot.content_plot.vb
    pos = plot.graphics.mapFromScene(vb.mapViewToScene(QPointF(180, 2.0)))
    qtbot.mouseClick(plot.graphics.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert panel.current_step() == 200 and panel.text.toPlainText().endswith("the the")
    assert plot.marker_x() == 200
    plot.set_x_mode("chars")  # unknown characters per step: a click cannot name a step
    plot.clicked.emit(5000.0)
    assert panel.current_step() == 200
    plot.set_tokens_per_step(10)
    plot.clicked.emit(1100.0)  # step 110
    assert panel.current_step() == 100


def test_a_past_runs_samples_follow_its_own_axis(linked):
    plot, panel = linked
    past = RunCurves(label="old")
    for step in range(1, 101):
        past.train.append(step, 1.0, 0.0)
        past.add_clock(step, step * 2.0)
    plot.set_overlays([past])
    panel.set_samples([SampleText(50, "", "a"), SampleText(100, "", "b")], source=1, label="old")
    panel.add_sample(SampleText(400, "\n", "live"))  # the live run's samples do not mix in
    assert [s.step for s in panel.samples()] == [50, 100]
    plot.set_x_mode("time")
    plot.clicked.emit(96.0)  # 48 s into the past run: its step 48
    assert panel.current_step() == 50 and plot.marker_x() == pytest.approx(100.0)
    panel.show_live()  # back to the live run: the sample that came meanwhile is there
    assert panel.source == 0 and [s.step for s in panel.samples()] == [400]


def test_train_view_has_a_samples_tab_fed_by_the_run_and_by_history(qtbot, window):  # noqa: F811
    tv = window.train_view
    tabs = [tv.bottom_tabs.tabText(i) for i in range(tv.bottom_tabs.count())]
    assert tabs[:2] == ["Log", "Run history"] and "Samples" in tabs
    tv.form.set_values(tv.form.values().replace(sample_length=40, sample_prompt="To"))
    assert tv.start()
    _wait_finished(qtbot, tv)
    steps = [s.step for s in tv.samples.samples()]
    assert steps == [10, 20, 30, 40] and tv.samples.current().prompt == "To"
    assert read_samples(tv.run_dir()) == tv.samples.samples()
    tv.samples.slider.setValue(1)
    assert tv.plot.marker_x() == 20
    # The same run from the history: its samples come from samples.jsonl.
    lines = (tv.run_dir() / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["step"] for x in lines] == steps
    tv.runs.refresh()
    tv.runs.select([tv.run_dir()])
    tv.runs.show_selected()
    assert tv.samples.source == 1 and [s.step for s in tv.samples.samples()] == steps
    tv.runs.hide_button.click()
    assert tv.samples.source == 0 and [s.step for s in tv.samples.samples()] == steps
