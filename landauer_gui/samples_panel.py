"""The Samples tab: what the model wrote at each evaluation, one step at a time.

The trainer samples a fixed prompt with a fixed seed after every evaluation
(:class:`core.events.SampleText`, stored in the run folder's ``samples.jsonl``),
so moving through the steps shows the text turn from noise into the corpus's
style. A slider picks the step; :func:`link_to_plot` ties it to the curves: a
click on a curve shows the sample nearest that step, and the curves mark the
step of the sample shown.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from core.events import SampleText
from landauer_gui.plots import MetricsPlot

LIVE = 0  # the source index of the live run (the plot's run index too)


def _insert(samples: list[SampleText], steps: list[int], sample: SampleText) -> int:
    """Put ``sample`` in step order (replacing one of the same step); returns its index."""
    i = bisect.bisect_left(steps, sample.step)
    if i < len(steps) and steps[i] == sample.step:
        samples[i] = sample
    else:
        samples.insert(i, sample)
        steps.insert(i, sample.step)
    return i


def _shown_prompt(prompt: str) -> str:
    """The prompt with its new lines made visible (it is drawn grey, before the sample)."""
    return prompt.replace("\n", "⏎\n")


class SamplesPanel(QWidget):
    """A step slider over one run's samples and the text of the selected one.

    ``source`` says whose samples these are, as the plot counts runs (0: the live
    run, 1.. the past runs shown next to it), so a click on the curves can be
    read on the right run's axis. The live run's samples are kept while a past
    run's are shown, for :meth:`show_live`.
    """

    sample_shown = Signal(int, int)  # (source, step) of the sample now shown; step -1: none

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._samples: list[SampleText] = []
        self._steps: list[int] = []
        self._live: list[SampleText] = []  # the live run's samples, in step order, whatever is shown
        self._live_steps: list[int] = []
        self.source = LIVE
        self.label = "current run"
        self._follow = True  # jump to each new sample while the slider is at the newest

        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(1)
        self.slider.setToolTip("The evaluation step whose sample is shown (or click a curve)")
        self.slider.valueChanged.connect(self._on_slider)
        self.step_label = QLabel(self)
        self.step_label.setMinimumWidth(160)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setPlaceholderText("A sample of the model's text appears here after each "
                                     "evaluation (Sample length > 0, Evaluate every > 0).")

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Step", self))
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.text, 1)
        self._update_label()

    # -- content ----------------------------------------------------------------------------

    def samples(self) -> list[SampleText]:
        return list(self._samples)

    def set_samples(self, samples: Iterable[SampleText], source: int = LIVE,
                    label: str = "current run") -> None:
        """Show these samples (of run ``source``), the newest selected; for the live run,
        they become its samples so far."""
        self._samples = sorted(samples, key=lambda s: s.step)
        self._steps = [s.step for s in self._samples]
        if source == LIVE:
            self._live, self._live_steps = list(self._samples), list(self._steps)
        self.source, self.label = source, label
        self._follow = True
        self._reset_slider(len(self._samples) - 1)

    def show_live(self) -> None:
        """Show the live run's samples again (after a past run's)."""
        self.set_samples(self._live, source=LIVE)

    def add_sample(self, sample: SampleText) -> None:
        """A new sample of the live run: kept, and shown unless a past run's samples are."""
        _insert(self._live, self._live_steps, sample)
        if self.source != LIVE:
            return
        i = _insert(self._samples, self._steps, sample)
        newest = len(self._samples) - 1
        current = self.slider.value()
        self._reset_slider(newest if self._follow else current + (i <= current < newest))

    def _reset_slider(self, index: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(self._samples) - 1))
        self.slider.setValue(max(0, index))
        self.slider.blockSignals(False)
        self._show(self.slider.value())

    # -- selection --------------------------------------------------------------------------

    def current(self) -> SampleText | None:
        return self._samples[self.slider.value()] if self._samples else None

    def current_step(self) -> int | None:
        s = self.current()
        return None if s is None else s.step

    def select_step(self, step: int) -> int | None:
        """Show the sample nearest ``step`` (the earlier one on a tie); returns its step."""
        if not self._samples:
            return None
        i = bisect.bisect_left(self._steps, step)
        if i == len(self._steps) or (i > 0 and step - self._steps[i - 1] <= self._steps[i] - step):
            i -= 1
        self.slider.setValue(i)  # shows it through _on_slider (or already shown)
        return self._steps[i]

    def _on_slider(self, index: int) -> None:
        self._follow = index == len(self._samples) - 1
        self._show(index)

    def _show(self, index: int) -> None:
        self.text.clear()
        sample = self._samples[index] if self._samples else None
        if sample is not None:
            cursor = self.text.textCursor()
            prompt = QTextCharFormat()
            prompt.setForeground(QColor("#888"))
            cursor.insertText(_shown_prompt(sample.prompt), prompt)
            cursor.insertText(sample.text, QTextCharFormat())
            cursor.movePosition(QTextCursor.MoveOperation.Start)
            self.text.setTextCursor(cursor)
        self._update_label()
        self.sample_shown.emit(self.source, -1 if sample is None else sample.step)

    def _update_label(self) -> None:
        step = self.current_step()
        if step is None:
            self.step_label.setText(f"no samples · {self.label}")
        else:
            self.step_label.setText(f"step {step:,} ({self.slider.value() + 1}/{len(self._samples)}) · "
                                    f"{self.label}")


def link_to_plot(panel: SamplesPanel, plot: MetricsPlot) -> None:
    """A click on the curves shows the sample nearest that step; the curves mark the sample shown."""

    def on_click(x: float) -> None:
        step = plot.step_at(x, panel.source)
        if step is not None:
            panel.select_step(step)

    def on_shown(source: int, step: int) -> None:
        plot.set_marker(None if step < 0 else step, source)

    plot.clicked.connect(on_click)
    panel.sample_shown.connect(on_shown)
