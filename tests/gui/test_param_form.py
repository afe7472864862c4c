"""The generated form: widgets from Param metadata, round trips, visible validation."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QLabel

from core.hparams import SamplingConfig, TrainConfig, param_specs
from landauer_gui.param_form import FloatBox, IntBox, ParamForm


def _type(qtbot, box, text: str) -> None:
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)


@pytest.fixture
def form(qtbot):
    f = ParamForm(TrainConfig(), skip=("data_path",))
    qtbot.addWidget(f)
    return f


def test_fields_groups_ranges_and_tooltips_come_from_params(form):
    shown = [s.name for s in form.specs()]
    hidden = {s.name for s in param_specs(TrainConfig) if s.param.cli_only} | {"data_path"}
    assert shown == [s.name for s in param_specs(TrainConfig) if s.name not in hidden]
    titles = [b.title() for b in form.findChildren(QGroupBox)]
    assert titles == ["Data", "Model", "Loss", "Optimisation", "Schedule", "Samples"]
    assert isinstance(form.widget("batch_size"), IntBox)
    assert isinstance(form.widget("lr"), FloatBox)
    assert form.widget("lr").toolTip().startswith("Adam learning rate.")
    assert "1e-07" in form.widget("lr").toolTip()
    assert form.values() == TrainConfig()
    assert form.errors() == []


def test_values_round_trip_keeps_hidden_fields(form):
    cfg = TrainConfig(batch_size=7, lr=1e-7, phase_scaling=1.618, save_dir="elsewhere", log_every=5)
    form.set_values(cfg)
    assert form.values() == cfg
    assert form.widget("lr").text() == "1e-07"


def test_typed_learning_rate_in_scientific_notation(qtbot, form):
    changes = []
    form.changed.connect(lambda: changes.append(1))
    _type(qtbot, form.widget("lr"), "3e-4")
    assert form.values().lr == pytest.approx(3e-4)
    assert form.errors() == []
    assert changes


def test_arrows_step_lr_by_orders_of_magnitude_and_stay_in_range(form):
    lr = form.widget("lr")
    lr.stepBy(1)
    assert form.values().lr == pytest.approx(3.1e-3)
    form.set_values(TrainConfig(lr=1.0))
    lr.stepBy(5)
    assert form.values().lr == 1.0
    form.set_values(TrainConfig(num_layers=1))
    form.widget("num_layers").stepBy(-3)
    assert form.values().num_layers == 1


def test_out_of_range_value_is_kept_and_marked(qtbot, form):
    _type(qtbot, form.widget("batch_size"), "0")
    assert form.values().batch_size == 0  # not silently clamped
    assert form.errors() == ["batch_size must be at least 1 (got 0)"]
    msg = form.findChild(QLabel, "batch_size_error")
    assert msg.isVisibleTo(form) and "at least 1" in msg.text()
    assert "border" in form.widget("batch_size").styleSheet()
    _type(qtbot, form.widget("batch_size"), "16")
    assert form.errors() == []
    assert not msg.isVisibleTo(form)
    assert form.widget("batch_size").styleSheet() == ""


def test_incomplete_number_is_an_error_not_a_crash(qtbot, form):
    _type(qtbot, form.widget("lr"), "1e-")
    assert form.field_errors()["lr"] == "lr: '1e-' is not a number"
    assert form.values().lr == 1.0  # the last complete number typed ("1")


def test_preset_with_bad_values_is_shown_as_invalid(form):
    form.set_values({"lr": 5.0, "steps": 100})
    assert form.values().steps == 100
    assert form.errors() == ["lr must be at most 1 (got 5)"]


def test_sampling_config_form_is_flat_and_edits_seed(qtbot):
    f = ParamForm(SamplingConfig)
    qtbot.addWidget(f)
    assert f.findChildren(QGroupBox) == []
    assert f.values() == SamplingConfig()
    f.widget("seed").stepBy(-5)
    assert f.values().seed == -1
    f.set_values(SamplingConfig(top_k=40, temperature=0.7))
    assert f.values() == SamplingConfig(top_k=40, temperature=0.7)


def test_wheel_does_not_change_an_unfocused_field(qtbot, form):
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    box = form.widget("steps")
    ev = QWheelEvent(QPointF(5, 5), QPointF(5, 5), QPoint(0, 0), QPoint(0, 120),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(box, ev)
    assert form.values().steps == TrainConfig().steps
