"""Build the one-folder app with build_app.spec, then report its build time and size.

Usage::

    python scripts/build_bundle.py                  # -> dist/LandauerStudio
    python scripts/build_bundle.py --self-test      # and run the bundle's self-test
    python scripts/build_bundle.py --dist OUT --work TMP

The size is what ``du`` counts for the folder (links not followed), so the
number can be compared with the 1 GiB budget that tests/test_bundle.py holds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_NAME = "LandauerStudio"


def folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def largest_entries(folder: Path, count: int) -> list[tuple[int, str]]:
    """The biggest files and package folders under _internal, to see where the size goes."""
    internal = folder / "_internal"
    root = internal if internal.is_dir() else folder
    sizes = []
    for entry in root.iterdir():
        if entry.is_symlink():  # PyInstaller links top-level names to libraries inside packages
            continue
        size = folder_bytes(entry) if entry.is_dir() else entry.stat().st_size
        sizes.append((size, entry.name))
    return sorted(sizes, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="output folder (default: dist)")
    parser.add_argument("--work", type=Path, default=REPO / "build", help="PyInstaller work folder (default: build)")
    parser.add_argument("--self-test", action="store_true", help="run the bundle's --self-test afterwards")
    parser.add_argument("--top", type=int, default=10, help="list the N largest entries (0: none)")
    args = parser.parse_args(argv)

    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(args.dist), "--workpath", str(args.work), str(REPO / "build_app.spec")]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    if subprocess.run(cmd, cwd=REPO).returncode != 0:
        print("build failed", file=sys.stderr)
        return 1
    minutes, seconds = divmod(time.monotonic() - t0, 60)
    bundle = args.dist / APP_NAME
    print(f"built {bundle} in {int(minutes)}m{seconds:04.1f}s; size {folder_bytes(bundle) / 2**20:.0f} MiB")
    for size, name in largest_entries(bundle, args.top):
        print(f"  {size / 2**20:8.1f} MiB  {name}")

    if args.self_test:
        exe = bundle / (f"{APP_NAME}.exe" if sys.platform == "win32" else APP_NAME)
        env = {**os.environ}
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        return subprocess.run([str(exe), "--self-test"], env=env).returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
