"""A run's metrics as loss curves: read whole, or followed while another process writes them.

The records' format belongs to :mod:`core.runs`; this module turns them into
numpy rows for plots (:func:`read_curves`) and follows a growing
``metrics.jsonl`` without ever returning a half-written line (:class:`MetricsTail`).
No torch and no Qt.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.runs import (
    METRICS_FILE,
    config_part,
    is_number,
    json_records,
    read_config,
    read_text,
    record_from_line,
)


@dataclass(frozen=True)
class TailUpdate:
    """What :meth:`MetricsTail.poll` found since the previous poll."""

    records: list[dict[str, Any]]
    restarted: bool = False  # the file was replaced or truncated: forget earlier records


class MetricsTail:
    """Follows a run's ``metrics.jsonl`` while another process writes it.

    The contract, for any writer that follows the run folder format (this
    trainer, a CLI run, ``torchrun`` ranks, another machine on a shared drive):

    * :meth:`poll` returns only records completed since the last poll: a line
      counts once its ``\\n`` is written, so a half-written last line is left for
      the next poll, never returned cut;
    * lines that are not a JSON object are skipped (counted in ``skipped``);
    * when the file was replaced (a resumed run rewrites it atomically), truncated
      or rewritten in place, the next poll says ``restarted=True`` and returns the
      new file's records from its start: the caller drops what it had;
    * a missing file is an empty run; the file is opened only during a poll, so
      writers may replace it at any time (also on Windows).

    It remembers a byte offset and the bytes just before it, so a poll costs a
    ``stat`` and a read of the new bytes.
    """

    ANCHOR_BYTES = 64

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / METRICS_FILE
        self.offset = 0
        self.skipped = 0
        self._identity: tuple[int, int] | None = None
        self._anchor = b""

    def _restart(self) -> None:
        self.offset = 0
        self._anchor = b""

    def poll(self) -> TailUpdate:
        restarted = False
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                identity = (st.st_dev, st.st_ino)
                if self._identity is not None and (
                        identity != self._identity or st.st_size < self.offset
                        or not self._anchor_matches(fh)):
                    restarted = True
                    self._restart()
                self._identity = identity
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            if self._identity is None:
                return TailUpdate([])
            self._identity = None
            self._restart()
            return TailUpdate([], restarted=True)
        end = data.rfind(b"\n") + 1
        complete = data[:end]
        if complete:
            self.offset += end
            self._anchor = (self._anchor + complete)[-self.ANCHOR_BYTES:]
        records = []
        for line in complete.splitlines():
            row = record_from_line(line)
            if row is None:
                self.skipped += bool(line.strip())
            else:
                records.append(row)
        return TailUpdate(records, restarted)

    def _anchor_matches(self, fh) -> bool:
        if not self._anchor:
            return True
        fh.seek(self.offset - len(self._anchor))
        return fh.read(len(self._anchor)) == self._anchor


def _no_rows(width: int) -> np.ndarray:
    return np.empty((0, width), dtype=np.float64)


@dataclass(frozen=True)
class Curves:
    """A run's recorded curves: rows of ``(step, content, energy)`` in file order.

    ``clock`` holds ``(step, elapsed_s)`` of the training records that have it (the
    wall-time axis); ``tokens_per_step`` is ``batch_size * seq_len`` from ``config.json``
    (the characters-seen axis), None when unknown.
    """

    train: np.ndarray  # shape (n, 3), float64
    val: np.ndarray  # shape (m, 3), float64
    clock: np.ndarray = field(default_factory=lambda: _no_rows(2))  # shape (k, 2)
    tokens_per_step: int | None = None


def curves_from_records(records: Iterable[Mapping[str, Any]]) -> Curves:
    """Split metrics records into train and validation curves (records without numbers are skipped)."""
    rows: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    clock = []
    for row in records:
        step, content, energy = row.get("step"), row.get("content"), row.get("energy")
        if all(is_number(v) for v in (step, content, energy)):
            val = row.get("type") == "val"
            rows[val].append((step, content, energy))
            if not val and is_number(row.get("elapsed_s")):
                clock.append((step, row["elapsed_s"]))
    return Curves(*(np.array(rows[v], dtype=np.float64).reshape(-1, 3) for v in (False, True)),
                  clock=np.array(clock, dtype=np.float64).reshape(-1, 2))


def tokens_per_step(train_config: Mapping[str, Any]) -> int | None:
    """Characters a training step reads (``batch_size * seq_len``), None if the config lacks them."""
    b, t = train_config.get("batch_size"), train_config.get("seq_len")
    return b * t if isinstance(b, int) and isinstance(t, int) else None


def read_curves(run_dir: str | os.PathLike) -> Curves:
    """The train and validation curves a run recorded so far (empty when it recorded none)."""
    curves = curves_from_records(json_records(read_text(Path(run_dir) / METRICS_FILE)))
    train_config = config_part(read_config(run_dir), "train_config")
    return dataclasses.replace(curves, tokens_per_step=tokens_per_step(train_config))
