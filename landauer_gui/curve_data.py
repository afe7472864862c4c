"""The curves' numbers, without Qt: growing point buffers with a cap, the debiased EMA,
pixel buckets and log-axis values. :mod:`landauer_gui.plots` draws them.

Buffers have a point cap: past it, neighbouring points are averaged in pairs
(keeping each bin's minimum and maximum), so a 100k-step run keeps its shape
in a bounded amount of memory and draw time.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from core.run_curves import Curves

DEFAULT_MAX_POINTS = 8192


class SeriesBuffer:
    """Growing ``(step, col0, col1, ...)`` rows with a cap on stored points.

    Capacity doubles as rows arrive (amortised O(1) append). When ``max_points``
    is reached the rows are averaged in pairs and each later stored row becomes
    the mean of ``stride`` incoming rows, so memory stays bounded and the curve
    keeps its shape (the step of a binned row is that of its last input). Each
    row also keeps the minimum and maximum of the values it stands for
    (:meth:`low`, :meth:`high`): the band drawn behind a decimated curve.
    """

    def __init__(self, columns: int, capacity: int = 256, max_points: int = DEFAULT_MAX_POINTS):
        self.columns = columns
        self.max_points = max(4, max_points - max_points % 2)
        cap = max(2, capacity)
        self._data = np.empty((cap, columns + 1), dtype=np.float64)
        self._lo = np.empty((cap, columns), dtype=np.float64)
        self._hi = np.empty((cap, columns), dtype=np.float64)
        self._n = 0
        self.stride = 1
        self._pending = np.zeros(columns + 1)
        self._pending_lo = np.full(columns, np.inf)
        self._pending_hi = np.full(columns, -np.inf)
        self._pending_n = 0
        self.version = 0  # bumps on every change that rewrites earlier rows

    def __len__(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        return self._data.shape[0]

    def append(self, step: float, *values: float) -> None:
        row = np.array((step, *values), dtype=np.float64)
        lo = hi = row[1:]
        if self.stride > 1:
            self._pending += row
            np.fmin(self._pending_lo, row[1:], out=self._pending_lo)
            np.fmax(self._pending_hi, row[1:], out=self._pending_hi)
            self._pending_n += 1
            if self._pending_n < self.stride:
                return
            row = self._pending / self._pending_n
            row[0] = step
            lo, hi = self._pending_lo.copy(), self._pending_hi.copy()
            self._pending[:] = 0
            self._pending_lo[:] = np.inf
            self._pending_hi[:] = -np.inf
            self._pending_n = 0
        if self._n == self._data.shape[0]:
            size = min(self._n * 2, self.max_points)
            self._data, self._lo, self._hi = (_grown(a, self._n, size) for a in (self._data, self._lo, self._hi))
        self._data[self._n] = row
        self._lo[self._n] = lo
        self._hi[self._n] = hi
        self._n += 1
        if self._n >= self.max_points:
            self._decimate()

    def _decimate(self) -> None:
        half = self._n // 2
        pairs = self._data[: half * 2].reshape(half, 2, -1)
        merged = pairs.mean(axis=1)
        merged[:, 0] = pairs[:, 1, 0]
        self._data[:half] = merged
        self._lo[:half] = np.fmin(self._lo[: half * 2 : 2], self._lo[1 : half * 2 : 2])
        self._hi[:half] = np.fmax(self._hi[: half * 2 : 2], self._hi[1 : half * 2 : 2])
        self._n = half
        self.stride *= 2
        self.version += 1

    @property
    def steps(self) -> np.ndarray:
        return self._data[: self._n, 0]

    def column(self, i: int) -> np.ndarray:
        return self._data[: self._n, i + 1]

    def low(self, i: int) -> np.ndarray:
        """Per stored row, the smallest value of column ``i`` it stands for."""
        return self._lo[: self._n, i]

    def high(self, i: int) -> np.ndarray:
        return self._hi[: self._n, i]

    def clear(self) -> None:
        self._n = 0
        self.stride = 1
        self._pending[:] = 0
        self._pending_lo[:] = np.inf
        self._pending_hi[:] = -np.inf
        self._pending_n = 0
        self.version += 1


def _grown(a: np.ndarray, n: int, size: int) -> np.ndarray:
    out = np.empty((size, a.shape[1]), dtype=a.dtype)
    out[:n] = a[:n]
    return out


@dataclass
class RunCurves:
    """Train and validation ``(step, content, energy)`` series of one run, and its x-axis scales.

    ``clock`` maps steps to the wall time the run spent (``elapsed_s``, made
    monotonic across resumes, where the trainer starts counting again);
    ``tokens_per_step`` is ``batch_size * seq_len`` (None: unknown).
    """

    label: str = "current run"
    train: SeriesBuffer = field(default_factory=lambda: SeriesBuffer(2))
    val: SeriesBuffer = field(default_factory=lambda: SeriesBuffer(2))
    clock: SeriesBuffer = field(default_factory=lambda: SeriesBuffer(1))
    tokens_per_step: int | None = None
    _clock_offset: float = 0.0
    _clock_last: float = 0.0

    def clear(self) -> None:
        self.train.clear()
        self.val.clear()
        self.clock.clear()
        self._clock_offset = self._clock_last = 0.0

    def add_clock(self, step: float, elapsed_s: float) -> None:
        if not math.isfinite(elapsed_s):
            return
        if elapsed_s < self._clock_last:  # a resumed run counts from 0 again
            self._clock_offset += self._clock_last
        self._clock_last = elapsed_s
        self.clock.append(step, elapsed_s + self._clock_offset)

    def add_recorded(self, curves: Curves, until_step: float = math.inf) -> None:
        """Append a run folder's recorded curves (:func:`core.run_curves.read_curves`) up to ``until_step``."""
        for target, rows in ((self.train, curves.train), (self.val, curves.val)):
            for step, content, energy in rows[rows[:, 0] <= until_step].tolist():
                target.append(step, content, energy)
        for step, elapsed in curves.clock[curves.clock[:, 0] <= until_step].tolist():
            self.add_clock(step, elapsed)
        if curves.tokens_per_step:
            self.tokens_per_step = curves.tokens_per_step

    def x_of(self, steps: np.ndarray, mode: str) -> np.ndarray | None:
        """``steps`` on the ``mode`` axis ("step", "chars", "time"); None when this run cannot say."""
        steps = np.asarray(steps, dtype=np.float64)
        if mode == "chars":
            return steps * self.tokens_per_step if self.tokens_per_step else None
        if mode == "time":
            if len(self.clock) == 0:
                return None
            return np.interp(steps, self.clock.steps, self.clock.column(0))
        return steps.copy()

    def step_of(self, x: float, mode: str) -> float | None:
        """The step at ``x`` on the ``mode`` axis (the inverse of :meth:`x_of`)."""
        if mode == "chars":
            return x / self.tokens_per_step if self.tokens_per_step else None
        if mode == "time":
            if len(self.clock) == 0:
                return None
            return float(np.interp(x, self.clock.column(0), self.clock.steps))
        return x


def ema_into(values: np.ndarray, weight: float, out: np.ndarray, start: int = 0,
             state: tuple[float, int] = (0.0, 0)) -> tuple[float, int]:
    """Debiased exponential moving average (TensorBoard's smoothing ``weight``) of ``values[start:]``.

    ``acc = weight * acc + (1 - weight) * v`` from ``acc = 0``, shown as
    ``acc / (1 - weight**t)`` after ``t`` finite values, so the first points are
    not pulled towards 0 (or towards the first value). ``state`` is the
    ``(acc, t)`` returned for ``values[:start]``, so a live redraw only computes
    the new points. Non-finite values (a diverging run) are skipped; before the
    first finite value the average is NaN.
    """
    n = len(values)
    acc, t = state
    if weight <= 0:
        out[start:n] = values[start:]
        return acc, t
    a = 1.0 - weight
    shown = out[start - 1] if start else math.nan
    for i in range(start, n):
        v = values[i]
        if math.isfinite(v):
            acc = acc * weight + v * a
            t += 1
            shown = acc / (1.0 - weight ** t)
        out[i] = shown
    return acc, t


class SmoothedCache:
    """EMA cache for one column of one buffer."""

    def __init__(self) -> None:
        self.out = np.empty(64)
        self.done = 0
        self.state: tuple[float, int] = (0.0, 0)
        self.version = -1
        self.weight = -1.0

    def get(self, buf: SeriesBuffer, col: int, weight: float) -> np.ndarray:
        values = buf.column(col)
        n = len(values)
        if buf.version != self.version or weight != self.weight:
            self.done, self.state, self.version, self.weight = 0, (0.0, 0), buf.version, weight
        if n > len(self.out):
            grown = np.empty(2 * n)
            grown[: self.done] = self.out[: self.done]
            self.out = grown
        self.state = ema_into(values, weight, self.out, self.done, self.state)
        self.done = n
        return self.out[:n]


def bucket_edges(n: int, per_bucket: int) -> np.ndarray:
    """Start indices of buckets of ``per_bucket`` points, aligned to index 0 so that new points
    only change the last bucket."""
    return np.arange(0, n, max(1, per_bucket))


def bucket_mean(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    counts = np.diff(np.append(starts, len(values)))
    return np.add.reduceat(values, starts) / counts


def log_safe(y: np.ndarray, log: bool) -> np.ndarray:
    """Values for a log axis: those <= 0 become NaN (a gap), never a made-up floor."""
    y = np.array(y, dtype=np.float64)
    if log:
        y[~(y > 0)] = np.nan
    return y


def write_curves_csv(runs: list[RunCurves], path: str | Path) -> Path:
    """Raw (unsmoothed) stored points of ``runs``: ``run,split,step,content,energy`` rows."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "split", "step", "content", "energy"])
        for run in runs:
            for split, buf in (("train", run.train), ("val", run.val)):
                for s, c, e in zip(buf.steps, buf.column(0), buf.column(1), strict=True):
                    w.writerow([run.label, split, int(s), f"{c:.6g}", f"{e:.6g}"])
    return path
