"""Persistent studio settings: one INI file in the per-user folder.

IniFormat under :func:`core.resources.user_data_dir` (instead of the platform
registry / plist) keeps every setting in one readable file next to the runs,
and lets ``LANDAUER_STUDIO_HOME`` isolate tests and portable installs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from core.resources import user_data_dir

FILE_NAME = "studio.ini"


def settings_path() -> Path:
    return user_data_dir() / FILE_NAME


def open_settings() -> QSettings:
    """A QSettings on the INI file (resolved on every call so the home folder can change)."""
    return QSettings(str(settings_path()), QSettings.Format.IniFormat)


def get(key: str, default=None, type_=None):
    """Read one value; ``type_`` converts INI strings back (``int``, ``float``, ``bool``, ``str``)."""
    s = open_settings()
    if not s.contains(key):
        return default
    value = s.value(key)
    if type_ is bool:
        return value in (True, "true", "1", 1)
    if type_ is not None:
        try:
            return type_(value)
        except (TypeError, ValueError):
            return default
    return value


def put(key: str, value) -> None:
    s = open_settings()
    s.setValue(key, value)
    s.sync()


def user_presets_dir() -> Path:
    """Where "Save preset…" proposes to put the user's own presets."""
    path = user_data_dir() / "presets"
    path.mkdir(parents=True, exist_ok=True)
    return path
