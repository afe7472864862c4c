"""Loss curves: content loss and energy against step, train and validation.

Events only append to numpy buffers; a 10 Hz timer redraws what changed. That
keeps the UI thread's cost per trainer step tiny, whatever the step rate.
Buffers have a point cap: past it, neighbouring points are averaged in pairs
and later points are binned likewise, so a 100k-step run keeps its shape in a
bounded amount of memory and draw time.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

DEFAULT_MAX_POINTS = 8192
REDRAW_MS = 100  # at most 10 redraws a second...
REDRAW_MAX_MS = 1000
REDRAW_DUTY = 0.25  # ...and never more than a quarter of the UI thread's time (slow software rendering)
LOG_FLOOR = 1e-12  # log axes cannot show 0 (energy can be exactly 0)

pg.setConfigOptions(antialias=True, background="w", foreground="#333")


class SeriesBuffer:
    """Growing ``(step, col0, col1, ...)`` rows with a cap on stored points.

    Capacity doubles as rows arrive (amortised O(1) append). When ``max_points``
    is reached the rows are averaged in pairs and each later stored row becomes
    the mean of ``stride`` incoming rows, so memory stays bounded and the curve
    keeps its shape (the step of a binned row is that of its last input).
    """

    def __init__(self, columns: int, capacity: int = 256, max_points: int = DEFAULT_MAX_POINTS):
        self.columns = columns
        self.max_points = max(4, max_points - max_points % 2)
        self._data = np.empty((max(2, capacity), columns + 1), dtype=np.float64)
        self._n = 0
        self.stride = 1
        self._pending = np.zeros(columns + 1)
        self._pending_n = 0
        self.version = 0  # bumps on every change that rewrites earlier rows

    def __len__(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        return self._data.shape[0]

    def append(self, step: float, *values: float) -> None:
        row = np.array((step, *values), dtype=np.float64)
        if self.stride > 1:
            self._pending += row
            self._pending_n += 1
            if self._pending_n < self.stride:
                return
            row = self._pending / self._pending_n
            row[0] = step
            self._pending[:] = 0
            self._pending_n = 0
        if self._n == self._data.shape[0]:
            grown = np.empty((min(self._n * 2, self.max_points), self._data.shape[1]))
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n] = row
        self._n += 1
        if self._n >= self.max_points:
            self._decimate()

    def _decimate(self) -> None:
        half = self._n // 2
        pairs = self._data[: half * 2].reshape(half, 2, -1)
        merged = pairs.mean(axis=1)
        merged[:, 0] = pairs[:, 1, 0]
        self._data[:half] = merged
        self._n = half
        self.stride *= 2
        self.version += 1

    @property
    def steps(self) -> np.ndarray:
        return self._data[: self._n, 0]

    def column(self, i: int) -> np.ndarray:
        return self._data[: self._n, i + 1]

    def clear(self) -> None:
        self._n = 0
        self.stride = 1
        self._pending[:] = 0
        self._pending_n = 0
        self.version += 1


@dataclass
class RunCurves:
    """Train and validation ``(step, content, energy)`` series of one run."""

    label: str = "current run"
    train: SeriesBuffer = field(default_factory=lambda: SeriesBuffer(2))
    val: SeriesBuffer = field(default_factory=lambda: SeriesBuffer(2))

    def clear(self) -> None:
        self.train.clear()
        self.val.clear()


def ema_into(values: np.ndarray, weight: float, out: np.ndarray, start: int = 0) -> None:
    """Exponential moving average (TensorBoard-style ``weight``) of ``values[start:]`` into ``out``.

    ``out[:start]`` must already hold the average of the earlier points, so a
    10 Hz redraw of a long run only computes the new ones. Non-finite values
    (a diverging run) are skipped rather than poisoning the rest of the curve.
    """
    n = len(values)
    if weight <= 0:
        out[start:n] = values[start:]
        return
    acc = out[start - 1] if start else (values[0] if n else 0.0)
    a = 1.0 - weight
    for i in range(start, n):
        v = values[i]
        if math.isfinite(v):
            acc = acc * weight + v * a
        out[i] = acc


class _Smoothed:
    """EMA cache for one column of one buffer."""

    def __init__(self) -> None:
        self.out = np.empty(64)
        self.done = 0
        self.version = -1
        self.weight = -1.0

    def get(self, buf: SeriesBuffer, col: int, weight: float) -> np.ndarray:
        values = buf.column(col)
        n = len(values)
        if buf.version != self.version or weight != self.weight:
            self.done, self.version, self.weight = 0, buf.version, weight
        if n > len(self.out):
            grown = np.empty(2 * n)
            grown[: self.done] = self.out[: self.done]
            self.out = grown
        ema_into(values, weight, self.out, self.done)
        self.done = n
        return self.out[:n]


_TRAIN_PENS = ["#1f77b4", "#9467bd", "#8c564b"]
_VAL_PENS = ["#ff7f0e", "#d62728", "#e377c2"]


class MetricsPlot(QWidget):
    """Two stacked plots (content loss, energy) with smoothing, log-y and export."""

    smoothing_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.live = RunCurves()
        self._overlays: list[RunCurves] = []
        self._dirty = True
        self._cache: dict[tuple[int, str, int], _Smoothed] = {}
        self._items: dict[tuple[int, str, int], pg.PlotDataItem] = {}
        self._drawn: dict[tuple[int, str, int], tuple] = {}  # what each item shows now

        self.smooth_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.smooth_slider.setRange(0, 99)
        self.smooth_slider.setToolTip("Exponential moving average of the training curves "
                                      "(0: raw values). Validation points are never smoothed.")
        self.smooth_spin = QDoubleSpinBox(self)
        self.smooth_spin.setRange(0.0, 0.99)
        self.smooth_spin.setSingleStep(0.05)
        self.smooth_spin.setDecimals(2)
        self.smooth_spin.setToolTip(self.smooth_slider.toolTip())
        self.smooth_slider.valueChanged.connect(lambda v: self.smooth_spin.setValue(v / 100))
        self.smooth_spin.valueChanged.connect(self._on_smoothing)
        self.log_y = QCheckBox("Log y", self)
        self.log_y.setToolTip("Logarithmic vertical axes")
        self.log_y.toggled.connect(self._on_log)

        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(QLabel("Smoothing", self))
        controls.addWidget(self.smooth_slider, 1)
        controls.addWidget(self.smooth_spin)
        controls.addSpacing(12)
        controls.addWidget(self.log_y)

        self.graphics = pg.GraphicsLayoutWidget(self)
        self.graphics.setMinimumHeight(200)
        self.content_plot = self.graphics.addPlot(row=0, col=0, title="Content loss (cross-entropy)")
        self.energy_plot = self.graphics.addPlot(row=1, col=0, title="Energy (unweighted)")
        for p in (self.content_plot, self.energy_plot):
            # No grid: in software rendering its antialiased lines cost as much as everything else.
            p.setClipToView(True)
            p.setDownsampling(auto=True, mode="peak")
        # One legend serves both plots (same colours); top right is where a falling loss leaves room.
        self.content_plot.addLegend(offset=(-10, 10), labelTextSize="8pt",
                                    brush=pg.mkBrush(255, 255, 255, 210), pen=pg.mkPen("#ccc"))
        self.energy_plot.setLabel("bottom", "step")
        self.energy_plot.setXLink(self.content_plot)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(controls)
        lay.addWidget(self.graphics, 1)

        self.last_redraw_ms = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()
        self.smooth_spin.setValue(0.6)

    # -- data in ----------------------------------------------------------------------------

    def add_step(self, step: int, content: float, energy: float) -> None:
        self.live.train.append(step, content, energy)
        self._dirty = True

    def add_eval(self, step: int, content: float, energy: float) -> None:
        self.live.val.append(step, content, energy)
        self._dirty = True

    def clear(self) -> None:
        """Forget the live run (overlays stay)."""
        self.live.clear()
        self._dirty = True

    def set_overlays(self, runs: list[RunCurves]) -> None:
        """Show past runs next to the live one (e.g. two runs picked for comparison)."""
        for key in [k for k in self._items if k[0] > 0]:
            item = self._items.pop(key)
            (self.content_plot if key[2] == 0 else self.energy_plot).removeItem(item)
            self._cache.pop(key, None)
            self._drawn.pop(key, None)
        self._overlays = list(runs)
        if self._overlays:  # past runs may be longer than the live run's fixed span
            self.content_plot.enableAutoRange(x=True)
        self._dirty = True
        self.redraw()

    def overlays(self) -> list[RunCurves]:
        return list(self._overlays)

    def smoothing(self) -> float:
        return self.smooth_spin.value()

    def set_smoothing(self, weight: float) -> None:
        self.smooth_spin.setValue(weight)

    # -- drawing ----------------------------------------------------------------------------

    def _on_smoothing(self, weight: float) -> None:
        self.smooth_slider.blockSignals(True)
        self.smooth_slider.setValue(round(weight * 100))
        self.smooth_slider.blockSignals(False)
        self._dirty = True
        self.smoothing_changed.emit(weight)

    def _on_log(self, on: bool) -> None:
        for p in (self.content_plot, self.energy_plot):
            p.setLogMode(y=on)
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        """Redraw and paint now, then wait long enough that plotting stays a small share of the UI thread."""
        if not (self._dirty and self.isVisible()):
            return
        t0 = time.perf_counter()
        self.redraw()
        self.graphics.viewport().repaint()
        cost_ms = (time.perf_counter() - t0) * 1000
        self.last_redraw_ms = cost_ms
        self._timer.setInterval(int(min(REDRAW_MAX_MS, max(REDRAW_MS, cost_ms / REDRAW_DUTY))))

    def set_step_range(self, first: int, last: int) -> None:
        """Fix the step axis to a live run's span: the curve fills in from left to right, and
        the axis is not re-laid out on every redraw. Panning or zooming still works; an empty
        span restores automatic range."""
        if last > first:
            self.content_plot.setXRange(first, last, padding=0.02)
        else:
            self.content_plot.enableAutoRange(x=True)

    def _item(self, key: tuple[int, str, int], label: str) -> pg.PlotDataItem:
        item = self._items.get(key)
        if item is None:
            run, split, col = key
            plot = self.content_plot if col == 0 else self.energy_plot
            palette = _TRAIN_PENS if split == "train" else _VAL_PENS
            color = palette[run % len(palette)]
            style = Qt.PenStyle.SolidLine if run == 0 else Qt.PenStyle.DashLine
            name = split if run == 0 else f"{label} {split}"
            if split == "train":
                item = plot.plot(pen=pg.mkPen(color, width=1.5, style=style), name=name)
            else:
                item = plot.plot(pen=pg.mkPen(color, width=1.5, style=style), symbol="o",
                                 symbolSize=5, symbolBrush=color, symbolPen=None, name=name)
            item.setClipToView(True)
            item.setDownsampling(auto=True, method="peak")
            self._items[key] = item
        return item

    def redraw(self) -> None:
        """Push the buffers into the plot items (called by the timer; public for tests/export)."""
        self._dirty = False
        weight = self.smoothing()
        log = self.log_y.isChecked()
        for run_index, run in enumerate([self.live, *self._overlays]):
            for split, buf in (("train", run.train), ("val", run.val)):
                for col in (0, 1):
                    key = (run_index, split, col)
                    if len(buf) == 0 and key not in self._items:
                        continue
                    stamp = (len(buf), buf.version, weight if split == "train" else 0, log)
                    if self._drawn.get(key) == stamp:
                        continue  # unchanged (typically the validation points): skip re-layout
                    self._drawn[key] = stamp
                    x = buf.steps
                    if split == "train":
                        y = self._cache.setdefault(key, _Smoothed()).get(buf, col, weight)
                    else:
                        y = buf.column(col)
                    if log:
                        y = np.maximum(y, LOG_FLOOR)
                    self._item(key, run.label).setData(x.copy(), y.copy())

    # -- export -----------------------------------------------------------------------------

    def export_png(self, path: str | Path) -> Path:
        """Both plots as they are on screen."""
        self.redraw()
        path = Path(path)
        if not self.graphics.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return path

    def export_csv(self, path: str | Path) -> Path:
        """Raw (unsmoothed) stored points of every run shown: ``run,split,step,content,energy``."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["run", "split", "step", "content", "energy"])
            for run in [self.live, *self._overlays]:
                for split, buf in (("train", run.train), ("val", run.val)):
                    for s, c, e in zip(buf.steps, buf.column(0), buf.column(1), strict=True):
                        w.writerow([run.label, split, int(s), f"{c:.6g}", f"{e:.6g}"])
        return path
