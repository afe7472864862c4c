"""The Generate view: listing checkpoints, streaming samples, stopping, and every error it must survive."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication

from core import resources
from core.checkpoint import build_payload, save_checkpoint
from core.model import LandauerLLM
from landauer_gui.checkpoint_table import COL_LOSS, COL_RUN, COL_SIZE, COL_STEP, COL_VOCAB
from landauer_gui.generate_view import GenerateView
from landauer_gui.sample_output import format_elapsed

TIMEOUT_MS = 60_000  # the first sample of a session compiles the CPU kernels


def _make_checkpoint(path: Path, text: str = "hello world\n", step: int = 5, val_loss: float | None = 2.5,
                     hidden: int = 16, layers: int = 1) -> Path:
    torch.manual_seed(0)
    itos = dict(enumerate(sorted(set(text))))
    model = LandauerLLM(len(itos), embed_dim=8, hidden_dim=hidden, num_layers=layers)
    metrics = {} if val_loss is None else {"val": {"loss": val_loss}}
    payload = build_payload(model, itos, {"seq_len": 8}, {"step": step, "metrics": metrics})
    return save_checkpoint(path, payload)


class _Hostile:
    """Unpickling this would run a shell command; a safe loader must refuse it first."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.fixture
def golden_ckpt(golden_dir: Path) -> Path:
    path = golden_dir / "reference_format_tiny.pth"
    if not path.is_file():
        pytest.skip("reference checkpoint not present")
    return path


@pytest.fixture
def view(qtbot):
    v = GenerateView()
    qtbot.addWidget(v)
    v.resize(1000, 700)
    yield v
    v.shutdown()


def _wait_infos(qtbot, view: GenerateView) -> None:
    qtbot.waitUntil(lambda: not view.is_reading_info(), timeout=TIMEOUT_MS)


def _generate(qtbot, view: GenerateView, prompt: str, **sampling) -> str:
    """Click Generate and wait for the sample to end; returns the continuation."""
    view.set_prompt(prompt)
    view.set_sampling(**sampling)
    with qtbot.waitSignal(view.generation_finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(view.generate_button, Qt.MouseButton.LeftButton)
    return view.generated_text()


def _fail(qtbot, view: GenerateView, prompt: str = "ROMEO:") -> str:
    """Click Generate expecting a refusal; returns the banner text."""
    view.set_prompt(prompt)
    with qtbot.waitSignal(view.error_shown, timeout=TIMEOUT_MS) as blocker:
        view.generate()
    qtbot.waitUntil(lambda: not view.is_generating(), timeout=TIMEOUT_MS)
    assert view.banner.isVisibleTo(view)
    return blocker.args[0]


def test_lists_checkpoints_found_under_runs_dir(qtbot):
    first = _make_checkpoint(resources.runs_dir() / "run-a" / "landauer_llm_step5.pth")
    v = GenerateView()
    qtbot.addWidget(v)
    try:
        _wait_infos(qtbot, v)
        assert v.checkpoint_paths() == [first.resolve()]
        row = v.checkpoint_row(first)
        assert row[COL_RUN] == "run-a"
        assert (row[COL_STEP], row[COL_SIZE], row[COL_VOCAB], row[COL_LOSS]) == ("5", "16×1", "9", "2.5000")
        assert v.selected_path() == first.resolve()  # the only checkpoint is ready to use

        second = _make_checkpoint(resources.runs_dir() / "run-b" / "landauer_llm_step40.pth", step=40,
                                  val_loss=None, hidden=24, layers=2)
        v.refresh()
        _wait_infos(qtbot, v)
        assert set(v.checkpoint_paths()) == {first.resolve(), second.resolve()}
        assert v.checkpoint_row(second)[COL_STEP:COL_LOSS + 1] == ["40", "24×2", "9", "—"]
        assert v.selected_path() == first.resolve()  # a rescan keeps the user's choice

        assert v.add_checkpoint(second)  # what the main window calls when a run saves
        assert v.selected_path() == second.resolve()
        assert len(v.checkpoint_paths()) == 2
    finally:
        v.shutdown()


def test_golden_checkpoint_streams_a_sample(qtbot, view, golden_ckpt):
    assert view.add_checkpoint(golden_ckpt)
    _wait_infos(qtbot, view)
    row = view.checkpoint_row(golden_ckpt)
    assert (row[COL_STEP], row[COL_SIZE], row[COL_VOCAB]) == ("20", "32×2", "65")

    seen: list[int] = []
    view.output.textChanged.connect(lambda: seen.append(len(view.output.toPlainText())))
    text = _generate(qtbot, view, "ROMEO:", max_new_tokens=2000, seed=1)

    assert len(text) == 2000
    assert view.output_text() == "ROMEO:" + text
    assert len(set(seen)) > 2, "the text should appear while it is produced, not all at the end"
    assert "chars/s" in view.status_text()
    assert " 0.00 s" not in view.status_text() and " 0 ms" not in view.status_text()
    assert view.error_text() == ""
    assert view.generate_button.isEnabled() and not view.stop_button.isEnabled()

    cursor = QTextCursor(view.output.document())
    cursor.setPosition(1)
    assert cursor.charFormat().fontWeight() >= 600  # the prompt stands out from the sample
    cursor.setPosition(len("ROMEO:") + 2)
    assert cursor.charFormat().fontWeight() < 600
    assert view.output.textCursor().position() == len(view.output_text())  # kept at the end

    view.copy_output()
    assert QApplication.clipboard().text() == "ROMEO:" + text


def test_save_writes_prompt_and_sample(qtbot, view, golden_ckpt, tmp_path):
    view.add_checkpoint(golden_ckpt)
    text = _generate(qtbot, view, "To be", max_new_tokens=50, seed=3)
    out = tmp_path / "sample.txt"
    assert view.save_output(out)
    assert out.read_text(encoding="utf-8") == "To be" + text


def test_same_seed_gives_same_text(qtbot, view, golden_ckpt):
    view.add_checkpoint(golden_ckpt)
    a = _generate(qtbot, view, "KING:", max_new_tokens=120, seed=123, temperature=1.0)
    b = _generate(qtbot, view, "KING:", max_new_tokens=120, seed=123, temperature=1.0)
    c = _generate(qtbot, view, "KING:", max_new_tokens=120, seed=124, temperature=1.0)
    assert a == b
    assert a != c


def test_stop_ends_a_long_sample(qtbot, view, golden_ckpt):
    view.add_checkpoint(golden_ckpt)
    view.set_prompt("ROMEO:")
    view.set_sampling(max_new_tokens=1_000_000, seed=5)
    view.generate()
    assert view.is_generating()
    assert view.stop_button.isEnabled() and not view.generate_button.isEnabled()
    qtbot.waitUntil(lambda: len(view.generated_text()) >= 20, timeout=TIMEOUT_MS)

    with qtbot.waitSignal(view.generation_finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(view.stop_button, Qt.MouseButton.LeftButton)
    n = len(view.generated_text())
    assert 20 <= n < 1_000_000
    assert view.status_text().startswith("Stopped after")
    assert view.generate_button.isEnabled() and not view.stop_button.isEnabled()
    assert view.error_text() == ""


def _corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.pth"
    path.write_bytes(os.urandom(4096))
    return path


def _hostile(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.pth"
    torch.save({"model_state": _Hostile(tmp_path / "PWNED"), "config": {}, "itos": {}}, path)
    return path


@pytest.mark.parametrize("make_bad, expected", [
    (_corrupt, "not a PyTorch checkpoint"),
    (_hostile, "system"),
])
def test_bad_file_is_reported_and_view_recovers(qtbot, view, golden_ckpt, tmp_path, make_bad, expected):
    bad = make_bad(tmp_path)
    assert view.add_checkpoint(bad)
    _wait_infos(qtbot, view)
    assert view.checkpoint_row(bad)[COL_STEP] == "unreadable"

    message = _fail(qtbot, view)
    assert expected in message
    assert bad.name in message
    assert not (tmp_path / "PWNED").exists(), "the hostile file's code must never run"

    view.add_checkpoint(golden_ckpt)
    text = _generate(qtbot, view, "ROMEO:", max_new_tokens=30, seed=1)
    assert len(text) == 30
    assert view.error_text() == "" and not view.banner.isVisibleTo(view)


def test_missing_file_is_reported(qtbot, view, golden_ckpt, tmp_path):
    assert not view.add_checkpoint(tmp_path / "nowhere.pth")
    assert "not found" in view.error_text()

    gone = _make_checkpoint(tmp_path / "gone" / "landauer_llm_step5.pth")
    assert view.add_checkpoint(gone)
    _wait_infos(qtbot, view)
    gone.unlink()
    message = _fail(qtbot, view, prompt="hello")
    assert "does not exist" in message and "landauer_llm_step5.pth" in message

    view.add_checkpoint(golden_ckpt)
    assert len(_generate(qtbot, view, "ROMEO:", max_new_tokens=30, seed=1)) == 30


def test_unknown_prompt_characters_are_named(qtbot, view, golden_ckpt):
    view.add_checkpoint(golden_ckpt)
    first = _generate(qtbot, view, "ROMEO:", max_new_tokens=30, seed=1)

    message = _fail(qtbot, view, prompt="ROMEO: ☃ café")
    assert "'☃'" in message and "'é'" in message
    assert len(view.prompt_edit.extraSelections()) == 2  # the two unknown characters are marked
    assert view.generated_text() == first  # the last good sample stays readable

    view.set_prompt("ROMEO:")
    assert view.prompt_edit.extraSelections() == []
    assert len(_generate(qtbot, view, "ROMEO:", max_new_tokens=30, seed=1)) == 30
    assert view.error_text() == ""


def test_invalid_sampling_option_blocks_generation(qtbot, view, golden_ckpt):
    view.add_checkpoint(golden_ckpt)
    view.set_sampling(temperature=-1.0)
    view.generate()
    assert not view.is_generating()
    assert "temperature" in view.error_text()
    view.set_sampling(temperature=1.0)
    assert len(_generate(qtbot, view, "ROMEO:", max_new_tokens=10, seed=1)) == 10


def test_generates_while_a_training_run_continues(qtbot, view):
    """The studio samples a run's checkpoints while that run keeps training on its own thread."""
    from core.data import Corpus
    from core.events import CheckpointSaved
    from core.hparams import TrainConfig
    from core.trainer import Trainer
    from landauer_gui.workers import BackgroundIterator

    corpus = Corpus.from_text("To be, or not to be, that is the question.\n" * 40)
    cfg = TrainConfig(batch_size=4, seq_len=16, embed_dim=8, hidden_dim=16, num_layers=1, steps=1_000_000,
                      save_every=5, eval_every=0, log_every=0, device="cpu",
                      save_dir=str(resources.runs_dir() / "live"))
    trainer = Trainer(cfg, corpus)
    saved: list[int] = []

    def on_event(ev):
        if isinstance(ev, CheckpointSaved):
            saved.append(ev.step)
            view.add_checkpoint(ev.path, select=len(saved) == 1)

    training = BackgroundIterator(trainer.run)
    training.item.connect(on_event)
    training.start()
    try:
        qtbot.waitUntil(lambda: bool(saved), timeout=TIMEOUT_MS)
        text = _generate(qtbot, view, "To be", max_new_tokens=200, seed=2)
        assert len(text) == 200 and view.error_text() == ""
        steps_after_sample = saved[-1]
        qtbot.waitUntil(lambda: saved[-1] > steps_after_sample, timeout=TIMEOUT_MS)
        assert training.is_running()
    finally:
        trainer.stop()
        qtbot.waitUntil(lambda: not training.is_running(), timeout=TIMEOUT_MS)


def test_shutdown_ends_a_running_sample(qtbot, golden_ckpt):
    v = GenerateView()
    qtbot.addWidget(v)
    v.add_checkpoint(golden_ckpt)
    v.set_sampling(max_new_tokens=1_000_000)
    v.generate()
    qtbot.waitUntil(lambda: len(v.generated_text()) > 0, timeout=TIMEOUT_MS)
    assert v.shutdown(msecs=5_000)
    assert not v.is_generating()
    v.generate()  # a closing view starts nothing new
    assert not v.is_generating()


def test_elapsed_time_reads_in_milliseconds_below_a_second():
    assert format_elapsed(0.0384) == "38 ms"
    assert format_elapsed(0.9994) == "999 ms"
    assert format_elapsed(1.234) == "1.23 s"
