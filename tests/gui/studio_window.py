"""A studio window on a small corpus, for tests that drive the Train view and its windows."""

from __future__ import annotations

from pathlib import Path

from landauer_gui.main_window import MainWindow


def studio_window(qtbot, folder: Path, text: str) -> MainWindow:
    """The window, shown, its Train view on ``text`` (read) and on the CPU."""
    corpus = folder / "small.txt"
    corpus.write_text(text, encoding="utf-8")
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    tv = w.train_view
    tv.corpus_picker.set_corpus(str(corpus))
    qtbot.waitUntil(lambda: tv.corpus_picker.corpus() is not None, timeout=30_000)
    tv.device_combo.setCurrentIndex(tv.device_combo.findData("cpu"))
    return w
