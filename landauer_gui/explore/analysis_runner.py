"""Reads a text with a checkpoint on a worker, keeping the last model so the next text skips loading.

Loading a checkpoint costs more than reading a short text with it; the model
is kept with its file's version (path, size, modification time) and device,
and passed back to the worker while that key still matches.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from landauer_gui.checkpoint_table import file_stamp
from landauer_gui.explore import jobs
from landauer_gui.explore.job_slot import JobSlot
from landauer_gui.generation import Loaded


class AnalysisRunner(QObject):
    """``prepared(Prepared)`` when a text is analysed; ``slot.finished`` after every run."""

    prepared = Signal(object)

    def __init__(self, device: str, parent: QObject | None = None):
        super().__init__(parent)
        self._device = device
        self._loaded: tuple[tuple, tuple] | None = None  # (key, (model, itos, info))
        self.slot = JobSlot(self)

    def start(self, path: Path, text: str) -> bool:
        """Analyse ``text`` with the checkpoint at ``path``; False if a run is going on."""
        key = (str(path), file_stamp(path), self._device)
        cached = self._loaded[1] if self._loaded and self._loaded[0] == key else None
        device = self._device
        return self.slot.start(lambda: jobs.analysis_items(str(path), device, key, cached, text), self._on_item)

    def is_busy(self) -> bool:
        return self.slot.is_busy()

    def model(self):
        """The model the last analysis used (None before the first)."""
        return self._loaded[1][0] if self._loaded else None

    def itos(self) -> dict | None:
        return self._loaded[1][1] if self._loaded else None

    def _on_item(self, item: object) -> None:
        if isinstance(item, Loaded):
            self._loaded = (item.key, (item.model, item.itos, item.info))
        elif isinstance(item, jobs.Prepared):
            self.prepared.emit(item)
