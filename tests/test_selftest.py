"""The installation self-test, run the way an installer or CI runs it: ``python -m landauer_gui --self-test``."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _verdicts(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("SELF-TEST ")]


def test_self_test_passes_and_leaves_the_user_folder_alone(isolated_home: Path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "landauer_gui", "--self-test"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    verdicts = _verdicts(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(verdicts) == 1, result.stdout
    assert verdicts[0].startswith("SELF-TEST PASSED: trained 20 steps on "), verdicts[0]
    assert "checkpoint reloaded, generated 80 chars" in verdicts[0]
    assert not any(isolated_home.iterdir()), "the self-test wrote into the user's folder"


def test_a_failed_check_prints_one_reason_and_fails(monkeypatch, capsys, isolated_home: Path):
    from landauer_gui import selftest

    def missing():
        raise FileNotFoundError("bundled file tiny_shakespeare.txt not found")

    monkeypatch.setattr("core.resources.bundled_corpus", missing)
    assert selftest.run(timeout_s=60) == 1
    verdicts = _verdicts(capsys.readouterr().out)
    assert verdicts == ["SELF-TEST FAILED: bundled file tiny_shakespeare.txt not found"]
    assert os.environ["LANDAUER_STUDIO_HOME"] == str(isolated_home)  # restored after the run


def test_installed_launcher_runs_the_same_main_as_the_bundle():
    """``landauer-studio`` (wheel) and the bundle's entry (landauer_gui/__main__.py) share app.main."""
    from landauer_gui.app import main

    scripts = entry_points(group="gui_scripts", name="landauer-studio")
    if not scripts:
        pytest.skip("landauer-studio is not installed (pip install -e .)")
    assert next(iter(scripts)).load() is main
    package_main = (REPO / "landauer_gui" / "__main__.py").read_text(encoding="utf-8")
    assert "from landauer_gui.app import main" in package_main
    spec = (REPO / "build_app.spec").read_text(encoding="utf-8")
    assert 'ENTRY = ROOT / "landauer_gui" / "__main__.py"' in spec
