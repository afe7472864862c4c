"""Keep ``None``, ``True`` and ``False`` alive under shiboken6 builds that assume PEP 683.

Some shiboken6/PySide6 wheels (seen with 6.12 on CPython 3.11) return ``None``
from every void Qt call without taking a reference, as Python 3.12+ allows
because its singletons are immortal. On 3.10/3.11 each such call drops the
reference count of ``None`` by one; a plot repaint makes hundreds of them, so
after a few seconds the interpreter aborts with "deallocating None" (and at
exit with "deallocating True or False"). Giving these singletons a huge
reference count is what 3.12 does itself; it changes nothing else.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40  # ~10^12 leaked references: centuries at thousands per second


def pin() -> None:
    """Raise the reference counts of the singletons once (no-op on 3.12+ and non-CPython)."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    for obj in (None, True, False):
        cell = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field
        if cell.value < _HEADROOM:
            cell.value += _HEADROOM
