"""Train ▸ Reproduce published results…, driven like a user would: real seeds of row 1, few steps."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
from PySide6.QtGui import QGuiApplication

from tests.gui.studio_window import studio_window

TEXT = "Now is the winter of our discontent made glorious summer by this sun of York. " * 40
TINY = dict(batch_size=4, seq_len=16, embed_dim=8, hidden_dim=16, num_layers=1, eval_every=0,
            save_every=0, log_every=10, steps=100_000)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def window(qtbot, tmp_path):
    w = studio_window(qtbot, tmp_path, TEXT)
    tv = w.train_view
    yield w
    if w.reproduce_dialog is not None:
        w.reproduce_dialog.shutdown(60_000)
    if tv.is_running():
        tv.stop_and_wait(30_000)


def open_dialog(qtbot, window, out: Path, steps: int):
    """Row 1 (its real model), two seeds, ``steps`` steps, two validation batches, on the CPU."""
    window.reproduce_action.trigger()
    dlg = window.reproduce_dialog
    assert dlg is not None and dlg.isVisible()
    qtbot.waitUntil(lambda: dlg.corpus_picker.corpus() is not None, timeout=30_000)
    dlg.set_rows([1])
    dlg.schedule.seeds.setValue(2)
    dlg.schedule.steps.setValue(steps)
    dlg.schedule.eval_batches.setValue(2)
    dlg.schedule.device_combo.setCurrentIndex(dlg.schedule.device_combo.findData("cpu"))
    dlg.output_picker.path_edit.setText(str(out))
    return dlg


def cells(dlg) -> dict[int, list[str]]:
    t = dlg.table
    return {int(t.cell_text(r, 0)): [t.cell_text(r, c) for c in range(t.columnCount())]
            for r in range(t.rowCount())}


def test_reproduce_row_1_stop_keeps_seeds_and_running_again_skips_them(qtbot, window, tmp_path):
    tv = window.train_view
    out = tmp_path / "out" / "results.md"
    dlg = open_dialog(qtbot, window, out, steps=8)
    assert dlg.rows() == [1, 2, 3]  # one setting: choosing row 1 compares with rows 1-3
    assert dlg.corpus_picker.wanted_path() == tv.corpus_picker.wanted_path()
    assert dlg.corpus_warning.isVisible() and "not the canonical" in dlg.corpus_warning.text()
    assert dlg.start_button.isEnabled(), dlg.start_blockers()

    # First run: stopped while the second seed trains.
    assert dlg.start()
    assert not tv.controls.start_button.isEnabled() and not window.start_action.isEnabled()
    assert "reproduction is running" in tv.start_blockers()[0]
    assert not dlg.start_button.isEnabled() and dlg.stop_button.isEnabled()
    qtbot.waitUntil(lambda: "[2/2]" in dlg.runner.log.toPlainText() or not dlg.is_running(),
                    timeout=120_000)
    assert dlg.is_running(), dlg.runner.log.toPlainText()
    dlg.stop_button.click()
    qtbot.waitUntil(lambda: not dlg.is_running(), timeout=120_000)
    assert dlg.runner.status.text().startswith("Stopped"), dlg.runner.status.text()
    assert cells(dlg)[1][3].endswith("(n=1)")
    saved = json.loads(Path(str(out) + ".json").read_text())
    assert [r["seed"] for r in saved["results"]] == [0]
    assert tv.controls.start_button.isEnabled(), tv.start_blockers()  # the Train view may start again

    # Second run: seed 0 is skipped, seed 1 finishes.
    assert dlg.start()
    qtbot.waitUntil(lambda: not dlg.is_running(), timeout=120_000)
    log = dlg.runner.log.toPlainText()
    assert "1 finished earlier (skipped)" in log and "seed 0: validation loss" in log
    assert "finished earlier, skipped" in log, log
    assert dlg.runner.status.text().startswith("Finished"), (dlg.runner.status.text(), dlg.banner.text())

    results = json.loads(Path(str(out) + ".json").read_text())["results"]
    assert sorted(r["seed"] for r in results) == [0, 1]
    values = [r["val_loss"] for r in results]
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    table = cells(dlg)
    assert sorted(table) == [1, 2, 3]
    assert [table[n][2] for n in (1, 2, 3)] == ["~ 1.7100", "1.7850", "1.8248"]
    for n, published in ((1, 1.71), (2, 1.785), (3, 1.8248)):
        assert table[n][3] == f"{mean:.4f} ± {sd:.4f} (n=2)"
        assert re.fullmatch(r"[+-]\d+\.\d", table[n][4])
        assert float(table[n][4]) == pytest.approx((mean - published) / sd, abs=0.051)
        assert table[n][7].startswith(("2.", "3."))  # the PyTorch version
    assert [round(y, 6) for _, y in dlg.plot.ours_points()] == [round(mean, 6)] * 3

    markdown = out.read_text(encoding="utf-8")
    assert f"{mean:.4f} ± {sd:.4f} (n=2)" in markdown and "| 3 |" in markdown
    assert "landauer-reproduce --rows 1,2,3 --seeds 2 --steps 8" in markdown
    dlg.copy_button.click()
    assert QGuiApplication.clipboard().text() == markdown

    # Each seed is an ordinary run: in the run history and, with its checkpoint, in Generate.
    # (The stopped seed's first folder is there too: continued when it had saved a checkpoint.)
    history = {Path(r.path) for r in tv.runs.records()}
    assert {Path(r["run_dir"]) for r in results} <= history
    assert all("reproduce-row1-seed" in p.name for p in history), history
    finals = {Path(r["checkpoint"]) for r in results}
    assert finals <= set(window.generate_view.checkpoint_paths())


def test_no_start_while_training_and_closing_asks_then_stops(qtbot, window, tmp_path, monkeypatch):
    tv = window.train_view
    tv.form.set_values(tv.form.values().replace(**TINY))
    assert tv.start()
    dlg = open_dialog(qtbot, window, tmp_path / "results.md", steps=500)
    assert not dlg.start_button.isEnabled() and dlg.start() is False
    assert "the Train view is training" in dlg.start_reason.text()
    tv.stop()
    qtbot.waitUntil(lambda: not tv.is_running(), timeout=60_000)
    assert dlg.start_button.isEnabled(), dlg.start_blockers()

    assert dlg.start()
    qtbot.waitUntil(lambda: "[1/2]" in dlg.runner.log.toPlainText(), timeout=120_000)
    answers = iter([False, True])
    asked = []
    monkeypatch.setattr(dlg, "confirm_stop", lambda: asked.append(1) or next(answers))
    dlg.close()  # "No": keeps running
    assert dlg.isVisible() and dlg.is_running() and len(asked) == 1
    dlg.close()  # "Yes": stops after the current step, then closes
    assert len(asked) == 2
    qtbot.waitUntil(lambda: not dlg.is_running() and not dlg.isVisible(), timeout=120_000)
    assert dlg.runner.status.text().startswith("Stopped"), dlg.runner.status.text()
    assert tv.controls.start_button.isEnabled(), tv.start_blockers()
    saved = json.loads((tmp_path / "results.md.json").read_text())
    assert saved["results"] == []


def test_the_dialog_opens_before_torch_is_loaded(isolated_home):
    """Like the window, the dialog is usable from the first paint; it waits for the engine."""
    from tests.gui.test_startup import _run

    result = _run("""
        import sys
        from PySide6.QtWidgets import QApplication
        from landauer_gui.engine import engine
        from landauer_gui.main_window import MainWindow

        app = QApplication([sys.argv[0]])
        engine(start=False).hold()
        w = MainWindow()
        w.show()
        w.reproduce_action.trigger()
        for _ in range(20):
            app.processEvents()
        dlg = w.reproduce_dialog
        assert "torch" not in sys.modules, "opening the dialog imported torch"
        assert not dlg.start_button.isEnabled() and "loading the engine" in dlg.start_reason.text()
        w.close()
        print("OK")
    """, isolated_home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout
