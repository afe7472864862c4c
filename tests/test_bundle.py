"""Build the PyInstaller bundle from build_app.spec and run its self-test (minutes: CI only).

Select with ``pytest -m bundle``; skip with ``-m "not slow"``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.bundle, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
APP_NAME = "LandauerStudio"
BUILD_TIMEOUT_S = 40 * 60  # about 8 minutes on 2 cores; slack for a busy machine
MAX_BUNDLE_BYTES = 2**30  # 1 GiB: torch and llvmlite alone are ~600 MB, so excludes must hold


def _folder_bytes(folder: Path) -> int:
    """The same count the build script reports (links are not counted twice)."""
    spec = importlib.util.spec_from_file_location("build_bundle", REPO / "scripts" / "build_bundle.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.folder_bytes(folder)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Iterator[Path]:
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("bundle")
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(out / "dist"), "--workpath", str(out / "work"), str(REPO / "build_app.spec")]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, f"PyInstaller failed:\n{result.stderr[-6000:]}"
    yield out / "dist" / APP_NAME
    shutil.rmtree(out, ignore_errors=True)  # ~2 GB with the work folder


def test_bundle_self_test_passes(bundle: Path):
    exe = bundle / (f"{APP_NAME}.exe" if sys.platform == "win32" else APP_NAME)
    assert exe.is_file(), f"no executable in {bundle}"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONPATH", None)  # the bundle must not borrow modules from this checkout
    result = subprocess.run([str(exe), "--self-test"], cwd=bundle.parent, env=env,
                            capture_output=True, text=True, timeout=300)
    verdicts = [line for line in result.stdout.splitlines() if line.startswith("SELF-TEST ")]
    assert result.returncode == 0, result.stdout + result.stderr[-6000:]
    assert len(verdicts) == 1 and verdicts[0].startswith("SELF-TEST PASSED: "), result.stdout
    assert "numba scan ready" in verdicts[0], "numba/llvmlite did not work inside the bundle"


def test_bundle_stays_under_one_gigabyte(bundle: Path):
    size = _folder_bytes(bundle)
    assert size < MAX_BUNDLE_BYTES, f"{bundle} is {size / 2**20:.0f} MiB"
