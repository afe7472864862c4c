"""The prompt box and the streamed-sample pane of the Generate view."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtGui import QColor, QFontDatabase, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from landauer_gui.explore.colours import is_dark, runs_by_surprise
from landauer_gui.widgets import stretched_row

FLUSH_MS = 40  # coalesce streamed characters: ~25 repaints a second whatever the rate


def format_elapsed(seconds: float) -> str:
    """``"38 ms"`` below a second (a fast sample is not "0.00 s"), else ``"1.23 s"``."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _mono():
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


class PromptEdit(QPlainTextEdit):
    """The text to continue; characters the model does not know can be marked in place."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFont(_mono())
        self.setPlaceholderText("Prompt: the text to continue (empty starts from a space)")
        self.setTabChangesFocus(True)
        self.setMaximumHeight(96)
        self.textChanged.connect(self._clear_marks)

    def mark_unknown(self, missing: tuple[str, ...]) -> None:
        """Underline the characters the model does not know, so they are easy to find."""
        if not missing:
            return
        fmt = QTextCharFormat()
        fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        fmt.setUnderlineColor(QColor("#c0392b"))
        fmt.setBackground(QColor("#fdecea"))
        marks = []
        for i, ch in enumerate(self.toPlainText()):
            if ch in missing:
                sel = QTextEdit.ExtraSelection()
                cursor = QTextCursor(self.document())
                cursor.setPosition(i)
                cursor.setPosition(i + 1, QTextCursor.MoveMode.KeepAnchor)
                sel.cursor = cursor
                sel.format = fmt
                marks.append(sel)
        self.setExtraSelections(marks)

    @Slot()
    def _clear_marks(self) -> None:
        if self.extraSelections():
            self.setExtraSelections([])


class SampleOutput(QWidget):
    """The prompt (bold) and its continuation as it streams in, a status line, Copy and Save….

    Characters arrive one by one (:meth:`add`) and are appended in chunks every
    ``FLUSH_MS`` while :meth:`begin_stream` … :meth:`end_stream` runs, so the
    text keeps up with any sampling rate; until :meth:`quiet` the status line
    shows the rate. ``error`` carries a failed save.
    """

    error = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._pending: list[str] = []
        self._pending_probs: list[float] = []  # one per pending character when the stream is scored
        self._generated: list[str] = []  # flushed chunks, not single characters
        self._n_chars = 0
        self._started_at: float | None = None  # when the user asked: the rate is what they waited for
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)
        self._live = False  # the status line shows the rate while characters stream in

        self.edit = QTextEdit(self)
        self.edit.setReadOnly(True)
        self.edit.setAcceptRichText(False)
        self.edit.setFont(_mono())
        self.edit.setPlaceholderText("Generated text appears here as it is produced.")
        self.edit.textChanged.connect(self._update_buttons)
        self.status_label = QLabel("Select a checkpoint to sample from.", self)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy the prompt and its continuation to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        self.save_button = QPushButton("Save…", self)
        self.save_button.setToolTip("Save the prompt and its continuation as a .txt file")
        self.save_button.clicked.connect(self.save_dialog)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addLayout(stretched_row(self.status_label, self.copy_button, self.save_button))
        self._update_buttons()

    # -- streaming ------------------------------------------------------------------------

    def begin_stream(self) -> None:
        self._started_at = time.perf_counter()
        self._live = True
        self._timer.start()

    def quiet(self) -> None:
        """Stop showing the rate (the sample is stopping; a final status follows)."""
        self._live = False

    def start_sample(self, prompt: str) -> None:
        """The prompt was accepted: replace the last sample with the prompt alone."""
        self._pending.clear()
        self._pending_probs.clear()
        self._generated.clear()
        self._n_chars = 0
        self.edit.clear()
        self._append(prompt, prompt=True)

    def add(self, chars: str, prob: float | None = None) -> None:
        """Queue ``chars``; with ``prob`` (the model's probability of a single character)
        its background shows how surprising it was."""
        self._pending.append(chars)
        if prob is not None:
            self._pending_probs.append(prob)

    def end_stream(self) -> None:
        self._timer.stop()
        self.flush()
        self._live = False

    @Slot()
    def flush(self) -> bool:
        """Append the characters received since the last flush in one edit; True if any."""
        if not self._pending:
            return False
        chunk = "".join(self._pending)
        probs = list(self._pending_probs)
        scored = len(probs) == len(chunk) > 0
        self._pending.clear()
        self._pending_probs.clear()
        self._generated.append(chunk)
        self._n_chars += len(chunk)
        if scored:
            for run, colour in runs_by_surprise(chunk, probs):
                self._append(run, prompt=False, background=colour)
        else:
            self._append(chunk, prompt=False)
        if self._live:
            self.set_status(f"Generating… {self.rate_text()}")
        return True

    def rate_text(self) -> str:
        n = self._n_chars
        if self._started_at is None or n == 0:
            return f"{n:,} characters"
        elapsed = max(time.perf_counter() - self._started_at, 1e-6)
        return f"{n:,} characters in {format_elapsed(elapsed)} ({n / elapsed:,.0f} chars/s)"

    def _append(self, text: str, prompt: bool, background: tuple[int, int, int] | None = None) -> None:
        bar = self.edit.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 4  # don't yank the view if the user scrolled up
        fmt = QTextCharFormat()
        if prompt:
            fmt.setFontWeight(700)
            fmt.setForeground(self.palette().color(QPalette.ColorRole.Link))
        else:
            fmt.setForeground(self.palette().color(QPalette.ColorRole.Text))
        if background is not None:
            fmt.setBackground(QColor(*background))
            fmt.setForeground(QColor(255, 255, 255) if is_dark(background) else QColor(20, 20, 20))
        cursor = QTextCursor(self.edit.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text, fmt)
        if follow:
            self.edit.moveCursor(QTextCursor.MoveOperation.End)
            bar.setValue(bar.maximum())

    # -- reading it back ------------------------------------------------------------------

    def text(self) -> str:
        """The prompt followed by everything generated so far."""
        self.flush()
        return self.edit.toPlainText()

    def generated_text(self) -> str:
        """Only the continuation, without the prompt."""
        self.flush()
        return "".join(self._generated)

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    @Slot()
    def copy(self) -> None:
        QApplication.clipboard().setText(self.text())
        self.set_status("Copied to the clipboard.")

    @Slot()
    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save sample", "sample.txt", "Text files (*.txt);;All files (*)")
        if path:
            self.save(path)

    def save(self, path: str | Path) -> bool:
        """Write the prompt and sample as UTF-8 text; False, with a message, on failure."""
        try:
            Path(path).write_text(self.text(), encoding="utf-8")
        except OSError as exc:
            self.error.emit(f"Cannot save the sample to {path}: {exc.strerror or exc}")
            return False
        self.set_status(f"Saved to {path}.")
        return True

    @Slot()
    def _update_buttons(self) -> None:
        has_text = self.edit.document().characterCount() > 1
        self.copy_button.setEnabled(has_text)
        self.save_button.setEnabled(has_text)
