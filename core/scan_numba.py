"""Numba kernels for the scan (being written)."""


def available() -> bool:
    return False
