"""Where bundled files and per-user folders live.

One lookup serves a source checkout, an installed wheel and a frozen
(PyInstaller) bundle alike, so no other module builds resource paths itself.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

import appdirs

APP_NAME = "LandauerStudio"
APP_AUTHOR = "Landauer"
HOME_ENV = "LANDAUER_STUDIO_HOME"  # overrides the per-user folder (tests, portable installs)


def _resource_roots() -> list[Path]:
    roots = []
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        roots.append(Path(frozen))
    roots.append(Path(__file__).resolve().parent.parent)  # source checkout or editable install
    # Wheel data files land in <data>/share/landauer-studio: sys.prefix for a venv or system
    # install, the user base (~/.local, %APPDATA%\Python) for ``pip install --user``.
    roots.append(Path(sys.prefix) / "share" / "landauer-studio")
    roots.append(Path(sysconfig.get_path("data", sysconfig.get_preferred_scheme("user")))
                 / "share" / "landauer-studio")
    return roots


def resource_path(*parts: str) -> Path:
    """Path of a bundled file, e.g. ``resource_path("resources", "presets")``."""
    for root in _resource_roots():
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    searched = ", ".join(str(r) for r in _resource_roots())
    raise FileNotFoundError(f"bundled file {'/'.join(parts)} not found (looked in {searched})")


def bundled_corpus() -> Path:
    """The Shakespeare corpus that ships with the app."""
    return resource_path("tiny_shakespeare.txt")


def user_data_dir() -> Path:
    override = os.environ.get(HOME_ENV)
    path = Path(override) if override else Path(appdirs.user_data_dir(APP_NAME, APP_AUTHOR))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Each training run started from the studio gets a folder in here."""
    path = user_data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_cache_dir() -> Path:
    override = os.environ.get(HOME_ENV)
    path = Path(override) / "cache" if override else Path(appdirs.user_cache_dir(APP_NAME, APP_AUTHOR))
    path.mkdir(parents=True, exist_ok=True)
    return path
