"""Loss curves: content loss and energy of the live run and past runs, train and validation.

Events only append to numpy buffers; a timer redraws what changed. That keeps
the UI thread's cost per trainer step tiny, whatever the step rate. Buffers
have a point cap: past it, neighbouring points are averaged in pairs (keeping
each bin's minimum and maximum), so a 100k-step run keeps its shape in a
bounded amount of memory and draw time.

What the curves show, so people can trust them:

* smoothing is the debiased exponential moving average TensorBoard uses, drawn
  over the raw series (faint), so smoothing never hides what happened;
* when more points share a pixel than it can show, each pixel-wide bucket is
  drawn as its mean, over a band from its minimum to its maximum;
* the x axis is the step, the characters seen (step x batch x sequence
  length) or the wall time the run spent (``elapsed_s``);
* log y is a true log axis (values <= 0 are left out, not clamped);
* the view follows new points until the user zooms or pans, and is fitted
  again with the Fit button or a double-click;
* a read-out lists every shown series' value at the cursor; a click reports
  the x under it (the samples view selects that step's sample) and a
  vertical marker shows the step of the sample being read.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from landauer_gui.curve_controls import X_MODES, CurveControls
from landauer_gui.curve_data import (
    RunCurves,
    SmoothedCache,
    bucket_edges,
    bucket_mean,
    log_safe,
    write_curves_csv,
)
from landauer_gui.curve_items import MARKER_PEN, TRAIN_PENS, VAL_PENS, Band, ValueAxis

if TYPE_CHECKING:
    from core.run_curves import Curves


REDRAW_MS = 100  # at most 10 redraws a second...
REDRAW_MAX_MS = 1000
REDRAW_DUTY = 0.25  # ...and never more than a quarter of the UI thread's time (slow software rendering)
HOVER_RATE = 30  # read-out updates per second at most
RAW_ALPHA = 70  # the raw series behind a smoothed one

pg.setConfigOptions(antialias=True, background="w", foreground="#333")


class MetricsPlot(QWidget):
    """Two stacked plots (content loss, energy) with smoothing, x-axis choice, log-y, read-out and export."""

    smoothing_changed = Signal(float)
    clicked = Signal(float)  # x (in the current axis mode) of a left click on either plot

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.live = RunCurves()
        self._overlays: list[RunCurves] = []
        self._dirty = True
        self._cache: dict[tuple[int, str, int], SmoothedCache] = {}
        self._items: dict[tuple[int, str, int], pg.PlotDataItem] = {}
        self._raw_items: dict[tuple[int, str, int], pg.PlotDataItem] = {}
        self._bands: dict[tuple[int, str, int], Band] = {}
        self._drawn: dict[tuple[int, str, int], tuple] = {}  # what each item shows now
        self._shown: dict[tuple[int, str, int], tuple] = {}  # (x, y, raw) at full resolution, for the read-out
        self._span: tuple[int, int] | None = None  # the live run's step span
        self._marker: tuple[int, int] | None = None  # (step, run index)

        self.controls = CurveControls(self)
        self.smooth_spin, self.x_axis = self.controls.smooth_spin, self.controls.x_axis
        self.log_y, self.fit_button = self.controls.log_y, self.controls.fit_button
        self.smooth_spin.valueChanged.connect(self._on_smoothing)
        self.x_axis.currentIndexChanged.connect(self._on_x_mode)
        self.log_y.toggled.connect(self._on_log)
        self.fit_button.clicked.connect(self.fit)

        # Fixed height and an ignored width: new text never re-lays out (and repaints) the plots.
        self.readout = QLabel(" ", self)
        self.readout.setTextFormat(Qt.TextFormat.PlainText)
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.readout.setFixedHeight(self.readout.sizeHint().height())
        self.readout.setStyleSheet("color: palette(placeholder-text);")

        self.graphics = pg.GraphicsLayoutWidget(self)
        self.graphics.setMinimumHeight(200)
        self.content_plot = self.graphics.addPlot(row=0, col=0, title="Content loss (cross-entropy)",
                                                  axisItems={"left": ValueAxis("left")})
        self.energy_plot = self.graphics.addPlot(row=1, col=0, title="Energy (unweighted)",
                                                 axisItems={"left": ValueAxis("left")})
        self._markers = []
        for p in (self.content_plot, self.energy_plot):
            # No grid: in software rendering its antialiased lines cost as much as everything else.
            p.setClipToView(True)
            p.setDownsampling(auto=True, mode="peak")
            marker = pg.InfiniteLine(angle=90, movable=False, pen=MARKER_PEN)
            marker.setZValue(10)
            marker.hide()
            p.addItem(marker, ignoreBounds=True)
            self._markers.append(marker)
            p.vb.sigXRangeChanged.connect(self._on_view_changed)
        # One legend serves both plots (same colours); top right is where a falling loss leaves room.
        self.content_plot.addLegend(offset=(-10, 10), labelTextSize="8pt",
                                    brush=pg.mkBrush(255, 255, 255, 210), pen=pg.mkPen("#ccc"))
        self.energy_plot.setLabel("bottom", "step")
        self.energy_plot.setXLink(self.content_plot)
        scene = self.graphics.scene()
        scene.sigMouseClicked.connect(self._on_click)
        self._hover = pg.SignalProxy(scene.sigMouseMoved, rateLimit=HOVER_RATE,
                                     slot=lambda args: self.hover(args[0]))

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.controls)
        lay.addWidget(self.readout)
        lay.addWidget(self.graphics, 1)

        self.last_redraw_ms = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()
        self.smooth_spin.setValue(0.6)

    # -- data in ----------------------------------------------------------------------------

    def add_step(self, step: int, content: float, energy: float, elapsed_s: float | None = None) -> None:
        self.live.train.append(step, content, energy)
        if elapsed_s is not None:
            self.live.add_clock(step, elapsed_s)
        self._dirty = True

    def add_eval(self, step: int, content: float, energy: float) -> None:
        self.live.val.append(step, content, energy)
        self._dirty = True

    def clear(self) -> None:
        """Forget the live run (overlays stay)."""
        self.live.clear()
        self.live.tokens_per_step = None
        self._dirty = True

    def set_tokens_per_step(self, tokens: int | None) -> None:
        """Characters the live run reads per step (batch × sequence length): the "Characters" axis."""
        self.live.tokens_per_step = tokens or None
        self._dirty = True

    def preload(self, curves: Curves, until_step: float) -> None:
        """Put a run folder's recorded curves up to ``until_step`` into the live run (a resume)."""
        self.live.add_recorded(curves, until_step)
        self._dirty = True

    def set_overlays(self, runs: list[RunCurves]) -> None:
        """Show past runs next to the live one (e.g. two runs picked for comparison)."""
        for key in [k for k in self._items if k[0] > 0]:
            self._remove(key)
        self._overlays = list(runs)
        if self._marker is not None and self._marker[1] > len(self._overlays):
            self.set_marker(None)
        if self._overlays:  # past runs may be longer than the live run's fixed span
            self.content_plot.enableAutoRange(x=True)
        self._dirty = True
        self.redraw()

    def _remove(self, key: tuple[int, str, int]) -> None:
        plot = self._plot(key[2])
        plot.removeItem(self._items.pop(key))
        if key in self._raw_items:
            plot.removeItem(self._raw_items.pop(key))
        band = self._bands.pop(key, None)
        if band is not None:
            for item in (band.lo, band.hi, band.fill):
                plot.removeItem(item)
        for d in (self._cache, self._drawn, self._shown):
            d.pop(key, None)

    def overlays(self) -> list[RunCurves]:
        return list(self._overlays)

    def runs(self) -> list[RunCurves]:
        """The live run (index 0) and the overlays, in the order marker and click indices use."""
        return [self.live, *self._overlays]

    # -- view settings ----------------------------------------------------------------------

    def smoothing(self) -> float:
        return self.smooth_spin.value()

    def set_smoothing(self, weight: float) -> None:
        self.smooth_spin.setValue(weight)

    def x_mode(self) -> str:
        """"step", "chars" (characters seen) or "time" (wall time in seconds)."""
        return self.x_axis.currentData()

    def set_x_mode(self, mode: str) -> None:
        i = self.x_axis.findData(mode)
        if i < 0:
            raise ValueError(f"unknown x axis {mode!r}; use one of {', '.join(X_MODES)}")
        self.x_axis.setCurrentIndex(i)

    def set_log_y(self, on: bool) -> None:
        self.log_y.setChecked(on)

    def is_following(self) -> bool:
        """True while the view fits itself to new points (until the user zooms or pans)."""
        return bool(self.content_plot.vb.autoRangeEnabled()[1])

    def fit(self) -> None:
        """Fit both plots to their curves and follow new points again."""
        for p in (self.content_plot, self.energy_plot):
            p.enableAutoRange(y=True)
        self._apply_x_span()
        self._dirty = True

    def set_step_range(self, first: int, last: int) -> None:
        """Fix the step axis to a live run's span: the curve fills in from left to right, and
        the axis is not re-laid out on every redraw. Panning or zooming still works; an empty
        span restores automatic range."""
        self._span = (first, last) if last > first else None
        self._apply_x_span()

    def _apply_x_span(self) -> None:
        """Show the live run's span on the x axis, or let the axis fit the curves when there is none."""
        span = self._x_span()
        if span is not None:
            self.content_plot.setXRange(*span, padding=0.02)
        else:
            self.content_plot.enableAutoRange(x=True)

    def _x_span(self) -> tuple[float, float] | None:
        """The live run's span on the current axis (wall time has none until the run ends)."""
        if self._span is None or self._overlays or self.x_mode() == "time":
            return None
        x = self.live.x_of(np.array(self._span), self.x_mode())
        return None if x is None else (float(x[0]), float(x[1]))

    # -- marker and clicks ------------------------------------------------------------------

    def set_marker(self, step: int | None, run: int = 0) -> None:
        """Mark ``step`` of run ``run`` (0: live, then the overlays) with a vertical line; None hides it."""
        self._marker = None if step is None else (int(step), int(run))
        self._place_marker()

    def marker_x(self) -> float | None:
        """Where the marker stands on the current axis, None when hidden."""
        return self._markers[0].value() if self._markers[0].isVisible() else None

    def _place_marker(self) -> None:
        x = None
        if self._marker is not None:
            step, run = self._marker
            runs = self.runs()
            if run < len(runs):
                xs = runs[run].x_of(np.array([step]), self.x_mode())
                x = None if xs is None else float(xs[0])
        for m in self._markers:
            if x is None:
                m.hide()
            else:
                m.setValue(x)
                m.show()

    def step_at(self, x: float, run: int = 0) -> int | None:
        """The step of run ``run`` at ``x`` on the current axis (for a click)."""
        runs = self.runs()
        if run >= len(runs):
            return None
        step = runs[run].step_of(x, self.x_mode())
        return None if step is None or not math.isfinite(step) else round(step)

    def _plot_at(self, scene_pos) -> pg.PlotItem | None:
        for p in (self.content_plot, self.energy_plot):
            if p.vb.sceneBoundingRect().contains(scene_pos):
                return p
        return None

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        plot = self._plot_at(ev.scenePos())
        if plot is None:
            return
        if ev.double():
            self.fit()
            return
        self.clicked.emit(plot.vb.mapSceneToView(ev.scenePos()).x())

    # -- read-out ---------------------------------------------------------------------------

    def hover(self, scene_pos) -> None:
        """Show the values under ``scene_pos`` (scene coordinates) in the read-out."""
        plot = self._plot_at(scene_pos)
        if plot is None:
            self.readout.setText(" ")
            return
        x = plot.vb.mapSceneToView(scene_pos).x()
        self.readout.setText(self.readout_at(x, 0 if plot is self.content_plot else 1))

    def readout_at(self, x: float, col: int = 0) -> str:
        """``x`` and, for every series shown on plot ``col`` (0 content, 1 energy), its value at the
        point nearest ``x``: ``"step 120 · train 1.2345 (raw 1.3000) · val 1.4000 @ step 100"``
        (a point at another step than the cursor's says which)."""
        mode = self.x_mode()
        head = {"step": f"step {x:,.0f}", "chars": f"{x:,.0f} characters",
                "time": f"{x:,.1f} s"}[mode]
        parts = [head]
        smoothed = self.smoothing() > 0
        for key in sorted(self._shown):
            run, split, c = key
            if c != col or not self._items[key].isVisible():
                continue
            xs, ys, raw = self._shown[key]
            if len(xs) == 0:
                continue
            i = int(np.clip(np.searchsorted(xs, x), 1, len(xs) - 1)) if len(xs) > 1 else 0
            if i and abs(xs[i - 1] - x) <= abs(xs[i] - x):
                i -= 1
            name = split if run == 0 else f"{self.runs()[run].label} {split}"
            text = f"{name} {ys[i]:.4f}"
            if raw is not None and smoothed:
                text += f" (raw {raw[i]:.4f})"
            step = self._steps_of(key)[i]
            if mode != "step" or step != round(x):  # a nearest point elsewhere says where it is
                text += f" @ step {step:,.0f}"
            parts.append(text)
        return " · ".join(parts)

    def _steps_of(self, key: tuple[int, str, int]) -> np.ndarray:
        run = self.runs()[key[0]]
        return (run.train if key[1] == "train" else run.val).steps

    # -- drawing ----------------------------------------------------------------------------

    def _on_smoothing(self, weight: float) -> None:
        self._dirty = True
        self.smoothing_changed.emit(weight)

    def _on_log(self, on: bool) -> None:
        for p in (self.content_plot, self.energy_plot):
            p.setLogMode(y=on)
        self._dirty = True

    def _on_x_mode(self, *_: object) -> None:
        mode = self.x_mode()
        axis = self.energy_plot.getAxis("bottom")
        if mode == "chars":
            self.energy_plot.setLabel("bottom", "characters seen", units="chars")
            axis.enableAutoSIPrefix(True)
        elif mode == "time":
            self.energy_plot.setLabel("bottom", "wall time", units="s")
            axis.enableAutoSIPrefix(False)
        else:
            self.energy_plot.setLabel("bottom", "step")
        self.redraw()
        self.fit()

    def _on_view_changed(self, *_: object) -> None:
        self._dirty = True  # zoom changes how many points share a pixel

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

    def _plot(self, col: int) -> pg.PlotItem:
        return self.content_plot if col == 0 else self.energy_plot

    def _item(self, key: tuple[int, str, int], label: str) -> pg.PlotDataItem:
        item = self._items.get(key)
        if item is None:
            run, split, col = key
            plot = self._plot(col)
            palette = TRAIN_PENS if split == "train" else VAL_PENS
            color = palette[run % len(palette)]
            style = Qt.PenStyle.SolidLine if run == 0 else Qt.PenStyle.DashLine
            name = split if run == 0 else f"{label} {split}"
            if split == "train":
                item = plot.plot(pen=pg.mkPen(color, width=1.5, style=style), name=name, connect="finite")
                faint = pg.mkColor(color)
                faint.setAlpha(RAW_ALPHA)
                raw = plot.plot(pen=pg.mkPen(faint, width=1, style=style), connect="finite")
                raw.setZValue(-1)
                raw.setClipToView(True)
                self._raw_items[key] = raw
                self._bands[key] = Band(plot, color)
            else:
                item = plot.plot(pen=pg.mkPen(color, width=1.5, style=style), symbol="o",
                                 symbolSize=5, symbolBrush=color, symbolPen=None, name=name,
                                 connect="finite")
                item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
            self._items[key] = item
        return item

    def _points_per_bucket(self, x: np.ndarray) -> int:
        """How many consecutive points share a pixel in the current view (1: none do)."""
        if len(x) < 2:
            return 1
        lo, hi = self.content_plot.vb.viewRange()[0]
        visible = int(np.searchsorted(x, hi, side="right") - np.searchsorted(x, lo))
        width = max(50, int(self.content_plot.vb.width()))
        return max(1, -(-visible // width)) if visible > width else 1

    def redraw(self) -> None:
        """Push the buffers into the plot items (called by the timer; public for tests/export)."""
        self._dirty = False
        weight = self.smoothing()
        log = self.log_y.isChecked()
        mode = self.x_mode()
        for run_index, run in enumerate(self.runs()):
            scale = (mode, run.tokens_per_step if mode == "chars" else None,
                     len(run.clock) if mode == "time" else None)
            for split, buf in (("train", run.train), ("val", run.val)):
                for col in (0, 1):
                    key = (run_index, split, col)
                    if len(buf) == 0 and key not in self._items:
                        continue
                    x = run.x_of(buf.steps, mode)
                    if x is None:
                        x, buf_view = np.empty(0), slice(0, 0)
                    else:
                        buf_view = slice(None)
                    per = self._points_per_bucket(x) if split == "train" else 1
                    stamp = (len(buf), buf.version, weight if split == "train" else 0, log, scale, per)
                    if self._drawn.get(key) == stamp:
                        continue  # unchanged (typically the validation points): skip re-layout
                    self._drawn[key] = stamp
                    item = self._item(key, run.label)
                    if split == "val":
                        y = buf.column(col)[buf_view]
                        item.setData(x, log_safe(y, log))
                        self._shown[key] = (x, y, None)
                        continue
                    raw = buf.column(col)[buf_view]
                    y = self._cache.setdefault(key, SmoothedCache()).get(buf, col, weight)[buf_view]
                    self._shown[key] = (x, y, raw)
                    self._draw_train(key, x, y, raw, buf.low(col)[buf_view], buf.high(col)[buf_view],
                                     per, buf.stride > 1, weight > 0, log)
        self._place_marker()

    def _draw_train(self, key, x, y, raw, lo, hi, per: int, binned: bool, smoothed: bool,
                    log: bool) -> None:
        """The line; behind it the raw series (smoothing on, few points) or, when points are
        decimated, the min-max band of each pixel-wide bucket."""
        line, raw_item, band = self._items[key], self._raw_items[key], self._bands[key]
        if (per > 1 or binned) and len(x):
            starts = bucket_edges(len(x), per)
            bx = bucket_mean(x, starts)
            line.setData(bx, log_safe(bucket_mean(y, starts), log))
            band.set(bx, np.fmin.reduceat(lo, starts), np.fmax.reduceat(hi, starts), log)
            band.setVisible(True)
            raw_item.setVisible(False)
            return
        line.setData(x, log_safe(y, log))
        band.setVisible(False)
        raw_item.setVisible(smoothed and len(x) > 0)
        if smoothed:
            raw_item.setData(x, log_safe(raw, log))

    def band_shown(self, run: int = 0, col: int = 0) -> bool:
        """Whether run ``run``'s training curve on plot ``col`` is drawn as a min-max band."""
        band = self._bands.get((run, "train", col))
        return band is not None and band.isVisible()

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
        return write_curves_csv(self.runs(), path)
