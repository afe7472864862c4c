"""Render docs/screenshot_explore*.png: the Explore view after reading real text with a trained checkpoint.

Give a checkpoint of a run on the corpus (e.g. 2000 steps of the default
model, ``python -m core.train --steps 2000 --save-dir run``); the view reads a
slice of the corpus's validation split, branches at one character, ranks the
units that single out the speakers' names and shows each tab once.

    QT_QPA_PLATFORM=offscreen python scripts/screenshot_explore.py --checkpoint run/landauer_llm_step2000.pth \
        [--compare run/landauer_llm_step500.pth] [--corpus tiny_shakespeare.txt] [--out docs]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from screenshots import _wait, open_window  # noqa: E402


def _settle(app, seconds: float = 0.5) -> None:
    """Let queued repaints and deferred plot updates happen before a grab."""
    end = time.monotonic() + seconds
    _wait(app, lambda: time.monotonic() >= end, seconds + 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--compare", type=Path, help="an earlier checkpoint of the same run")
    ap.add_argument("--corpus", type=Path, default=REPO / "tiny_shakespeare.txt")
    ap.add_argument("--start", type=int, default=3000, help="first validation character of the slice")
    ap.add_argument("--length", type=int, default=1600)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--size", default="1280x800")
    args = ap.parse_args(argv)
    app, w = open_window(args.size)

    from landauer_gui.engine import engine
    from landauer_gui.main_window import EXPLORE_TAB

    w.show_view(EXPLORE_TAB)
    ev = w.explore_view
    _wait(app, engine().is_ready, 120)
    ev.checkpoints.add(args.checkpoint, select=True)
    ev.source.set_corpus_slice(args.corpus, args.start, args.length)
    done: list[str] = []
    ev.analysis_finished.connect(lambda: done.append("analysis"))
    ev.source.take_corpus_slice()
    _wait(app, lambda: done, 600)
    if ev.error_text():
        print(ev.error_text())
        return 1
    text = ev.prepared().analysis.text
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. GLTR colours, the distribution at one character and a branch from it.
    ev.set_colour_mode("rank")
    ev.form.set_values(ev.form.values().replace(max_new_tokens=160, temperature=0.8, top_k=10, seed=7))
    at = text.find(" the ", 200) + 1
    ev.select_position(at)
    itos = ev.prepared().analysis.itos
    probs = ev.prepared().analysis.probs[at - 1]
    alternative = int(sorted(range(len(probs)), key=lambda k: -probs[k])[1])  # the runner-up
    branched: list[str] = []
    ev.branch_finished.connect(branched.append)
    ev.branch(alternative)
    _wait(app, lambda: branched, 300)
    ev.select_position(at)
    ev.lower_tabs.setCurrentWidget(ev.tracks)
    _settle(app)
    w.grab().save(str(args.out / "screenshot_explore.png"))
    print("branched at", at, "with", repr(itos[alternative]))

    # 2. Units that single out a speaker's name, the text coloured by the best one.
    name = re.search(r"\n([A-Z][A-Z ]+):\n", text)
    if name is not None:
        ranked: list[int] = []
        ev.ranking_finished.connect(lambda: ranked.append(1))
        ev.heatmap.set_layer(ev.heatmap.layer_box.count() - 1)
        ev.pane.set_selection(name.start(1), name.end(1))
        _wait(app, lambda: ranked, 120)
        ev.heatmap.select_unit(ev.heatmap.ranked_units()[0])
    ev.lower_tabs.setCurrentWidget(ev.heatmap)
    ev.select_position(name.start(1) if name else at)
    _settle(app)
    w.grab().save(str(args.out / "screenshot_explore_units.png"))

    # 3. Phase circles, and (if given) what the run learned since an earlier checkpoint.
    if args.compare is not None:
        compared: list[int] = []
        ev.compare_finished.connect(lambda: compared.append(1))
        ev.set_compare_checkpoint(args.compare)
        ev.compare()
        _wait(app, lambda: compared, 600)
    ev.lower_tabs.setCurrentWidget(ev.phase)
    ev.select_position(at)
    _settle(app)
    w.grab().save(str(args.out / "screenshot_explore_phase.png"))
    ev.shutdown()
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
