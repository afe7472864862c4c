"""Render docs/screenshot_watch.png: the studio watching a run that the command line trains.

A real ``python -m core.train`` run on the bundled corpus writes a run folder in a
throw-away home; half-way through, the studio (``MainWindow.watch_run``, what
``landauer-studio --watch RUN_DIR`` does) follows it live and the window is grabbed.

    QT_QPA_PLATFORM=offscreen python scripts/screenshot_watch.py [--steps 1000] [--out docs]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _last_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--at", type=float, default=0.6, help="grab when this share of the steps is done")
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--size", default="1280x800")
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="landauer-watch-"))
    os.environ["LANDAUER_STUDIO_HOME"] = str(home)
    run = home / "cluster-runs" / "shakespeare-cli"

    from core.resources import bundled_corpus

    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.train", "--data-path", str(bundled_corpus()), "--save-dir", str(run),
         "--steps", str(args.steps), "--eval-every", "100", "--save-every", "250", "--log-every", "50",
         "--eval-batches", "4", "--device", "cpu"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    try:
        from PySide6.QtWidgets import QApplication

        from landauer_gui.main_window import MainWindow

        app = QApplication.instance() or QApplication([sys.argv[0]])
        app.setStyle("Fusion")
        w = MainWindow()
        width, height = (int(v) for v in args.size.split("x"))
        w.resize(width, height)
        w.show()
        end = time.monotonic() + 1800
        while _last_step(run) < 0.2 * args.steps and proc.poll() is None and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.05)
        if not w.watch_run(run):
            raise SystemExit(f"could not watch {run}: {w.train_view.banner.text()}")
        while _last_step(run) < args.at * args.steps and proc.poll() is None and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.05)
        if proc.poll() is not None:
            raise SystemExit("the run ended before the screenshot: raise --steps")
        stop = time.monotonic() + 2.5  # a couple of polls and redraws
        while time.monotonic() < stop:
            app.processEvents()
            time.sleep(0.02)
        w.train_view.plot.redraw()
        app.processEvents()
        args.out.mkdir(parents=True, exist_ok=True)
        w.grab().save(str(args.out / "screenshot_watch.png"))
        print(f"wrote {args.out / 'screenshot_watch.png'} at step {_last_step(run)} of {args.steps}")
        w.train_view.watch.stop()
        w.close()
    finally:
        proc.terminate()
        proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
