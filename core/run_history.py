"""The run history's questions about run folders: is this a run, how big, delete it,
which settings differ between runs, and a run's log rebuilt from its records.

The folder format itself is owned by :mod:`core.runs`; this module only reads
through it (and deletes only the files it names). No torch and no Qt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.runs import (
    CONFIG_FILE,
    METRICS_FILE,
    RunFolderError,
    RunRecord,
    config_part,
    display_name,
    is_being_written,
    is_number,
    is_run_dir,
    is_run_file,
    read_config,
)

# --------------------------------------------------------------------------- opening and deleting


def folder_kind(path: str | os.PathLike) -> str | None:
    """``"run"`` for a run folder, ``"runs"`` for a folder holding run folders, else None."""
    path = Path(path)
    if not path.is_dir():
        return None
    if is_run_dir(path):
        return "run"
    try:
        children = [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return None
    if any(is_run_dir(p) for p in children):
        return "runs"
    return None


def not_a_run_message(path: str | os.PathLike) -> str:
    """One line saying why ``path`` cannot be listed as runs."""
    path = Path(path)
    if not path.exists():
        return f"{path} does not exist (deleted or moved?)"
    if not path.is_dir():
        return f"{path} is a file, not a run folder"
    return (f"{path} is not a run folder: it has no {CONFIG_FILE} or {METRICS_FILE}, "
            "and no run folders inside")


def folder_size(path: str | os.PathLike) -> int:
    """Bytes held by the files in a folder (not following links)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def delete_run(run_dir: str | os.PathLike) -> list[Path]:
    """Delete a run folder's run files, then the folder if that emptied it.

    Refuses (:class:`RunFolderError`) a folder that is not a run or that is being
    written now. Files that are not part of a run (someone's notes, a subfolder) are
    kept, with the folder: returns them, so the caller can say so.
    """
    path = Path(run_dir)
    if folder_kind(path) != "run":
        raise RunFolderError(not_a_run_message(path))
    if is_being_written(path):
        raise RunFolderError(f"{display_name(path)} is being trained now; stop it before deleting it")
    kept: list[Path] = []
    try:
        for p in sorted(path.iterdir()):
            if p.is_file() and not p.is_symlink() and is_run_file(p.name):
                p.unlink()
            else:
                kept.append(p)
        if not kept:
            path.rmdir()
    except OSError as exc:
        raise RunFolderError(f"cannot delete {path}: {exc.strerror or exc}") from exc
    return kept


# --------------------------------------------------------------------------- comparing runs


COMPARE_SKIP = frozenset({"save_dir", "resume", "device"})  # where, not what (device has a column)


def _same_key(value: Any) -> str:
    """Compare 3 and 3.0 as equal; anything else by its JSON text."""
    if is_number(value):
        return repr(float(value))
    return json.dumps(value, sort_keys=True, default=str)


def differing_settings(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The setting names whose values are not the same in all ``configs`` (a missing
    setting differs from any value), in first-seen order; ``COMPARE_SKIP`` left out."""
    names: dict[str, None] = {}
    for cfg in configs:
        names.update(dict.fromkeys(cfg))
    return [k for k in names if k not in COMPARE_SKIP
            and len({_same_key(c[k]) if k in c else "<missing>" for c in configs}) > 1]


def sort_key(value: Any) -> tuple:
    """Orders numbers numerically, then text (case-insensitively), then missing values."""
    if is_number(value):
        return (0, float(value), "")
    if value is None or value == "":
        return (2, 0.0, "")
    return (1, 0.0, str(value).casefold())


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``: short enough for a table cell."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Column:
    key: str  # a fixed column's key, or the setting's name
    title: str
    tip: str = ""


@dataclass(frozen=True)
class Cell:
    text: str
    sort: tuple  # :func:`sort_key` of the value the text shows


def _cell(value: Any, text: str | None = None) -> Cell:
    if text is None:
        if value is None:
            text = "–"
        elif isinstance(value, float):
            text = f"{value:.4g}"
        else:
            text = str(value)
    return Cell(text, sort_key(value))


SUMMARY_COLUMNS = (
    Column("name", "Run", "The run's name (Rename… changes it; the folder keeps its own)"),
    Column("best_val", "Best val", "Lowest validation loss recorded"),
    Column("last_val", "Last val", "Last validation loss recorded"),
    Column("steps", "Steps", "Steps done / total"),
    Column("time", "Time", "Training time recorded (pauses excluded)"),
    Column("device", "Device", "Where it trained"),
)


def _loss_cell(v: Any) -> Cell:
    return _cell(v, f"{v:.4f}" if is_number(v) else "–")


def comparison_table(records: Sequence[RunRecord]) -> tuple[list[Column], list[list[Cell]]]:
    """The run history as a table: the summary columns, then only the settings that
    differ between ``records``; one row of cells per record, in the same order."""
    from core.hparams import TrainConfig, param_specs

    specs = param_specs(TrainConfig)
    labels = {s.name: (s.label, s.param.help) for s in specs}
    order = {s.name: i for i, s in enumerate(specs)}
    settings = sorted((k for k in differing_settings([r.train_config for r in records])
                       if k != "steps"),  # the Steps column shows done/total
                      key=lambda k: order.get(k, len(order)))
    columns = list(SUMMARY_COLUMNS) + [
        Column(k, labels.get(k, (k, ""))[0], f"{k}: {labels.get(k, ('', ''))[1]}".rstrip(": "))
        for k in settings]
    rows = []
    for r in records:
        total = r.total_steps
        row = [
            _cell(r.display_name or r.name),
            _loss_cell(r.best_val_loss),
            _loss_cell(r.last_val_loss),
            _cell(r.last_step, f"{r.last_step}/{total}" if total else str(r.last_step)),
            _cell(r.elapsed_s, format_seconds(r.elapsed_s) if r.elapsed_s is not None else "–"),
            _cell(r.device or None),
        ]
        row += [_cell(r.train_config.get(k)) for k in settings]
        rows.append(row)
    return columns, rows


# --------------------------------------------------------------------------- the log of a run


def run_events(records: Iterable[Mapping[str, Any]], total_steps: int) -> list[Any]:
    """Metrics records as the trainer's events (:mod:`core.events`), so a run written by
    another process logs the same lines (``format_event``) as one trained here."""
    from core.events import EvalMetrics, StepMetrics

    events: list[Any] = []
    for row in records:
        values = [row.get(k) for k in ("step", "loss", "content", "energy")]
        if not all(is_number(v) for v in values):
            continue
        step, loss, content, energy = values
        if row.get("type") == "val":
            batches = row.get("batches")
            events.append(EvalMetrics(int(step), loss, content, energy,
                                      batches if isinstance(batches, int) else 0))
        elif row.get("type") == "train":
            rate, elapsed = row.get("tokens_per_s"), row.get("elapsed_s")
            events.append(StepMetrics(int(step), total_steps, loss, content, energy,
                                      rate if is_number(rate) else 0.0,
                                      elapsed if is_number(elapsed) else 0.0))
    return events


def started_event(run_dir: str | os.PathLike, info: Mapping[str, Any] | None = None) -> Any | None:
    """The ``Started`` event a run's ``config.json`` describes (None without one)."""
    from core.events import Started

    info = read_config(run_dir) if info is None else info
    if not info:
        return None
    train, model, corpus = (config_part(info, key) for key in ("train_config", "model_config", "corpus"))

    def num(v: Any) -> int:
        return int(v) if is_number(v) else 0

    return Started(run_dir=str(run_dir), device=str(info.get("device", "")),
                   device_description=str(info.get("device_description") or info.get("device", "?")),
                   start_step=num(info.get("start_step")), total_steps=num(train.get("steps")),
                   vocab_size=num(model.get("vocab_size")), train_tokens=num(corpus.get("train_tokens")),
                   val_tokens=num(corpus.get("val_tokens")), num_parameters=num(info.get("num_parameters")),
                   config=dict(train))
