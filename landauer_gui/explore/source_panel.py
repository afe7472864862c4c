"""The Explore view's "Text" box: where the text to analyse comes from, and the Analyse button.

Four sources share one stacked page: typed text, a file, a slice of a
corpus's validation split, or a text sent here (a sample from the Generate
view, a branch). Files and slices are read on a worker; once read, the panel
asks for an analysis. The status line under the button is the view's.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from core import resources
from landauer_gui.engine import engine
from landauer_gui.explore import jobs
from landauer_gui.explore.job_slot import JobSlot

SOURCES = ("Type or paste", "File", "Corpus validation slice", "Sample or branch")
SRC_TYPED, SRC_FILE, SRC_CORPUS, SRC_SENT = range(len(SOURCES))
TYPED_BOX_LIMIT = 20_000  # longer texts are kept aside, not pasted into the edit box


class SourcePanel(QGroupBox):
    """Choose the text; ``text_read`` when a file or slice is in, ``error`` for what went wrong."""

    text_read = Signal()
    error = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Text", parent)
        self._source: tuple[str, str] | None = None  # (text, origin) for non-typed sources
        self.read_slot = JobSlot(self)
        self.read_slot.finished.connect(self._on_read_finished)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

        self.source_box = QComboBox()
        self.source_box.addItems(list(SOURCES))
        self.typed_edit = QPlainTextEdit()
        self.typed_edit.setFont(mono)
        self.typed_edit.setPlaceholderText("Type or paste a text to analyse")
        self.typed_edit.setTabChangesFocus(True)
        self.file_label = QLabel("No file chosen.")
        self.file_label.setWordWrap(True)
        self.file_button = QPushButton("Open file…")
        self.file_button.setToolTip("Read a UTF-8 text file and analyse it")
        file_page = QWidget()
        fl = QVBoxLayout(file_page)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.addWidget(self.file_label)
        fl.addWidget(self.file_button)
        fl.addStretch(1)
        self.corpus_label = QLabel(str(resources.bundled_corpus()) if _has_bundled() else "")
        self.corpus_label.setWordWrap(True)
        self.corpus_button = QPushButton("Corpus…")
        self.corpus_start = QSpinBox()
        self.corpus_start.setRange(0, 2**31 - 1)
        self.corpus_start.setSingleStep(1000)
        self.corpus_start.setToolTip("First character of the slice, counted from the start of the validation split")
        self.corpus_length = QSpinBox()
        self.corpus_length.setRange(2, 2**31 - 1)
        self.corpus_length.setValue(2000)
        self.corpus_length.setSingleStep(1000)
        self.corpus_take = QPushButton("Take slice")
        self.corpus_take.setToolTip("Read this slice of the validation split (text the model never trained on)")
        corpus_page = QWidget()
        cf = QFormLayout(corpus_page)
        cf.setContentsMargins(0, 0, 0, 0)
        cf.addRow(self.corpus_label)
        cf.addRow("Start", self.corpus_start)
        cf.addRow("Length", self.corpus_length)
        row = QHBoxLayout()
        row.addWidget(self.corpus_button)
        row.addWidget(self.corpus_take)
        cf.addRow(row)
        self.sent_label = QLabel("Use “Explore” in the Generate view, or “Explore this branch” here.")
        self.sent_label.setWordWrap(True)
        self.source_stack = QStackedWidget()
        for page in (self.typed_edit, file_page, corpus_page, self.sent_label):
            self.source_stack.addWidget(page)
        self.analyse_button = QPushButton("Analyse")
        self.analyse_button.setDefault(True)
        self.analyse_button.setToolTip("Read the text with the selected checkpoint (Ctrl+Enter)")
        self.status_label = QLabel("Select a checkpoint and a text.")
        self.status_label.setWordWrap(True)
        tl = QVBoxLayout(self)
        tl.addWidget(self.source_box)
        tl.addWidget(self.source_stack, 1)
        tl.addWidget(self.analyse_button)
        tl.addWidget(self.status_label)

        self.source_box.currentIndexChanged.connect(self.source_stack.setCurrentIndex)
        self.file_button.clicked.connect(self.open_file_dialog)
        self.corpus_button.clicked.connect(self._choose_corpus)
        self.corpus_take.clicked.connect(self.take_corpus_slice)

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def set_typed_text(self, text: str) -> None:
        """Put ``text`` in the edit box (source: typed)."""
        self.source_box.setCurrentIndex(SRC_TYPED)
        self.typed_edit.setPlainText(text)

    def set_text(self, text: str, origin: str = "") -> None:
        """Make ``text`` the current one: short unnamed texts in the edit box, others kept aside."""
        if len(text) <= TYPED_BOX_LIMIT and not origin:
            self.set_typed_text(text)
        else:
            self._source = (text, origin or "text")
            self.source_box.setCurrentIndex(SRC_SENT)
            self.sent_label.setText(f"{origin or 'Text'}: {len(text):,} characters.")

    def current_text(self) -> str | None:
        """The text the Analyse button would read, or None when the chosen source has none yet."""
        if self.source_box.currentIndex() == SRC_TYPED:
            return self.typed_edit.toPlainText()
        return None if self._source is None else self._source[0]

    @Slot()
    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Analyse a text file", "", "Text files (*.txt);;All files (*)")
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path) -> bool:
        """Read a text file in the background, then analyse it."""
        self.source_box.setCurrentIndex(SRC_FILE)
        self.file_label.setText(str(path))
        return self._read(lambda: jobs.read_file_items(str(path)))

    @Slot()
    def _choose_corpus(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Corpus", "", "Text files (*.txt);;All files (*)")
        if path:
            self.corpus_label.setText(path)

    def set_corpus_slice(self, path: str | Path, start: int, length: int) -> None:
        self.source_box.setCurrentIndex(SRC_CORPUS)
        self.corpus_label.setText(str(path))
        self.corpus_start.setValue(int(start))
        self.corpus_length.setValue(int(length))

    @Slot()
    def take_corpus_slice(self) -> bool:
        path = self.corpus_label.text().strip()
        if not path:
            self.error.emit("Choose a corpus first (Corpus…).")
            return False
        start, length = self.corpus_start.value(), self.corpus_length.value()
        return self._read(lambda: jobs.corpus_slice_items(path, start, length))

    def is_reading(self) -> bool:
        return self.read_slot.is_busy()

    def _read(self, factory) -> bool:
        if not engine().is_ready() or self.read_slot.is_busy():
            return False
        self.set_status("Reading…")
        return self.read_slot.start(factory, self._on_read_item)

    def _on_read_item(self, item: object) -> None:
        if isinstance(item, jobs.TextRead):
            self._source = (item.text, item.origin)
            self.sent_label.setText(f"{item.origin}: {len(item.text):,} characters.")

    def _on_read_finished(self) -> None:
        problem = self.read_slot.take_problem()
        if problem is not None:
            self.set_status("Nothing read.")
            self.error.emit(problem)
            return
        if self._source is not None:
            self.set_status(f"Read {len(self._source[0]):,} characters.")
            self.text_read.emit()


def _has_bundled() -> bool:
    try:
        return resources.bundled_corpus().is_file()
    except (FileNotFoundError, OSError):
        return False
