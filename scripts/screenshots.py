"""Render docs/screenshot_train.png, docs/screenshot_samples.png and docs/screenshot_generate.png
from the real window.

A short real training run on the bundled corpus and one real generation, in a
throw-away home folder, so the pictures show what a user sees after a first run.

    QT_QPA_PLATFORM=offscreen python scripts/screenshots.py [--steps 300] [--out docs]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESET = "Benchmark rows 1–3: published defaults"
sys.path.insert(0, str(REPO))


def _wait(app, cond, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("timed out")
        app.processEvents()
        time.sleep(0.01)


def open_window(size: str):
    """``(app, window)``: a fresh studio window at ``WxH``, Fusion style, in a throw-away home folder."""
    os.environ["LANDAUER_STUDIO_HOME"] = tempfile.mkdtemp(prefix="landauer-shots-")

    from PySide6.QtWidgets import QApplication

    from landauer_gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setStyle("Fusion")
    w = MainWindow()
    width, height = (int(v) for v in size.split("x"))
    w.resize(width, height)
    w.show()
    return app, w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--size", default="1280x800")
    ap.add_argument("--corpus", type=Path, help="text to train on (default: the bundled corpus)")
    ap.add_argument("--sample-step", type=int, default=300, help="the step whose sample is shown")
    args = ap.parse_args(argv)
    app, w = open_window(args.size)

    from landauer_gui.main_window import GENERATE_TAB, TRAIN_TAB

    tv = w.train_view
    if args.corpus:
        tv.corpus_picker.set_corpus(str(args.corpus))
    _wait(app, lambda: not tv.corpus_picker.is_loading(), 60)
    tv.presets.apply(PRESET)  # the published defaults
    tv.form.set_values(tv.form.values().replace(steps=args.steps, eval_every=100, save_every=500))
    assert tv.start(), tv.start_blockers()
    _wait(app, lambda: not tv.is_running(), 900)
    tv.runs.refresh()
    tv.plot.redraw()
    app.processEvents()
    args.out.mkdir(parents=True, exist_ok=True)
    w.show_view(TRAIN_TAB)
    app.processEvents()
    w.grab().save(str(args.out / "screenshot_train.png"))

    tv.bottom_tabs.setCurrentWidget(tv.samples)
    tv.samples.select_step(args.sample_step)
    tv.plot.set_smoothing(0.9)  # the raw steps faint behind the smoothed curve
    tv.right_splitter.setSizes([560, 240])
    tv.plot.redraw()
    for _ in range(5):
        app.processEvents()
        time.sleep(0.05)
    tv.plot.hover(tv.plot.content_plot.vb.mapViewToScene(tv.plot.content_plot.vb.viewRect().center()))
    app.processEvents()
    w.grab().save(str(args.out / "screenshot_samples.png"))

    gv = w.generate_view
    w.show_view(GENERATE_TAB)
    gv.refresh()
    _wait(app, lambda: not gv.is_reading_info(), 60)
    gv.set_prompt("ROMEO:\nWhat light")
    gv.set_sampling(max_new_tokens=400, temperature=0.8, seed=7)
    gv.generate()
    _wait(app, lambda: not gv.is_generating(), 120)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    w.grab().save(str(args.out / "screenshot_generate.png"))
    print(f"wrote screenshot_train.png, screenshot_samples.png and screenshot_generate.png in {args.out}")
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
