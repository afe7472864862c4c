"""Entry point: ``landauer-studio`` and ``python -m landauer_gui``.

``--self-test`` runs the packaged self-check (``landauer_gui.selftest``) instead
of opening the window, so an installer or a frozen bundle can be verified
headless. Other arguments are left to Qt (``-platform``, ``-style``, …).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

APP_NAME = "Landauer Studio"
ORG_NAME = "Landauer"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="landauer-studio", description="Train and sample the Landauer LLM.")
    parser.add_argument("--self-test", action="store_true",
                        help="check the installation without opening a window, then exit")
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


def main(argv: list[str] | None = None) -> int:
    """Open the studio window (or run the self-test); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, qt_args = _parser().parse_known_args(argv)
    if args.self_test:
        return _run_self_test()

    from PySide6.QtWidgets import QApplication

    from core.resources import resource_path
    from landauer_gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "landauer-studio", *qt_args])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setStyle("Fusion")
    try:
        app.setStyleSheet(resource_path("resources", "style.qss").read_text(encoding="utf-8"))
    except (FileNotFoundError, OSError):
        pass
    window = MainWindow()
    window.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
