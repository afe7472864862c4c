"""Landauer Studio: the PySide6 desktop front end over :mod:`core`."""
