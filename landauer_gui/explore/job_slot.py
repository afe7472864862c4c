"""A worker slot that keeps what went wrong in its task, for the panel to report at the end.

Every Explore task (read, analyse, compare, branch, rank, export) yields
:class:`~landauer_gui.explore.jobs.Problem` items for bad input and may crash;
each panel used to repeat the same "remember the problem, show it when the
task ends" bookkeeping. :class:`JobSlot` holds it once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from landauer_gui.explore import jobs
from landauer_gui.workers import WorkerSlot


class JobSlot(WorkerSlot):
    """A :class:`WorkerSlot` whose ``Problem`` items and crashes become :meth:`take_problem`.

    Other items go to ``on_item``; read the problem in a ``finished`` receiver.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._problem: str | None = None

    def start(self, factory: Callable[[], Iterator[object]], on_item: Callable[[object], None],
              on_failed: Callable[[str], None] | None = None) -> bool:
        if self.is_busy() or self.is_closed():
            return False
        self._problem = None

        def item(value: object) -> None:
            if isinstance(value, jobs.Problem):
                self._problem = value.message
            else:
                on_item(value)

        return super().start(factory, item, on_failed or self._on_failed)

    def _on_failed(self, detail: str) -> None:
        self._problem = f"Something went wrong: {detail}"

    def take_problem(self) -> str | None:
        """The last problem of the task that ended (once; None when it went well)."""
        problem, self._problem = self._problem, None
        return problem
