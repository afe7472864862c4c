"""How responsive the studio stays while it works: lateness of a 10 ms UI-thread timer.

Opens the real window and prints the p50/p99 lateness of a 10 ms timer on the
UI thread, next to an idle baseline, while the studio

- trains a small model at full speed in the worker thread (``--mode train``:
  plots, log and progress updating as usual), or
- analyses a long text in the Explore view (``--mode explore``: the whole
  corpus, about 1 MB, with a checkpoint of the default size), then scrolls
  through the coloured text page by page and by random jumps while the mouse
  hovers characters (distribution chart, tracks, heatmap and phase follow).

    QT_QPA_PLATFORM=offscreen python scripts/ui_latency.py [--seconds 10] [--corpus FILE]
    QT_QPA_PLATFORM=offscreen python scripts/ui_latency.py --mode explore [--checkpoint FILE]
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
    ap.add_argument("--mode", choices=("train", "explore"), default="train")
    ap.add_argument("--checkpoint", type=Path,
                    help="explore mode: the checkpoint to analyse with (default: an untrained model of the "
                         "default size, 2 layers of 256 units)")
    args = ap.parse_args(argv)
    os.environ["LANDAUER_STUDIO_HOME"] = tempfile.mkdtemp(prefix="landauer-latency-")

    import torch
    from PySide6.QtWidgets import QApplication

    from landauer_gui.engine import engine
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

    if args.mode == "explore":
        return explore(args, app, w, spin)

    if args.corpus:
        tv.corpus_picker.set_corpus(str(args.corpus))
    spin(60, lambda: not tv.corpus_picker.is_loading() and engine().is_ready())
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


def _untrained_checkpoint(text: str, folder: Path) -> Path:
    """A model of the default size with ``text``'s vocabulary: analysis costs the same trained or not."""
    import torch

    from core.checkpoint import build_payload, save_checkpoint
    from core.hparams import TrainConfig
    from core.model import LandauerLLM

    torch.manual_seed(0)
    itos = dict(enumerate(sorted(set(text))))
    model = LandauerLLM(**TrainConfig().model_kwargs(len(itos)))
    return save_checkpoint(folder / "untrained.pth", build_payload(model, itos, {}, {"step": 0}))


def explore(args, app, w, spin) -> int:
    """Analyse a long text in the Explore view, then scroll and hover through it."""
    import random

    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest

    from core.resources import bundled_corpus
    from landauer_gui.engine import engine
    from landauer_gui.latency import TimerLatencyProbe
    from landauer_gui.main_window import EXPLORE_TAB

    text = Path(args.corpus or bundled_corpus()).read_text(encoding="utf-8")
    ckpt = args.checkpoint or _untrained_checkpoint(text, Path(os.environ["LANDAUER_STUDIO_HOME"]))
    ev = w.explore_view
    w.show_view(EXPLORE_TAB)
    spin(120, engine().is_ready)
    probe = TimerLatencyProbe(10)
    probe.start()
    spin(args.seconds / 2)
    probe.stop()
    idle = probe.stats_ms()

    done: list[int] = []
    ev.analysis_finished.connect(lambda: done.append(1))
    probe.start()
    t0 = time.monotonic()
    ev.explore_text(text, "latency probe", ckpt)
    spin(1200, lambda: bool(done))
    probe.stop()
    wall = time.monotonic() - t0
    analysing = probe.stats_ms()
    if ev.error_text() or ev.prepared() is None:
        print("analysis failed:", ev.error_text())
        return 1

    pane, bar = ev.pane, ev.pane.verticalScrollBar()
    rng = random.Random(0)
    phases = []
    for tab in (0, 1):  # the surprise/motion tracks, then the hidden-state heatmap
        ev.lower_tabs.setCurrentIndex(tab)
        spin(0.5)
        probe.start()
        end = time.monotonic() + args.seconds / 2
        ticks = 0
        while time.monotonic() < end:
            ticks += 1
            if ticks % 5 == 0:
                bar.setValue(rng.randrange(bar.maximum() + 1))  # a drag of the scroll bar
            else:
                bar.setValue(min(bar.maximum(), bar.value() + bar.pageStep()))
            vp = pane.viewport()
            QTest.mouseMove(vp, QPoint(rng.randrange(vp.width()), rng.randrange(vp.height())))
            spin(0.03)
        probe.stop()
        phases.append((ticks, probe.stats_ms()))
    ev.shutdown()
    w.close()

    s = ev.prepared().summary
    print(f"text: {len(text):,} characters, checkpoint {Path(ckpt).name}, {s.bits_per_char:.3f} bits/char")
    print(f"analysis: {ev.last_analysis_s:.2f} s in the worker, {wall:.2f} s from click to coloured text")
    rows = [("idle", idle), ("analysing", analysing)] + [
        (f"scrolling+hover ({name}, {ticks} moves)", stats)
        for name, (ticks, stats) in zip(("tracks", "heatmap"), phases, strict=True)]
    for name, st in rows:
        print(f"{name + ':':40s} p50 {st['p50']:6.1f} ms  p99 {st['p99']:6.1f} ms  max {st['max']:6.1f} ms")
    print(f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
