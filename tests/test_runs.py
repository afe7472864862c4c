"""Run folders: names, the atomic config, the metrics writer and its failures, reading and following."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

import core.runs as runs
from core.resources import runs_dir
from core.run_curves import MetricsTail, TailUpdate, read_curves
from core.runs import (
    METRICS_FILE,
    MetricsWriter,
    RunFolderError,
    checkpoint_name,
    list_runs,
    new_run_dir,
    read_run,
    step_from_name,
    write_config,
)


def fake_run(folder: Path, steps: int = 30, total: int = 30) -> Path:
    """A run folder as the trainer leaves it after a crash: its last line is cut."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"train_config": {"steps": total, "lr": 0.003}}))
    lines = []
    for s in range(1, steps + 1):
        lines.append({"type": "train", "step": s, "loss": 3.0 - s / 100, "content": 2.9, "energy": 0.01,
                      "tokens_per_s": 100.0, "elapsed_s": s / 10})
        if s % 10 == 0:
            lines.append({"type": "val", "step": s, "loss": 2.5, "content": 2.4, "energy": 0.02, "batches": 2})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"type": "tr')
    (folder / "landauer_llm_step30.pth").write_bytes(b"x")
    return folder


def config_kwargs(**kw):
    values = dict(train_config={"steps": 5}, model_config={"vocab_size": 3}, corpus={"path": "c.txt"},
                  device="cpu", device_description="CPU", start_step=0, num_parameters=10,
                  torch_version="2")
    values.update(kw)
    return values


def test_checkpoint_names_round_trip():
    assert checkpoint_name(1200) == "landauer_llm_step1200.pth"
    assert step_from_name(Path("x") / checkpoint_name(7)) == 7
    assert step_from_name("landauer_llm_step7.pth.tmp") is None
    assert runs.step_from_archive_name("landauer_llm_step42") == 42
    assert runs.step_from_archive_name("archive") is None


def test_run_folders_are_unique_and_named_but_not_created():
    t = datetime(2024, 5, 1, 12, 0, 0)
    a = new_run_dir("Benchmark row 5: seq 256", now=t)
    b = new_run_dir("Benchmark row 5: seq 256", now=t)
    assert a.parent == runs_dir()
    assert a.name == "20240501-120000-benchmark-row-5-seq-256"
    assert b.name == a.name + "-2"
    assert not a.exists() and not b.exists()  # the trainer creates it when it writes
    a.mkdir()
    assert new_run_dir("Benchmark row 5: seq 256", now=t).name == a.name + "-3"


def test_read_and_list_runs_skip_a_cut_last_line():
    run = fake_run(runs_dir() / "r1", steps=25)
    (runs_dir() / "not-a-run").mkdir()
    rec = read_run(run)
    assert rec.last_step == 25 and rec.total_steps == 30
    assert rec.last_val_loss == 2.5 and rec.last_train_loss == pytest.approx(2.75)
    assert [p.name for p in rec.checkpoints] == ["landauer_llm_step30.pth"]
    assert [r.name for r in list_runs()] == ["r1"]
    curves = read_curves(run)  # the cut last line is skipped
    assert curves.train.shape == (25, 3) and curves.val[:, 0].tolist() == [10, 20]
    assert curves.train[0].tolist() == [1.0, 2.9, 0.01]
    assert list_runs(runs_dir() / "absent") == []


def test_config_is_written_atomically(tmp_path, monkeypatch):
    path = write_config(tmp_path, **config_kwargs())
    before = path.read_text()
    assert json.loads(before)["train_config"] == {"steps": 5}

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(RunFolderError, match="disk full while writing .*config.json"):
        write_config(tmp_path, **config_kwargs(train_config={"steps": 9}))
    monkeypatch.undo()
    assert path.read_text() == before  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temp file left


def test_resumed_metrics_keep_steps_up_to_the_checkpoint(tmp_path):
    fake_run(tmp_path, steps=25)
    writer = MetricsWriter(tmp_path, start_step=20)
    writer.record("train", {"step": 21, "content": 1.0, "energy": 0.0})
    writer.close()
    curves = read_curves(tmp_path)
    assert curves.train[:, 0].tolist() == list(range(1, 22)) and curves.val[:, 0].tolist() == [10, 20]
    MetricsWriter(tmp_path).close()  # a fresh run starts the file over
    assert (tmp_path / METRICS_FILE).read_text() == ""


def test_follow_appends_half_lines_and_rewrites(tmp_path):
    tail = MetricsTail(tmp_path)
    assert tail.poll().records == []  # no file yet: an empty run
    writer = MetricsWriter(tmp_path)
    for s in (1, 2, 3):
        writer.record("train", {"step": s, "content": 1.0, "energy": 0.0})
    first = tail.poll()  # each record is in the file as soon as it is recorded
    assert [r["step"] for r in first.records] == [1, 2, 3] and not first.restarted
    assert tail.poll().records == []

    path = tmp_path / METRICS_FILE
    with path.open("ab") as fh:  # another process, half-way through a line
        fh.write(b'{"type": "val", "step": 3, "con')
    assert tail.poll().records == []
    with path.open("ab") as fh:
        fh.write(b'tent": 0.5, "energy": 0.1}\nnot json\n')
    update = tail.poll()
    assert update.records == [{"type": "val", "step": 3, "content": 0.5, "energy": 0.1}]
    assert tail.skipped == 1
    writer.close()

    # A resumed run rewrites the file (atomically, a new file) and appends again.
    resumed = MetricsWriter(tmp_path, start_step=2)
    resumed.record("train", {"step": 3, "content": 0.9, "energy": 0.0})
    update = tail.poll()
    assert update.restarted and [r["step"] for r in update.records] == [1, 2, 3]
    assert update.records[-1]["content"] == 0.9
    resumed.close()

    # Rewritten in place and grown past the old offset: the changed bytes give it away.
    rows = [{"type": "train", "step": s, "content": 2.0, "energy": 0.0} for s in range(1, 40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    update = tail.poll()
    assert update.restarted and len(update.records) == 39

    path.unlink()
    assert tail.poll().restarted  # gone: whoever follows drops the curves
    assert tail.poll() == TailUpdate([])


def _full_disk_writer(monkeypatch):
    """Make the trainer's metrics writer write to /dev/full: the kernel answers ENOSPC."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")

    class FullDisk(MetricsWriter):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            full = os.open("/dev/full", os.O_WRONLY)
            os.dup2(full, self._fd)
            os.close(full)

    monkeypatch.setattr("core.trainer.MetricsWriter", FullDisk)


def test_full_disk_metrics_is_one_failed_event(tmp_path, monkeypatch, caplog, capsys):
    from core.events import Failed, Started
    from core.trainer import Trainer
    from tests.test_trainer import tiny

    (tmp_path / "tiny.txt").write_text("the cat sat on the mat. " * 40)
    _full_disk_writer(monkeypatch)
    events = list(Trainer(tiny(tmp_path, steps=5, log_every=1)).run())
    assert [type(e) for e in events] == [Started, Failed]
    failed = events[-1]
    assert failed.kind == "disk" and "disk full while writing" in failed.message
    assert METRICS_FILE in failed.message and failed.step == 1
    assert caplog.records == []  # no logging, no traceback
    assert capsys.readouterr().err == ""


def test_full_disk_metrics_is_one_line_on_the_cli(tmp_path, monkeypatch, caplog, capsys):
    from core.cli import train_main
    from tests.test_cli import tiny_args

    _full_disk_writer(monkeypatch)
    assert train_main(tiny_args(tmp_path, "--steps", "5", "--log-every", "1")) == 1
    _, err = capsys.readouterr()
    assert err.splitlines() == [f"landauer-train: error: disk full while writing "
                                f"{tmp_path / 'run' / METRICS_FILE}: free some space or choose another "
                                "save folder (the checkpoints saved so far are intact)"]
    assert caplog.records == []


@pytest.mark.parametrize("change", [dict(batch_size=0), dict(data_path="missing.txt"),
                                    dict(seq_len=5000), dict(resume="missing.pth")])
def test_a_failed_start_leaves_no_run_folder(tmp_path, change):
    from core.events import Failed
    from core.trainer import Trainer
    from tests.test_trainer import tiny

    (tmp_path / "tiny.txt").write_text("the cat sat on the mat. " * 40)
    folder = new_run_dir("doomed")
    if "data_path" in change:
        change = dict(data_path=str(tmp_path / change["data_path"]))
    (failed,) = list(Trainer(tiny(tmp_path, save_dir=str(folder), **change)).run())
    assert isinstance(failed, Failed)
    assert not folder.exists()
    assert list_runs() == []
