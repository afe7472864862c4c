"""The run history as a comparison table, and watching runs that other processes write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QInputDialog, QMessageBox

import core.run_curves
import core.runs
from core.resources import runs_dir
from core.run_history import (
    folder_kind,
)
from core.runs import (
    METRICS_FILE,
    MetricsWriter,
)
from landauer_gui import app as studio_app
from landauer_gui.main_window import TRAIN_TAB, MainWindow
from landauer_gui.runs import RunsPanel
from tests.test_runs import fake_run

REPO = Path(__file__).resolve().parents[2]
CLI_FLAGS = ["--embed-dim", "8", "--hidden-dim", "16", "--num-layers", "1", "--batch-size", "4",
             "--seq-len", "16", "--steps", "300", "--log-every", "1", "--eval-every", "50",
             "--eval-batches", "2", "--save-every", "100", "--device", "cpu"]


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.train_view.watch.stop()


def _start_cli(tmp_path: Path, run: Path) -> subprocess.Popen:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question:\n" * 80, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "core.train", "--data-path", str(corpus),
                             "--save-dir", str(run), *CLI_FLAGS],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_watching_a_run_that_a_cli_subprocess_trains(qtbot, window, tmp_path, monkeypatch):
    run = tmp_path / "cli-run"
    polls = []
    real_poll = core.run_curves.MetricsTail.poll
    monkeypatch.setattr(core.run_curves.MetricsTail, "poll",
                        lambda self: polls.append(time.monotonic()) or real_poll(self))
    proc = _start_cli(tmp_path, run)
    try:
        tv = window.train_view
        qtbot.waitUntil(lambda: folder_kind(run) == "run" or proc.poll() is not None, timeout=180_000)
        assert window.watch_run(run), tv.banner.text()
        tv.watch.set_interval(100)  # the default second is slower than this short run
        assert tv.watch.is_watching() and tv.watch.isVisible()
        seen = [len(tv.plot.live.train)]

        def grew_twice() -> bool:
            n = len(tv.plot.live.train)
            if n > seen[-1]:
                seen.append(n)
            return len(seen) >= 3
        qtbot.waitUntil(grew_twice, timeout=120_000)  # the curve grows while the run trains
        assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:]
        qtbot.waitUntil(lambda: "Finished at step 300" in tv.log.toPlainText(), timeout=10_000)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert len(tv.plot.live.train) == 300 and tv.plot.live.val.steps.tolist() == [50, 100, 150, 200, 250, 300]
    assert tv.controls.progress.maximum() == 300 and tv.controls.progress.value() == 300
    log = tv.log.toPlainText()
    printed = proc.stdout.read()
    for line in ("step 00001 |", "[val] step 00050 |", "step 00300 |", "Training on CPU"):
        assert line in log and line in printed
    cli_lines = [x for x in printed.splitlines() if x.startswith(("step ", "[val]"))]
    assert [x for x in log.splitlines() if x.startswith(("step ", "[val]"))] == cli_lines
    assert "landauer_llm_step300.pth" in log and "finished" in tv.watch.label.text()
    assert tv.banner.text() == ""
    span = polls[-1] - polls[0]
    assert len(polls) <= span / 0.1 + span / 0.2 + 10  # the timer, plus coalesced notifications


def test_watch_flag_opens_on_the_run(qtbot, monkeypatch, tmp_path):
    run = fake_run(tmp_path / "elsewhere" / "r1", steps=30)
    seen = {}

    def fake_exec(app):
        from landauer_gui.engine import engine

        engine(start=False).release()
        (w,) = [x for x in QApplication.topLevelWidgets() if isinstance(x, MainWindow) and x not in before]
        tv = w.train_view
        seen.update(tab=w.tabs.currentIndex(), watching=tv.watch.run_dir(), points=len(tv.plot.live.train),
                    listed=[r.path for r in tv.runs.records()], watched=tv.runs.watched_folders())
        tv.watch.stop()
        w.close()
        w.deleteLater()
        return 0

    before = set(QApplication.topLevelWidgets())
    monkeypatch.setattr(type(QApplication.instance()), "exec", fake_exec)
    assert studio_app.main(["--watch", str(run)]) == 0
    assert seen["tab"] == TRAIN_TAB and seen["watching"] == run and seen["points"] == 30
    assert seen["listed"] == [run] and seen["watched"] == [run]


def test_a_watched_run_restarts_grows_by_whole_lines_and_can_vanish(qtbot, window, tmp_path):
    run = fake_run(tmp_path / "r", steps=25)  # ends with a cut line
    tv = window.train_view
    assert window.watch_run(run)
    assert len(tv.plot.live.train) == 25 and tv.controls.progress.value() == 25
    with (run / METRICS_FILE).open("a") as fh:  # the writer completes its line, starts another
        fh.write('ain", "step": 26, "loss": 1, "content": 1.0, "energy": 0.1}\n{"type": "train", "st')
    tv.watch.poll()
    assert len(tv.plot.live.train) == 26  # the half line waits
    writer = MetricsWriter(run, start_step=10)  # resumed at step 10: the file is replaced
    writer.record("train", {"step": 11, "loss": 1.0, "content": 1.0, "energy": 0.0})
    tv.watch.poll()
    writer.close()
    assert tv.plot.live.train.steps.tolist() == list(range(1, 12))
    assert "started over" in tv.log.toPlainText()
    for p in run.iterdir():
        p.unlink()
    run.rmdir()
    tv.watch.poll()
    assert not tv.watch.is_watching() and "was deleted or moved" in tv.banner.text()


def test_a_folder_that_holds_no_run_is_said_and_not_listed(qtbot, window, tmp_path):
    (tmp_path / "empty").mkdir()
    assert not window.watch_run(tmp_path / "empty")
    assert "is not a run folder" in window.train_view.banner.text()
    assert window.statusBar().currentMessage().endswith("and no run folders inside")
    assert not window.watch_run(tmp_path / "absent")
    assert "does not exist" in window.train_view.banner.text()
    assert window.train_view.runs.watched_folders() == [] and not window.train_view.watch.is_watching()


def test_folders_of_runs_are_listed_remembered_and_removed(qtbot, tmp_path):
    fake_run(runs_dir() / "own")
    for name in ("a", "b"):
        fake_run(tmp_path / "cluster" / name)
    panel = RunsPanel()
    qtbot.addWidget(panel)
    assert panel.add_folder(tmp_path / "cluster") == "runs"
    assert sorted(r.name for r in panel.records()) == ["a", "b", "own"]
    again = RunsPanel()  # the list is remembered
    qtbot.addWidget(again)
    assert again.watched_folders() == [tmp_path / "cluster"] and again.table.rowCount() == 3
    again._fill_folders_menu()
    assert [a.text() for a in again.folders_menu.actions() if a.text().startswith("Remove")] == [
        f"Remove {tmp_path / 'cluster'}"]
    again.remove_folder(tmp_path / "cluster")
    assert again.watched_folders() == [] and [r.name for r in again.records()] == ["own"]
    assert (tmp_path / "cluster" / "a").is_dir()  # removing from the list deletes nothing


def _column(panel: RunsPanel, title: str) -> int:
    titles = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    return titles.index(title)


def _names(panel: RunsPanel) -> list[str]:
    return [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]


def test_the_table_shows_only_differing_settings_and_sorts_numbers_as_numbers(qtbot):
    for name, lr, steps in (("a", 0.1, 9), ("b", 0.003, 30), ("c", 0.02, 10)):
        folder = fake_run(runs_dir() / name, steps=steps, total=steps)
        info = json.loads((folder / "config.json").read_text())
        info["train_config"].update(lr=lr, hidden_dim=64, seed=1)
        (folder / "config.json").write_text(json.dumps(info))
    panel = RunsPanel()
    qtbot.addWidget(panel)
    titles = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    assert titles == ["Run", "Best val", "Last val", "Steps", "Time", "Device", "Learning rate"]
    header = panel.table.horizontalHeader()
    panel.show()
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,  # a click on the header sorts
                     pos=_section_center(header, _column(panel, "Learning rate")))
    assert _names(panel) == ["b", "c", "a"]  # 0.003 < 0.02 < 0.1
    panel.table.sortItems(_column(panel, "Steps"), Qt.SortOrder.DescendingOrder)
    assert _names(panel) == ["b", "c", "a"]  # 30 > 10 > 9 (as text, "9/9" would come first)
    panel.table.sortItems(_column(panel, "Best val"), Qt.SortOrder.AscendingOrder)
    assert _names(panel)[-1] == "a"  # a has no evaluation: missing values go last
    panel.refresh()  # the order chosen stays
    assert _names(panel)[-1] == "a" and header.sortIndicatorSection() == _column(panel, "Best val")


def _section_center(header, col):
    from PySide6.QtCore import QPoint

    return QPoint(header.sectionViewportPosition(col) + header.sectionSize(col) // 2, header.height() // 2)


def test_rename_and_delete_never_touch_a_running_run(qtbot, window, monkeypatch, tmp_path):
    tv = window.train_view
    done = fake_run(runs_dir() / "done", steps=30)
    live = fake_run(runs_dir() / "live", steps=10, total=30)
    writer = MetricsWriter(live, start_step=10)  # another process (here: this one) trains it
    before = {p.name: p.read_bytes() for p in live.iterdir()}
    tv.runs.refresh()

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("baseline", True))
    tv.runs.select([done])
    tv.runs.rename_button.click()
    assert "baseline" in _names(tv.runs) and done.is_dir()  # the folder keeps its name
    tv.runs.rename(live, "sweep 1")  # a name is a file of its own: the writer's files are untouched
    assert {p.name: p.read_bytes() for p in live.iterdir() if p.name != "display_name.txt"} == before

    asked = []

    def answer(parent, title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    tv.runs.select([live])
    tv.runs.delete_button.click()
    assert asked == [] and live.is_dir() and "is being trained now" in tv.banner.text()
    writer.record("train", {"step": 11, "loss": 1.0, "content": 1.0, "energy": 0.0})  # still writing fine
    tv.runs.set_checked([done])
    assert [c.label for c in tv.plot.overlays()] == ["baseline"]
    tv.runs.select([done])
    with qtbot.waitSignal(tv.runs.deleted) as sig:
        tv.runs.delete_button.click()
    assert sig.args[0] == [done] and not done.exists()
    assert "baseline" in asked[0] and "KB" in asked[0] and str(done) in asked[0]  # names it, with its size
    assert _names(tv.runs) == ["sweep 1"] and tv.plot.overlays() == []
    writer.close()
