"""The corpus picker: a text file to train on, read and summarised in the background."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.resources import bundled_corpus
from landauer_gui.engine import engine
from landauer_gui.param_form import ERROR_COLOR
from landauer_gui.widgets import stretched_row
from landauer_gui.workers import WorkerSlot

if TYPE_CHECKING:
    from core.data import Corpus


def _load_corpus_items(path: str) -> Iterator[Any]:
    """Runs on the worker thread: the :class:`Corpus`, or the reason it is unusable as a str."""
    from core.data import CorpusError, load_corpus

    try:
        yield load_corpus(path)
    except CorpusError as exc:
        yield str(exc)


class CorpusPicker(QGroupBox):
    """Path field, browse and bundled-corpus buttons, and a summary (or the reason it is unusable).

    ``changed`` fires whenever :meth:`corpus`, :meth:`error` or :meth:`is_loading`
    may have changed. Reading waits for the engine (the corpus code needs torch).
    """

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Corpus", parent)
        self._corpus: Corpus | None = None
        self._error: str | None = None
        self._wanted = ""
        self._loader = WorkerSlot(self)
        self._loader.finished.connect(self._on_loader_done)

        self.edit = QLineEdit(self)  # shows the file name; the full path is its tooltip
        self.edit.setReadOnly(True)
        self.edit.setPlaceholderText("Choose a UTF-8 text file")
        browse = QToolButton(self)
        browse.setText("…")
        browse.setToolTip("Choose a UTF-8 text file to train on")
        browse.clicked.connect(self.browse)
        bundled = QToolButton(self)
        bundled.setText("Shakespeare")
        bundled.setToolTip("Use the Shakespeare corpus that ships with the studio")
        bundled.clicked.connect(self.use_bundled)
        self.info = QLabel(self)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.addLayout(stretched_row(self.edit, browse, bundled))
        lay.addWidget(self.info)
        engine().when_ready(self._start_loader)

    # -- state ----------------------------------------------------------------------------

    def corpus(self) -> Corpus | None:
        return self._corpus

    def error(self) -> str | None:
        return self._error

    def problem(self) -> str | None:
        """Why there is no usable corpus right now (reading, unusable, none chosen), or None."""
        if self.is_loading():
            return "reading the corpus…"
        if self._error:
            return self._error
        return "choose a corpus" if self._corpus is None else None

    def wanted_path(self) -> str:
        """The file last chosen (also while it is being read, or when it is unusable)."""
        return self._wanted

    def is_loading(self) -> bool:
        """True from choosing a file until its summary or error is shown."""
        return bool(self._wanted) and self._corpus is None and self._error is None

    def close(self, msecs: int) -> bool:
        """Read nothing more and wait for a read in progress (the window is closing)."""
        return self._loader.close(msecs)

    # -- choosing -------------------------------------------------------------------------

    def browse(self) -> None:
        start = self._wanted or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a text file to train on", start,
                                              "Text files (*.txt);;All files (*)")
        if path:
            self.set_corpus(path)

    def use_bundled(self) -> None:
        try:
            path = bundled_corpus()
        except FileNotFoundError:
            self.edit.clear()
            self._set_state(None, "the bundled Shakespeare corpus is missing from this "
                            "installation; choose a text file")
            return
        self.set_corpus(str(path))

    def set_corpus(self, path: str) -> None:
        """Read ``path`` in the background; :meth:`corpus` is None until it is usable."""
        path = path.strip()
        if path == self._wanted and (self._corpus is not None or self._error):
            return
        self.edit.setText(Path(path).name if path else "")
        self.edit.setToolTip(path)
        self._wanted = path
        if not path:
            self._set_state(None, "choose a corpus")
            return
        self._corpus = None
        self._error = None
        self.info.setStyleSheet("")
        self.info.setText("Reading…")
        self._start_loader()
        self.changed.emit()

    # -- background reading ---------------------------------------------------------------

    def _start_loader(self) -> None:
        if not self.is_loading() or not engine().is_ready():
            return
        path = self._wanted
        self._loader.start(lambda: _load_corpus_items(path),
                           lambda item, p=path: self._on_item(p, item),
                           lambda detail, p=path: self._on_item(p, detail))

    def _on_item(self, path: str, item: Any) -> None:
        if path != self._wanted:
            return  # the user picked another file meanwhile
        if isinstance(item, str):
            self._set_state(None, item)
        else:
            self._set_state(item, None)

    def _on_loader_done(self) -> None:
        self._start_loader()  # another file was chosen while reading
        self.changed.emit()

    def _set_state(self, corpus: Corpus | None, error: str | None) -> None:
        self._corpus = corpus
        self._error = error
        if corpus is not None:
            s = corpus.summary()
            self.info.setStyleSheet("")
            self.info.setText(
                f"{s['characters']:,} characters · vocabulary {s['vocab_size']}\n"
                f"{s['train_tokens']:,} train / {s['val_tokens']:,} validation tokens")
            self.info.setToolTip(corpus.summary_text())
        else:
            self.info.setStyleSheet(f"color: {ERROR_COLOR};")
            self.info.setText(error or "")
            self.info.setToolTip("")
        self.changed.emit()
