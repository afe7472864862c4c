"""The installed Qt bindings keep the reference counts of None, True and False.

PySide6 6.12 wheels on Python < 3.12 drop a reference to None on every void
call (and to True/False on bool returns), so the interpreter aborts within
seconds of plotting. The dependency pin excludes them; this checks that the
bindings actually installed are sound, without any guard in the app.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

CALLS = 5000


def test_void_and_bool_calls_keep_singleton_refcounts(qtbot):
    probe = QObject()
    widget = QWidget()
    qtbot.addWidget(widget)
    before = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}
    for _ in range(CALLS):
        probe.setObjectName("probe")  # void
        widget.update()  # void
        widget.isVisible()  # False
        widget.isEnabled()  # True
    after = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}
    lost = {name: before[name] - after[name] for name in before}
    assert all(n < CALLS // 2 for n in lost.values()), f"references lost over {CALLS} calls: {lost}"

