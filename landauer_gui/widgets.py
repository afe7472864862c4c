"""Small widgets shared by the views."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget


def sentence(text: str) -> str:
    """A message as a sentence: capital first letter, final period."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def stretched_row(main: QWidget, *rest: QWidget) -> QHBoxLayout:
    """A row where ``main`` takes the spare width and ``rest`` (buttons, a label) keep theirs."""
    row = QHBoxLayout()
    row.addWidget(main, 1)
    for widget in rest:
        row.addWidget(widget)
    return row


class Banner(QFrame):
    """A dismissable red message at the top of the view; errors never open modal dialogs."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setStyleSheet(
            "#errorBanner { background: #fdecea; border: 1px solid #e0a39c; border-radius: 4px; }"
            "#errorBanner QLabel { color: #8a1c12; }"
        )
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(self)
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss this message")
        close.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.label, 1)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()  # works before the window is shown


class BannerErrors:
    """A view's error messages, shown in its :class:`Banner` (``self.banner``) and announced
    on its ``error_shown`` signal. Mixed into the views before ``QWidget``."""

    def error_text(self) -> str:
        """The message in the banner, or "" when none is shown."""
        return self.banner.text()

    def show_error(self, message: str) -> None:
        self.banner.show_message(message)
        self.error_shown.emit(message)

    def clear_error(self) -> None:
        self.banner.hide()
