"""The memory a training configuration needs, shown under the Train view's form.

:mod:`core.memory` does the arithmetic (torch-free, microseconds); this label
only asks it again, debounced, when the form, the corpus or the device changes,
and colours the verdict: plain when it fits, amber when it would take most of
the free memory, red when it cannot fit (the view then blocks Start with the
same sentence, so nobody finds out by the process being killed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QLabel, QWidget

from core.memory import MemoryVerdict, check_memory, estimate_training_memory, format_bytes
from landauer_gui.device_picker import AUTO
from landauer_gui.engine import engine
from landauer_gui.param_form import ERROR_COLOR
from landauer_gui.widgets import sentence

DEBOUNCE_MS = 150
WARN_COLOR = "#a15c00"
WAITING_TEXT = "Memory: …"

# What the hint needs: the form's config (None while it has errors), the loaded corpus
# (anything with ``vocab_size`` and ``characters``; None while it is read) and the device name.
Inputs = Callable[[], tuple[Any, Any, str]]


class MemoryHint(QLabel):
    """"Memory: needs about 310 MB of 18 GB free", or the warning / refusal of :func:`check_memory`.

    Call :meth:`schedule` whenever an input may have changed; ``changed`` fires
    after each recomputation (the view re-reads :meth:`blocker`).
    """

    changed = Signal()

    def __init__(self, inputs: Inputs, parent: QWidget | None = None):
        super().__init__(parent)
        self._inputs = inputs
        self._verdict: MemoryVerdict | None = None
        self.setWordWrap(True)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)
        self.setText(WAITING_TEXT)

    def verdict(self) -> MemoryVerdict | None:
        """The last verdict; None while the engine, the corpus or valid settings are missing."""
        return self._verdict

    def blocker(self) -> str:
        """Why Start must stay disabled ("" when the configuration fits or is not known yet)."""
        v = self._verdict
        return v.message if v is not None and v.level == "refuse" else ""

    def schedule(self, *_: Any) -> None:
        """Recompute after the inputs have been still for :data:`DEBOUNCE_MS`."""
        self._timer.start()

    def flush(self) -> None:
        """Recompute now if a change is pending (before Start reads :meth:`blocker`)."""
        if self._timer.isActive():
            self.refresh()

    def refresh(self) -> None:
        self._timer.stop()
        config, corpus, device = self._inputs()
        verdict = None
        if engine().is_ready() and corpus is not None and config is not None:
            if device == AUTO:
                devices = engine().devices()
                device = devices[0].name if devices else "cpu"
            estimate = estimate_training_memory(config, corpus.vocab_size, corpus.characters)
            verdict = check_memory(estimate, device)
            self.setToolTip("Estimated peak memory of one training step:\n" + "\n".join(
                f"{part}: {format_bytes(n)}" for part, n in estimate.breakdown().items()))
        self._verdict = verdict
        self._show(verdict, waiting=config is not None)
        self.changed.emit()

    def _show(self, v: MemoryVerdict | None, waiting: bool) -> None:
        if v is None:  # no estimate: the form shows its own errors; otherwise the engine/corpus loads
            self.setText(WAITING_TEXT if waiting else "")
            self.setStyleSheet("")
            self.setToolTip("")
        elif v.level == "ok":
            free = f" of {format_bytes(v.available)} free" if v.available is not None else ""
            self.setText(f"Memory: needs about {format_bytes(v.needed)}{free}")
            self.setStyleSheet("")
        else:
            color, mark = (ERROR_COLOR, "✖") if v.level == "refuse" else (WARN_COLOR, "⚠")
            self.setText(f"{mark} {sentence(v.message)}")
            self.setStyleSheet(f"color: {color};")
        self.setVisible(bool(self.text()))
