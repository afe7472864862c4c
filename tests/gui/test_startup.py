"""The window comes before torch: built and painted torch-free, the engine loads afterwards.

Each check runs in a fresh interpreter, since this test session has imported torch already.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180


def _run(code: str, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LANDAUER_STUDIO_HOME=str(home))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def test_window_is_built_and_painted_without_torch_then_the_engine_loads(isolated_home):
    code = """
        import sys, time
        import landauer_gui.app
        assert "torch" not in sys.modules, "importing the app imported torch"

        from PySide6.QtWidgets import QApplication
        from landauer_gui.engine import LOADING_TEXT, engine
        from landauer_gui.main_window import MainWindow

        app = QApplication([sys.argv[0]])
        loader = engine(start=False)
        loader.hold()  # as main() does until the first paint
        w = MainWindow()
        w.show()
        for _ in range(20):
            app.processEvents()
        assert "torch" not in sys.modules, "building the window imported torch"
        tv = w.train_view
        assert w.statusBar().currentMessage() == LOADING_TEXT
        assert w.device_label.text() == LOADING_TEXT
        assert not tv.controls.start_button.isEnabled()
        assert "loading the engine" in tv.start_blockers()[0]
        assert tv.form.isEnabled() and tv.presets.names()  # usable from the first paint
        assert not w.generate_view.generate_button.isEnabled()

        loader.release()
        end = time.monotonic() + 150
        while tv.start_blockers() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)
        assert "torch" in sys.modules and loader.is_ready()
        assert tv.start_blockers() == [], tv.start_blockers()
        assert tv.controls.start_button.isEnabled() and w.start_action.isEnabled()
        assert w.statusBar().currentMessage() == ""
        assert w.device_label.text().startswith(("CPU", "CUDA", "MPS"))
        assert tv.device_combo.count() >= 2 and w.generate_view.device_box.count() >= 1
        assert tv.runs is not None and tv.bottom_tabs.widget(1) is tv.runs
        w.close()
        print("OK")
    """
    result = _run(code, isolated_home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def test_main_paints_before_torch_and_exits_cleanly(isolated_home):
    code = """
        import sys
        from landauer_gui.app import main
        raise SystemExit(main(sys.argv[1:]))
    """
    result = _run(code, isolated_home, "--exit-after-first-paint")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "first paint" in result.stdout and "torch not loaded" in result.stdout
    assert "QThread: Destroyed while thread" not in result.stderr
