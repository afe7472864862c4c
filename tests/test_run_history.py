"""Run history in core.runs: comparing runs, names, who is writing, deleting, a run's log."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

import core.run_history as run_history
import core.runs as runs
from core.events import format_event
from core.resources import runs_dir
from core.run_history import (
    comparison_table,
    delete_run,
    differing_settings,
    folder_kind,
    run_events,
    sort_key,
    started_event,
)
from core.runs import (
    DISPLAY_NAME_FILE,
    METRICS_FILE,
    WRITER_FILE,
    MetricsWriter,
    RunFolderError,
    display_name,
    is_being_written,
    list_runs,
    read_run,
    set_display_name,
)
from tests.test_runs import fake_run


def _with_config(folder, **train_config):
    info = json.loads((folder / "config.json").read_text())
    info["train_config"].update(train_config)
    info["device"] = "cpu"
    (folder / "config.json").write_text(json.dumps(info))
    return folder


def _age(folder, seconds: float) -> None:
    """Make the run look untouched for ``seconds``."""
    t = time.time() - seconds
    for p in folder.iterdir():
        os.utime(p, (t, t))


def test_only_differing_settings_are_compared():
    a = {"lr": 0.003, "steps": 30, "seed": 1, "save_dir": "x", "hidden_dim": 256}
    b = {"lr": 0.01, "steps": 30.0, "seed": 1, "save_dir": "y", "hidden_dim": 256}
    c = {"lr": 0.003, "steps": 30, "seed": 1, "save_dir": "z"}  # an older run without hidden_dim
    assert differing_settings([a, b]) == ["lr"]  # 30 == 30.0; save_dir says where, not what
    assert differing_settings([a, b, c]) == ["lr", "hidden_dim"]
    assert differing_settings([a]) == [] and differing_settings([]) == []


def test_comparison_table_rows_and_numeric_sort_keys():
    for name, lr, steps in (("a", 0.1, 9), ("b", 0.003, 30), ("c", 0.02, 10)):
        _with_config(fake_run(runs_dir() / name, steps=steps, total=steps), lr=lr, seed=7)
    set_display_name(runs_dir() / "b", "baseline")
    records = sorted(list_runs(), key=lambda r: r.name)
    columns, rows = comparison_table(records)
    titles = [c.title for c in columns]
    assert titles == ["Run", "Best val", "Last val", "Steps", "Time", "Device", "Learning rate"]
    assert columns[-1].key == "lr"  # steps has its own column; seed is the same everywhere: no column
    assert [r[0].text for r in rows] == ["a", "baseline", "c"]
    assert [r[3].text for r in rows] == ["9/9", "30/30", "10/10"]
    assert rows[1][4].text == "3 s" and rows[1][5].text == "cpu"
    # numbers sort as numbers (text would put "0.1" before "0.02" and "10/10" before "9/9")
    by_lr = sorted(rows, key=lambda r: r[6].sort)
    assert [r[0].text for r in by_lr] == ["baseline", "c", "a"]
    by_steps = sorted(rows, key=lambda r: r[3].sort)
    assert [r[0].text for r in by_steps] == ["a", "c", "baseline"]
    assert rows[0][1].text == "–"  # 9 steps: no evaluation yet
    assert rows[1][1].text == "2.5000" and rows[1][1].sort == sort_key(2.5)
    assert sort_key(2) < sort_key("abc") < sort_key(None)


def test_best_val_loss_scans_the_whole_file(tmp_path):
    rows = [{"type": "val", "step": s, "loss": loss, "content": 1, "energy": 0}
            for s, loss in ((10, 2.0), (20, 1.5), (30, 1.7))]
    filler = [{"type": "train", "step": s, "loss": 1.0, "content": 1, "energy": 0, "elapsed_s": s / 2}
              for s in range(31, 2000)]  # pushes the best line out of the tail read_run looks at
    (tmp_path / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows + filler)
                                         + '{"type": "val", "step": 2000, "loss": 0.1')  # cut: ignored
    rec = read_run(tmp_path)
    assert rec.best_val_loss == 1.5 and rec.elapsed_s == pytest.approx(1999 / 2)


def test_display_name_is_a_file_and_the_folder_keeps_its_name(tmp_path):
    run = fake_run(tmp_path / "20240101-000000-run")
    assert display_name(run) == run.name
    assert set_display_name(run, "  lr sweep\n 0.01 ") == "lr sweep 0.01"
    assert display_name(run) == "lr sweep 0.01" and read_run(run).display_name == "lr sweep 0.01"
    assert run.is_dir() and (run / DISPLAY_NAME_FILE).is_file()
    assert set_display_name(run, "") == run.name and not (run / DISPLAY_NAME_FILE).exists()


def test_an_open_metrics_writer_marks_the_run_as_being_written(tmp_path):
    writer = MetricsWriter(tmp_path)
    mark = json.loads((tmp_path / WRITER_FILE).read_text())
    assert mark["pid"] == os.getpid() and mark["host"] == socket.gethostname()
    assert is_being_written(tmp_path)
    writer.close()
    assert "closed" in json.loads((tmp_path / WRITER_FILE).read_text())
    assert not is_being_written(tmp_path)  # at once, though its last step is short of its total
    with (tmp_path / METRICS_FILE).open("a") as fh:  # then a writer that leaves no mark
        fh.write('{"type": "train", "step": 1}\n')
    later = time.time() + 5
    os.utime(tmp_path / METRICS_FILE, (later, later))
    assert is_being_written(tmp_path)


@pytest.mark.skipif(os.name == "nt", reason="pids are checked on POSIX only")
def test_a_dead_writers_mark_does_not_count(tmp_path):
    fake_run(tmp_path)
    (tmp_path / WRITER_FILE).write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    assert not is_being_written(tmp_path)


def test_another_machines_mark_counts_while_its_metrics_move(tmp_path):
    fake_run(tmp_path)
    (tmp_path / WRITER_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    assert is_being_written(tmp_path)
    _age(tmp_path, runs.REMOTE_QUIET_S + 5)
    assert not is_being_written(tmp_path)  # that machine died long ago


def test_without_a_mark_fresh_unfinished_metrics_count(tmp_path):
    fake_run(tmp_path, steps=20, total=30)
    assert is_being_written(tmp_path)
    _age(tmp_path, runs.QUIET_S + 5)
    assert not is_being_written(tmp_path)
    done = fake_run(tmp_path / "done", steps=30, total=30)
    assert not is_being_written(done)


def test_delete_removes_a_run_but_never_a_live_run_or_other_files(tmp_path):
    run = fake_run(tmp_path / "r", steps=30)
    set_display_name(run, "old")
    assert delete_run(run) == [] and not run.exists()

    live = fake_run(tmp_path / "live", steps=10, total=30)
    writer = MetricsWriter(live, start_step=10)
    with pytest.raises(RunFolderError, match="is being trained now"):
        delete_run(live)
    writer.close()
    assert (live / "landauer_llm_step30.pth").exists() and (live / METRICS_FILE).exists()

    mixed = fake_run(tmp_path / "mixed")
    (mixed / "notes.md").write_text("mine")
    _age(mixed, 1000)
    assert [p.name for p in delete_run(mixed)] == ["notes.md"]
    assert sorted(p.name for p in mixed.iterdir()) == ["notes.md"]

    (tmp_path / "plain").mkdir()
    with pytest.raises(RunFolderError, match="is not a run folder"):
        delete_run(tmp_path / "plain")
    assert (tmp_path / "plain").is_dir()


def test_folder_kinds(tmp_path):
    fake_run(tmp_path / "runs" / "a")
    (tmp_path / "empty").mkdir()
    assert folder_kind(tmp_path / "runs" / "a") == "run"
    assert folder_kind(tmp_path / "runs") == "runs"
    assert folder_kind(tmp_path / "empty") is None and folder_kind(tmp_path / "absent") is None
    assert "not a run folder" in run_history.not_a_run_message(tmp_path / "empty")
    assert "does not exist" in run_history.not_a_run_message(tmp_path / "absent")


def test_a_runs_log_is_rebuilt_from_its_metrics_as_the_cli_printed_it(tmp_path, capsys):
    from core.cli import train_main
    from tests.test_cli import tiny_args

    assert train_main(tiny_args(tmp_path, "--steps", "12", "--log-every", "3", "--eval-every", "6",
                                "--save-every", "0", "--eval-batches", "1")) == 0
    printed = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith(("step ", "[val]", "Training on"))]
    run = tmp_path / "run"
    events = [started_event(run)] + run_events(runs.json_records((run / METRICS_FILE).read_text()), 12)
    rebuilt = [line for ev in events if (line := format_event(ev, 3))]
    assert rebuilt == printed and len(rebuilt) == 1 + 4 + 2
