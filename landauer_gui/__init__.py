"""Landauer Studio: the PySide6 desktop front end over :mod:`core`."""

from landauer_gui import _singletons

_singletons.pin()  # before any Qt call: see the module for the shiboken6 refcount fault
