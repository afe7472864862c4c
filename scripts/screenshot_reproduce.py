"""Render docs/screenshot_reproduce.png: the Reproduce published results window after a real run.

A short real reproduction (rows 1 and 4, two seeds each by default) in a
throw-away home folder, so the picture shows the table and plot a user gets.
The published numbers come from the canonical tiny_shakespeare.txt; pass it with
``--data-path`` (the bundled corpus is used otherwise, and the window says so).

    QT_QPA_PLATFORM=offscreen python scripts/screenshot_reproduce.py \\
        --data-path tiny_shakespeare.txt [--rows 1,4] [--seeds 2] [--steps 100] [--out docs]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from screenshots import _wait, open_window

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1,4")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-path", default="")
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--size", default="1280x860")
    args = ap.parse_args(argv)
    app, w = open_window(args.size)
    home = os.environ["LANDAUER_STUDIO_HOME"]

    from core.published import parse_rows

    tv = w.train_view
    if args.data_path:
        tv.corpus_picker.set_corpus(str(Path(args.data_path).resolve()))
    _wait(app, lambda: tv.corpus_picker.corpus() is not None, 120)
    w.open_reproduce_dialog()
    dlg = w.reproduce_dialog
    width, height = (int(v) for v in args.size.split("x"))
    dlg.resize(width, height)
    _wait(app, lambda: dlg.corpus_picker.corpus() is not None, 120)
    dlg.set_rows(parse_rows(args.rows))
    dlg.schedule.seeds.setValue(args.seeds)
    dlg.schedule.steps.setValue(args.steps)
    dlg.schedule.device_combo.setCurrentIndex(max(0, dlg.schedule.device_combo.findData(args.device)))
    dlg.output_picker.path_edit.setText(str(Path(home) / "published-table.md"))
    assert dlg.start(), dlg.start_blockers()
    _wait(app, lambda: not dlg.is_running(), 24 * 3600)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    args.out.mkdir(parents=True, exist_ok=True)
    dlg.grab().save(str(args.out / "screenshot_reproduce.png"))
    print(dlg.markdown())
    print(f"wrote {args.out / 'screenshot_reproduce.png'}")
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
