"""WorkerSlot: the one owner of a background task's start, end, clean-up and shutdown wait."""

from __future__ import annotations

import threading

from landauer_gui.workers import WorkerSlot, close_all


def test_runs_one_task_at_a_time_and_is_free_again_when_finished(qtbot):
    slot = WorkerSlot()
    gate = threading.Event()
    items: list[object] = []

    def slow():
        gate.wait(10)
        yield from (1, 2, 3)

    assert slot.start(slow, items.append)
    assert slot.is_busy()
    assert not slot.start(lambda: iter([9]), items.append)  # busy: refused, not queued
    busy_in_finished: list[bool] = []
    slot.finished.connect(lambda: busy_in_finished.append(slot.is_busy()))
    with qtbot.waitSignal(slot.finished, timeout=10_000):
        gate.set()
    assert items == [1, 2, 3]
    assert busy_in_finished == [False]  # a receiver of `finished` may start the next task
    assert slot.start(lambda: iter([4]), items.append)
    qtbot.waitUntil(lambda: not slot.is_busy(), timeout=10_000)
    assert items == [1, 2, 3, 4]


def test_an_exception_is_reported_and_the_slot_recovers(qtbot):
    slot = WorkerSlot()
    failures: list[str] = []

    def broken():
        yield 1
        raise RuntimeError("boom")

    with qtbot.waitSignal(slot.finished, timeout=10_000):
        slot.start(broken, lambda item: None, failures.append)
    assert failures and "RuntimeError: boom" in failures[0]
    assert not slot.is_busy()


def test_close_waits_for_the_task_and_refuses_new_ones(qtbot):
    slots = [WorkerSlot(), WorkerSlot()]
    stop = threading.Event()

    def until_stopped():
        while not stop.wait(0.01):
            yield 0

    assert slots[0].start(until_stopped, lambda item: None)
    assert not close_all(slots, 100)  # still running after 100 ms
    stop.set()
    assert close_all(slots, 10_000)
    assert not slots[0].thread_running()
    assert not slots[1].start(lambda: iter([1]), lambda item: None)
    qtbot.waitUntil(lambda: not slots[0].is_busy(), timeout=10_000)
