"""How responsive the studio stays while it trains: lateness of a 10 ms UI-thread timer.

Opens the real window, trains a small model at full speed in the worker thread
(plots, log and progress updating as usual) and prints the p50/p99 lateness of
a 10 ms timer on the UI thread, next to an idle baseline.

    QT_QPA_PLATFORM=offscreen python scripts/ui_latency.py [--seconds 10] [--corpus FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement time per phase")
    ap.add_argument("--corpus", type=Path, help="text to train on (default: the bundled corpus)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--torch-threads", type=int, default=1)
    args = ap.parse_args(argv)
    os.environ["LANDAUER_STUDIO_HOME"] = tempfile.mkdtemp(prefix="landauer-latency-")

    import torch
    from PySide6.QtWidgets import QApplication

    from landauer_gui.latency import TimerLatencyProbe
    from landauer_gui.main_window import MainWindow

    torch.set_num_threads(args.torch_threads)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    w = MainWindow()
    w.resize(1280, 800)
    w.show()
    tv = w.train_view

    def spin(seconds: float, until=None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until()):
            app.processEvents()
            time.sleep(0.001)

    if args.corpus:
        tv.corpus_picker.set_corpus(str(args.corpus))
    spin(60, lambda: not tv.corpus_picker.is_loading())
    tv.form.set_values(tv.form.values().replace(
        batch_size=16, seq_len=64, embed_dim=32, hidden_dim=args.hidden, num_layers=1,
        steps=10_000_000, eval_every=100, eval_batches=4, save_every=0, log_every=100))
    tv.device_combo.setCurrentIndex(max(0, tv.device_combo.findData("cpu")))

    probe = TimerLatencyProbe(10)
    probe.start()
    spin(args.seconds / 2)
    probe.stop()
    idle = probe.stats_ms()

    if not tv.start():
        print("cannot start:", tv.start_blockers())
        return 1
    spin(120, lambda: len(tv.plot.live.train) >= 5)
    first = tv.controls.progress.value()
    probe.start()
    t0 = time.monotonic()
    spin(args.seconds)
    probe.stop()
    busy = probe.stats_ms()
    steps = tv.controls.progress.value() - first
    rate = steps / (time.monotonic() - t0)
    tv.stop_and_wait()
    w.close()

    print(f"idle:     p50 {idle['p50']:6.1f} ms  p99 {idle['p99']:6.1f} ms  max {idle['max']:6.1f} ms")
    print(f"training: p50 {busy['p50']:6.1f} ms  p99 {busy['p99']:6.1f} ms  max {busy['max']:6.1f} ms  "
          f"({rate:.1f} steps/s, last plot redraw {tv.plot.last_redraw_ms:.1f} ms, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
