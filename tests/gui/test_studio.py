"""The studio window driven like a user would: real trainer, tiny model, tiny corpus."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QByteArray, Qt

import core.train_step
from core.hparams import TrainConfig
from landauer_gui import app as studio_app
from landauer_gui import settings
from landauer_gui.latency import TimerLatencyProbe
from landauer_gui.main_window import GENERATE_TAB, TRAIN_TAB, MainWindow

TINY = dict(batch_size=4, seq_len=16, embed_dim=8, hidden_dim=16, num_layers=1, eval_every=10,
            eval_batches=2, save_every=10, log_every=10)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the trainer shares two cores with the UI


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text("To be, or not to be, that is the question:\n" * 60, encoding="utf-8")
    return path


def _wait_corpus(qtbot, tv) -> None:
    qtbot.waitUntil(lambda: not tv.corpus_picker.is_loading(), timeout=10_000)


@pytest.fixture
def window(qtbot, corpus):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    tv = w.train_view
    tv.corpus_picker.set_corpus(str(corpus))
    _wait_corpus(qtbot, tv)
    tv.form.set_values(tv.form.values().replace(steps=40, **TINY))
    tv.device_combo.setCurrentIndex(tv.device_combo.findData("cpu"))
    assert tv.controls.start_button.isEnabled(), tv.start_blockers()
    yield w
    if tv.is_running():
        tv.stop_and_wait(30_000)


def _wait_finished(qtbot, tv, timeout=60_000) -> None:
    qtbot.waitUntil(lambda: not tv.is_running(), timeout=timeout)


def _type(qtbot, box, text: str) -> None:
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)


# -- form and corpus ---------------------------------------------------------------------


def test_invalid_value_disables_start_with_the_reason(qtbot, window):
    tv = window.train_view
    _type(qtbot, tv.form.widget("hidden_dim"), "0")
    assert not tv.controls.start_button.isEnabled()
    assert not window.start_action.isEnabled()
    assert tv.controls.start_reason.isVisible()
    assert "hidden_dim must be at least 1" in tv.controls.start_reason.text()
    assert tv.start() is False
    _type(qtbot, tv.form.widget("hidden_dim"), "16")
    assert tv.controls.start_button.isEnabled() and window.start_action.isEnabled()
    assert not tv.controls.start_reason.isVisible()


def _bad_corpus(folder: Path, kind: str) -> Path:
    path = folder / f"{kind}.txt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(b"\x00\x01\x02binary" * 10)
    elif kind == "short":
        path.write_text("abcdefghij", encoding="utf-8")
    return path  # "missing": never written


@pytest.mark.parametrize("kind, expected", [
    ("missing", "not found"), ("empty", "is empty"), ("binary", "binary"), ("short", "too short"),
])
def test_unusable_corpus_is_explained_and_blocks_start(qtbot, window, tmp_path, kind, expected):
    tv = window.train_view
    tv.corpus_picker.set_corpus(str(_bad_corpus(tmp_path, kind)))
    _wait_corpus(qtbot, tv)
    assert not tv.controls.start_button.isEnabled()
    assert expected in tv.controls.start_reason.text()
    if kind != "short":  # a short text loads; only the sequence length is refused
        assert expected in tv.corpus_picker.info.text() and "color" in tv.corpus_picker.info.styleSheet()
    assert not tv.is_running()


def test_corpus_summary_is_shown(window, corpus):
    tv = window.train_view
    c = tv.corpus()
    assert c is not None
    text = tv.corpus_picker.info.text()
    assert f"{len(c.text):,} characters" in text and f"vocabulary {c.vocab_size}" in text
    assert f"{len(c.train_data):,} train / {len(c.val_data):,} validation" in text


# -- presets -----------------------------------------------------------------------------


def test_benchmark_presets_match_the_published_rows(window):
    tv = window.train_view
    names = tv.presets.names()
    assert names[0] == "Quick smoke test"
    defaults = TrainConfig()

    def applied(prefix):
        tv.presets.apply(next(n for n in names if n.startswith(prefix)))
        return tv.form.values()

    keys = ("batch_size", "seq_len", "embed_dim", "hidden_dim", "num_layers", "phase_scaling",
            "temperature", "energy_weight", "lr", "grad_clip", "steps")
    base = {k: getattr(defaults, k) for k in keys}
    got = lambda cfg: {k: getattr(cfg, k) for k in keys}  # noqa: E731
    assert got(applied("Benchmark rows 1–3")) == base
    assert got(applied("Benchmark row 4")) == {**base, "energy_weight": 0.05}
    row5 = {**base, "seq_len": 256, "hidden_dim": 512, "phase_scaling": 1.618, "energy_weight": 0.01}
    assert got(applied("Benchmark row 5")) == row5
    assert got(applied("Benchmark row 6")) == {**row5, "num_layers": 4, "lr": 1e-3}
    smoke = applied("Quick smoke test")
    assert smoke.steps == 200 and smoke.hidden_dim <= 64
    assert tv.form.errors() == []


def test_presets_save_and_load(qtbot, window, tmp_path):
    tv = window.train_view
    tv.form.set_values(tv.form.values().replace(hidden_dim=24, lr=5e-4))
    path = tv.presets.save(tmp_path / "mine")
    assert path.suffix == ".json"
    assert json.loads(path.read_text())["config"]["hidden_dim"] == 24
    tv.form.set_values(tv.form.values().replace(hidden_dim=99, lr=1e-2))
    assert tv.presets.load(path)
    assert tv.form.values().hidden_dim == 24 and tv.form.values().lr == pytest.approx(5e-4)
    assert tv.presets.combo.currentText() == "mine"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert not tv.presets.load(bad)
    assert "bad.json is not a JSON preset" in tv.banner.text()


# -- window ------------------------------------------------------------------------------


def test_window_state_is_remembered(qtbot, isolated_home, corpus):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.resize(1000, 650)
    w.show_view(GENERATE_TAB)
    tv = w.train_view
    tv.corpus_picker.set_corpus(str(corpus))
    _wait_corpus(qtbot, tv)
    tv.form.set_values(tv.form.values().replace(hidden_dim=48))
    w.close()
    assert settings.settings_path().parent == isolated_home
    assert isinstance(settings.get("window/geometry"), QByteArray)

    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.show()
    _wait_corpus(qtbot, w2.train_view)
    assert w2.height() == 650  # the offscreen screen is 800 wide, so only the height can round-trip
    assert w2.tabs.currentIndex() == GENERATE_TAB
    assert w2.train_view.form.values().hidden_dim == 48
    assert w2.train_view.corpus().path == str(corpus)


def test_menus_shortcuts_and_status_bar(qtbot, window):
    from core.device import detect_devices

    assert window.device_label.text() == detect_devices()[-1].description  # cpu chosen
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentIndex() == GENERATE_TAB
    window.train_tab_action.trigger()
    assert window.tabs.currentIndex() == TRAIN_TAB
    menus = {a.text().replace("&", ""): [x.text().replace("&", "") for x in a.menu().actions() if x.text()]
             for a in window.menuBar().actions()}
    assert menus["File"][0] == "Open checkpoint…" and "Quit" in menus["File"]
    assert menus["Train"] == ["Start", "Pause", "Stop", "Resume from checkpoint…",
                              "Reproduce published results…"]
    assert window.stop_action.shortcut().toString() == "Ctrl+."
    assert window.quit_action.shortcut().toString() == "Ctrl+Q"


def test_self_test_flag_calls_the_packaged_check(monkeypatch):
    calls = []
    fake = types.ModuleType("landauer_gui.selftest")
    fake.__spec__ = importlib.machinery.ModuleSpec("landauer_gui.selftest", None)
    fake.run = lambda: calls.append(1) or 0
    monkeypatch.setitem(sys.modules, "landauer_gui.selftest", fake)
    assert studio_app.main(["--self-test", "-platform", "offscreen"]) == 0
    assert calls == [1]


# -- training ----------------------------------------------------------------------------


def test_train_pause_resume_stop(qtbot, window):
    tv = window.train_view
    tv.form.set_values(tv.form.values().replace(steps=100_000))
    told = []
    window.generate_view.add_checkpoint = lambda path, select=True: told.append(path)
    tv.controls.start_button.click()
    assert tv.is_running() and not tv.controls.start_button.isEnabled() and not tv.form.isEnabled()
    qtbot.waitUntil(lambda: len(tv.plot.live.train) >= 12 and len(tv.plot.live.val) >= 1, timeout=30_000)
    assert tv.controls.progress.value() >= 12 and tv.controls.progress.maximum() == 100_000
    assert "tokens/s" in tv.controls.stats.text() and "ETA" in tv.controls.stats.text()
    qtbot.waitUntil(lambda: tv.plot._items.get((0, "train", 0)) is not None, timeout=2000)

    tv.controls.pause_button.click()
    qtbot.waitUntil(lambda: "Paused at step" in tv.controls.stats.text(), timeout=10_000)
    assert tv.controls.pause_button.text() == "Resume" and window.pause_action.text() == "&Resume"
    held = tv.controls.progress.value()
    qtbot.wait(300)
    assert tv.controls.progress.value() == held
    tv.controls.pause_button.click()
    qtbot.waitUntil(lambda: tv.controls.progress.value() > held, timeout=10_000)

    stop_at = tv.controls.progress.value()
    window.stop_action.trigger()
    _wait_finished(qtbot, tv)
    log = tv.log.toPlainText()
    assert f"Paused at step {held}" in log and f"Resumed at step {held}" in log
    assert "[val] step 00010 | loss=" in log
    assert "Stopped at step" in log
    run = tv.run_dir()
    ckpts = sorted(run.glob("landauer_llm_step*.pth"), key=lambda p: p.stat().st_mtime)
    assert ckpts and told[-1] == str(ckpts[-1])
    assert int(ckpts[-1].stem.removeprefix("landauer_llm_step")) >= stop_at
    assert tv.controls.start_button.isEnabled() and tv.form.isEnabled()
    assert tv.runs.records()[0].path == run
    tv.runs.select([run])  # reopen the finished run's curves from its folder
    tv.runs.show_button.click()
    assert [c.label for c in tv.plot.overlays()] == [run.name]
    assert len(tv.plot.overlays()[0].train) > 0


def test_resume_from_checkpoint_continues_the_run(qtbot, window):
    tv = window.train_view
    tv.form.set_values(tv.form.values().replace(steps=10, save_every=0, eval_every=5))
    tv.start()
    _wait_finished(qtbot, tv)
    run = tv.run_dir()
    ckpt = run / "landauer_llm_step10.pth"
    assert ckpt.is_file()

    tv.form.set_values(tv.form.values().replace(hidden_dim=20))  # prepare_resume restores 16
    assert tv.prepare_resume(ckpt)
    assert tv.form.values().hidden_dim == 16
    assert "already at step 10" in tv.controls.start_reason.text()  # steps must be raised first
    tv.form.set_values(tv.form.values().replace(steps=14))
    assert tv.start()
    assert tv.controls.progress.value() == 10
    _wait_finished(qtbot, tv)
    assert tv.run_dir() == run  # same folder: metrics.jsonl continues
    assert (run / "landauer_llm_step14.pth").is_file()
    assert "steps 10->14" in tv.log.toPlainText()
    assert tv.banner.text() == ""
    assert not tv.controls.resume_label.isVisible()


@pytest.mark.parametrize("kind", ["random bytes", "hostile pickle", "original format"])
def test_resume_refuses_unusable_checkpoints(qtbot, window, tmp_path, golden_dir, kind):
    tv = window.train_view
    marker = tmp_path / "pwned"
    if kind == "random bytes":
        path = tmp_path / "noise.pth"
        path.write_bytes(bytes(range(256)) * 8)
        expected = "noise.pth"
    elif kind == "hostile pickle":
        class Evil:
            def __reduce__(self):
                import os

                return (os.system, (f"touch {marker}",))

        path = tmp_path / "evil.pth"
        torch.save({"model_state": Evil()}, path)
        expected = "system"
    else:
        path = golden_dir / "reference_format_tiny.pth"
        expected = "no training state"
    before = tv.form.values()
    assert not tv.prepare_resume(path)
    assert expected in tv.banner.text()
    assert not marker.exists()
    assert tv.form.values() == before  # nothing was half-applied
    assert tv.controls.start_button.isEnabled()


def test_nan_loss_is_reported_and_the_window_stays_usable(qtbot, window, monkeypatch):
    real = core.train_step.fused_grads
    calls = {"n": 0}

    def diverging(*args, **kw):
        losses = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] >= 4:
            return type(losses)(losses.total * float("nan"), losses.content, losses.energy)
        return losses

    monkeypatch.setattr(core.train_step, "fused_grads", diverging)
    tv = window.train_view
    tv.form.set_values(tv.form.values().replace(eval_every=0))
    tv.start()
    _wait_finished(qtbot, tv)
    assert "Training failed at step 4" in tv.banner.text()
    assert "lower learning rate" in tv.banner.text()
    assert "Training failed at step 4:" in tv.log.toPlainText()
    assert tv.controls.start_button.isEnabled() and tv.form.isEnabled()
    tv.banner.hide()
    window.show_view(GENERATE_TAB)
    window.show_view(TRAIN_TAB)
    assert tv.start_blockers() == []


def test_full_disk_is_reported_and_the_last_checkpoint_stays_good(qtbot, window, monkeypatch):
    import errno

    import core.checkpoint

    real_open = core.checkpoint._open_writer
    calls = {"n": 0}

    class FullDisk:
        """A writer that fails part-way, as a full disk does."""

        def __init__(self, f):
            self._f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def second_save_fails(fd):
        calls["n"] += 1
        f = real_open(fd)
        return FullDisk(f) if calls["n"] >= 2 else f

    monkeypatch.setattr(core.checkpoint, "_open_writer", second_save_fails)
    tv = window.train_view
    saved = []
    tv.checkpoint_saved.connect(saved.append)
    tv.start()
    _wait_finished(qtbot, tv)
    assert "Disk full while saving checkpoint" in tv.banner.text()
    assert len(saved) == 1  # step 10 was saved; step 20 hit the full disk
    from core.checkpoint import load_model

    model, _, info = load_model(saved[0])  # the last good checkpoint is intact
    assert info.step == 10
    assert not list(Path(saved[0]).parent.glob(".*.tmp"))  # no half-written leftovers
    assert tv.controls.start_button.isEnabled() and tv.form.isEnabled()


def test_ui_stays_responsive_while_training(qtbot, window, capsys):
    tv = window.train_view
    tv.form.set_values(tv.form.values().replace(steps=100_000, eval_every=50))
    tv.start()
    qtbot.waitUntil(lambda: len(tv.plot.live.train) >= 5, timeout=30_000)
    probe = TimerLatencyProbe(10)
    probe.start()
    qtbot.wait(2500)
    probe.stop()
    steps = tv.controls.progress.value()
    tv.stop()
    _wait_finished(qtbot, tv)
    stats = probe.stats_ms()
    with capsys.disabled():
        print(f"\nUI timer lateness while training ({steps} steps): p50 {stats['p50']:.1f} ms, "
              f"p99 {stats['p99']:.1f} ms, max {stats['max']:.1f} ms over {stats['n']} ticks")
    assert stats["n"] > 20
    assert stats["p99"] < 250, stats  # generous: a trainer on the UI thread would be far worse


def test_closing_mid_run_stops_and_saves(qtbot, window):
    tv = window.train_view
    tv.form.set_values(tv.form.values().replace(steps=100_000, save_every=0, eval_every=0))
    tv.start()
    qtbot.waitUntil(lambda: tv.controls.progress.value() >= 3, timeout=30_000)
    run = tv.run_dir()
    t0 = time.monotonic()
    window.close()
    assert not tv.is_running() or not tv.controls.slot.thread_running()
    assert time.monotonic() - t0 < 30
    ckpts = list(run.glob("landauer_llm_step*.pth"))
    assert len(ckpts) == 1  # the stop checkpoint: save_every=0 saves nothing else
    assert int(ckpts[0].stem.removeprefix("landauer_llm_step")) >= 3
