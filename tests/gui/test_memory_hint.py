"""The memory a configuration needs, under the Train form: ok, warn, refuse (Start blocked)."""

from __future__ import annotations

from pathlib import Path

import pytest

import core.memory
from core.memory import estimate_training_memory
from tests.gui.studio_window import studio_window

TINY = dict(batch_size=4, seq_len=16, embed_dim=8, hidden_dim=16, num_layers=1, eval_every=10,
            eval_batches=2, save_every=10, log_every=10, steps=40)


@pytest.fixture
def window(qtbot, tmp_path):
    w = studio_window(qtbot, tmp_path, "To be, or not to be, that is the question:\n" * 60)
    w.train_view.form.set_values(w.train_view.form.values().replace(**TINY))
    return w


def _type(qtbot, box, text: str) -> None:
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)


def _settled(qtbot, tv, level: str) -> None:
    qtbot.waitUntil(lambda: tv.memory.verdict() is not None and tv.memory.verdict().level == level,
                    timeout=3000)


def test_a_normal_configuration_shows_what_it_needs(qtbot, window):
    tv = window.train_view
    _settled(qtbot, tv, "ok")
    text = tv.memory.text()
    assert text.startswith("Memory: needs about ") and " free" in text, text
    corpus = tv.corpus()
    expected = estimate_training_memory(tv.form.values(), corpus.vocab_size, corpus.characters)
    assert core.memory.format_bytes(expected.total) in text
    assert "activations" in tv.memory.toolTip()
    assert tv.controls.start_button.isEnabled(), tv.start_blockers()


def test_a_huge_hidden_size_warns_then_refuses_and_blocks_start(qtbot, window, monkeypatch):
    tv = window.train_view
    corpus = tv.corpus()
    big = tv.form.values().replace(hidden_dim=8192)
    need = estimate_training_memory(big, corpus.vocab_size, corpus.characters).total
    free = int(need / 0.85)  # the big model takes 85% of the free memory: a warning
    monkeypatch.setattr(core.memory, "available_host_bytes", lambda: free)

    _type(qtbot, tv.form.widget("hidden_dim"), "8192")
    _settled(qtbot, tv, "warn")
    assert tv.memory.text().startswith("⚠") and "85% of the" in tv.memory.text()
    assert tv.controls.start_button.isEnabled()  # a warning does not block

    _type(qtbot, tv.form.widget("num_layers"), "8")
    _settled(qtbot, tv, "refuse")
    text = tv.memory.text()
    assert text.startswith("✖") and "lower the hidden size" in text, text
    assert not tv.controls.start_button.isEnabled() and not window.start_action.isEnabled()
    assert "lower the hidden size" in tv.controls.start_reason.text()
    assert tv.start() is False and not tv.is_running()

    _type(qtbot, tv.form.widget("hidden_dim"), "16")
    _settled(qtbot, tv, "ok")
    assert tv.controls.start_button.isEnabled(), tv.start_blockers()


def test_start_checks_a_change_typed_just_before(qtbot, window, monkeypatch):
    """Start does not wait for the debounce: a refusal typed a moment ago still blocks it."""
    tv = window.train_view
    _settled(qtbot, tv, "ok")
    monkeypatch.setattr(core.memory, "available_host_bytes", lambda: 1024**2)  # 1 MB free
    _type(qtbot, tv.form.widget("hidden_dim"), "4096")
    assert tv.start() is False and not tv.is_running()
    assert tv.memory.verdict().level == "refuse"
    assert not Path(tv.run_dir() or "/nonexistent").exists()
