"""Time from launch to the studio's first painted window, next to ``python -c "import torch"``.

The studio is started offscreen with ``--exit-after-first-paint``; its time is
taken when it prints the first-paint line (it then closes, waiting for the
engine thread). Rounds are interleaved so both see the same machine load; the
medians are printed. The goal: the window in at most half the torch import time.

    python scripts/startup_time.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST_PAINT_LINE = "first paint"  # as printed by landauer_gui.app


def _env(home: str) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LANDAUER_STUDIO_HOME=home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def time_window(env: dict[str, str]) -> float:
    """Seconds from starting the process to its first-paint line."""
    code = "from landauer_gui.app import main; raise SystemExit(main(['--exit-after-first-paint']))"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    elapsed = None
    for line in proc.stdout:
        if line.startswith(FIRST_PAINT_LINE) and elapsed is None:
            elapsed = time.perf_counter() - t0
    if proc.wait() != 0 or elapsed is None:
        raise SystemExit(f"the studio exited with {proc.returncode} before painting its window")
    return elapsed


def time_torch(env: dict[str, str]) -> float:
    """Seconds for a whole ``python -c "import torch"`` process."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], env=env, cwd=REPO, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    env = _env(tempfile.mkdtemp(prefix="landauer-startup-"))
    window, torch_ = [], []
    for i in range(args.rounds):
        window.append(time_window(env))
        torch_.append(time_torch(env))
        print(f"round {i + 1}: window {window[-1]:.2f} s, import torch {torch_[-1]:.2f} s", flush=True)
    w, t = statistics.median(window), statistics.median(torch_)
    print(f"median: window {w:.2f} s, import torch {t:.2f} s, ratio {w / t:.2f} "
          f"({'meets' if w <= t / 2 else 'misses'} the goal of <= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
