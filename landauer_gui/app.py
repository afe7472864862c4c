"""Entry point: ``landauer-studio`` and ``python -m landauer_gui``.

The window appears before torch is imported: it is built from torch-free
modules, painted, and only then does :mod:`landauer_gui.engine` load torch, the
model code and the devices on a worker thread (the status bar says "Loading
engine…" until then).

``--self-test`` runs the packaged self-check (``landauer_gui.selftest``) instead
of opening the window, so an installer or a frozen bundle can be verified
headless. Other arguments are left to Qt (``-platform``, ``-style``, …).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time

APP_NAME = "Landauer Studio"
ORG_NAME = "Landauer"
FIRST_PAINT_LINE = "first paint"  # printed by --exit-after-first-paint (scripts/startup_time.py)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="landauer-studio", description="Train and sample the Landauer LLM.")
    parser.add_argument("--self-test", action="store_true",
                        help="check the installation without opening a window, then exit")
    parser.add_argument("--exit-after-first-paint", action="store_true", help=argparse.SUPPRESS)
    return parser


def _run_self_test() -> int:
    if importlib.util.find_spec("landauer_gui.selftest") is None:
        print("landauer-studio: this build has no self-test", file=sys.stderr)
        return 2
    selftest = importlib.import_module("landauer_gui.selftest")
    result = selftest.run()
    if isinstance(result, bool):  # True: passed
        return 0 if result else 1
    return int(result) if isinstance(result, int) else 0


def _after_first_paint(window, callback) -> None:
    """Call ``callback()`` once the window's first frame has been painted."""
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    class _Watcher(QObject):
        def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt override)
            if (event.type() == QEvent.Type.Paint and isinstance(obj, QWidget)
                    and obj.window() is window):
                QApplication.instance().removeEventFilter(self)
                QTimer.singleShot(0, callback)  # after the rest of this paint pass
            return False

    watcher = _Watcher(window)
    QApplication.instance().installEventFilter(watcher)


def main(argv: list[str] | None = None) -> int:
    """Open the studio window (or run the self-test); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, qt_args = _parser().parse_known_args(argv)
    if args.self_test:
        return _run_self_test()
    t0 = time.perf_counter()

    from PySide6.QtWidgets import QApplication

    from core.resources import resource_path
    from landauer_gui.engine import engine
    from landauer_gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "landauer-studio", *qt_args])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setStyle("Fusion")
    try:
        app.setStyleSheet(resource_path("resources", "style.qss").read_text(encoding="utf-8"))
    except (FileNotFoundError, OSError):
        pass
    loader = engine(start=False)
    loader.hold()  # torch competes for the interpreter: load it once the window is on screen
    window = MainWindow()
    window.show()

    def painted() -> None:
        loader.release()
        if args.exit_after_first_paint:
            torch_state = "loaded" if "torch" in sys.modules else "not loaded"
            print(f"{FIRST_PAINT_LINE} {time.perf_counter() - t0:.3f}s after main(), torch {torch_state}",
                  flush=True)
            window.close()

    _after_first_paint(window, painted)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
