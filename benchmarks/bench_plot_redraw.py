"""What one timer-driven redraw of the loss curves costs on the UI thread (redraw + paint).

Feeds a MetricsPlot like a live run does (``--per-redraw`` steps between
redraws, a validation point every 500 steps), redraws and paints after each
batch, and prints the median and 90th percentile, overall and over the last 50
redraws (the longest curves).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_plot_redraw.py [--redraws 200] [--per-redraw 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redraws", type=int, default=200)
    ap.add_argument("--per-redraw", type=int, default=50, help="training steps added between redraws")
    ap.add_argument("--size", default="800x500")
    args = ap.parse_args(argv)

    import numpy as np
    from PySide6.QtWidgets import QApplication

    from landauer_gui.plots import MetricsPlot

    app = QApplication.instance() or QApplication([sys.argv[0]])
    plot = MetricsPlot()
    plot.resize(*(int(v) for v in args.size.split("x")))
    plot.show()
    total = args.redraws * args.per_redraw
    plot.set_step_range(0, total)
    rng = np.random.default_rng(0)
    times, step = [], 0
    for _ in range(args.redraws):
        for _ in range(args.per_redraw):
            step += 1
            plot.add_step(step, 3 * np.exp(-step / 3000) + 1 + rng.normal(0, 0.1),
                          0.01 + abs(rng.normal(0, 0.002)), step * 0.02)
            if step % 500 == 0:
                plot.add_eval(step, 2.0, 0.01)
        app.processEvents()
        t0 = time.perf_counter()
        plot.redraw()
        plot.graphics.viewport().repaint()
        times.append((time.perf_counter() - t0) * 1000)
    t = np.array(times)
    print(f"{total} steps, {args.redraws} redraws: p50 {np.median(t):.1f} ms  p90 {np.percentile(t, 90):.1f} ms  "
          f"(last 50: p50 {np.median(t[-50:]):.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
