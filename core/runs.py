"""Run folders: the one owner of their file names and formats.

A run folder holds everything one training run wrote (the spec is in
``docs/ARCHITECTURE.md``, "Run folder format")::

    config.json                 what was trained, and where (rewritten whole at every start)
    metrics.jsonl               one JSON object per line, appended while training
    landauer_llm_step{N}.pth    checkpoints, in the published format (core.checkpoint)
    samples.jsonl               one text sample per evaluation, appended while training
    writer.json                 who writes the run (pid, host); says "closed" once it is done
    display_name.txt            the name a person gave the run (the folder keeps its name)

The trainer writes through :func:`create_run_dir`, :func:`write_config` and
:class:`MetricsWriter` (and :class:`SamplesWriter`); the studio, scripts and other tools read through
:func:`list_runs`, :func:`read_run`, :func:`read_samples` and, for the loss curves (whole, or
following a run another process writes), :mod:`core.run_curves`.

No torch and no Qt here: listing and following runs stays cheap.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core import __version__
from core.events import SampleText
from core.files import atomic_write_text, is_temp_name
from core.resources import runs_dir

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"  # a text sample per evaluation (SamplesWriter, read_samples)
WRITER_FILE = "writer.json"  # {"pid", "host", "started"[, "closed"]}: who writes the run
DISPLAY_NAME_FILE = "display_name.txt"
CHECKPOINT_PREFIX = "landauer_llm_step"
CHECKPOINT_SUFFIX = ".pth"
STEP_FILE_RE = re.compile(rf"{CHECKPOINT_PREFIX}(\d+)\{CHECKPOINT_SUFFIX}$")

MAX_TRAIN_LINES = 20_000  # per run in metrics.jsonl; longer runs record every k-th step
TAIL_BYTES = 16_384  # enough of metrics.jsonl to find the last train and val lines


class RunFolderError(Exception):
    """A run folder's file could not be written; the message names the file and what to do."""


# --------------------------------------------------------------------------- names


def checkpoint_name(step: int) -> str:
    """The published file name of the checkpoint after ``step`` steps."""
    return f"{CHECKPOINT_PREFIX}{step}{CHECKPOINT_SUFFIX}"


def step_from_name(path: str | os.PathLike) -> int | None:
    """The step in a published file name ``landauer_llm_step{N}.pth``, else None."""
    m = STEP_FILE_RE.search(Path(path).name)
    return int(m.group(1)) if m else None


def step_from_archive_name(name: str) -> int | None:
    """The step in a checkpoint archive's folder name (``torch.save`` names it after the file
    it first wrote, so a renamed original checkpoint still tells its step)."""
    m = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", name)
    return int(m.group(1)) if m else None


_reserved: set[Path] = set()
_reserved_lock = threading.Lock()


def new_run_dir(name: str = "run", root: Path | None = None, now: datetime | None = None) -> Path:
    """A fresh folder name ``YYYYmmdd-HHMMSS-<name>`` under ``root`` (suffixed ``-2``, ``-3``...
    if taken).

    The folder is *not* created: the trainer creates it when it is about to write
    (:func:`create_run_dir`), so a start that fails on bad settings or an
    unreadable corpus leaves nothing behind. Names handed out by this process are
    remembered, so two calls never return the same path.
    """
    root = runs_dir() if root is None else Path(root)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:32] or "run"
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    with _reserved_lock:
        path = root / f"{stamp}-{slug}"
        n = 2
        while path.exists() or path in _reserved:
            path = root / f"{stamp}-{slug}-{n}"
            n += 1
        _reserved.add(path)
    return path


def create_run_dir(path: str | os.PathLike) -> Path:
    """Create the run folder (and its parents) if needed; an existing folder is reused."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- writing


def _write_error(path: Path, exc: OSError) -> RunFolderError:
    code = exc.errno
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", -1):
        what = "disk full" if code == errno.ENOSPC else "disk quota exceeded"
        return RunFolderError(f"{what} while writing {path}: free some space or choose another "
                              "save folder (the checkpoints saved so far are intact)")
    return RunFolderError(f"cannot write {path}: {exc.strerror or exc}")


def write_config(run_dir: str | os.PathLike, *, train_config: Mapping[str, Any],
                 model_config: Mapping[str, Any], corpus: Mapping[str, Any], device: str,
                 device_description: str, start_step: int, num_parameters: int,
                 torch_version: str) -> Path:
    """Write ``config.json`` atomically: a reader sees the previous file or the new one, whole."""
    path = Path(run_dir) / CONFIG_FILE
    info = {
        "train_config": dict(train_config),
        "model_config": dict(model_config),
        "corpus": dict(corpus),
        "device": device,
        "device_description": device_description,
        "start_step": start_step,
        "num_parameters": num_parameters,
        "torch_version": torch_version,
        "landauer_studio_version": __version__,
    }
    try:
        return atomic_write_text(path, json.dumps(info, indent=2) + "\n")
    except OSError as exc:
        raise _write_error(path, exc) from exc


def read_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's ``config.json`` as a dict, or None when it is missing or unreadable."""
    try:
        info = json.loads((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def config_part(info: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    """One part of a ``config.json`` (``"train_config"``, ``"model_config"``, ``"corpus"``); {} when absent or malformed."""
    part = (info or {}).get(key)
    return part if isinstance(part, dict) else {}


def record_every(total_steps: int) -> int:
    """Record every k-th training step so a run writes at most :data:`MAX_TRAIN_LINES` lines."""
    return max(1, -(-int(total_steps) // MAX_TRAIN_LINES))


class MetricsWriter:
    """Appends records to a run's ``metrics.jsonl``, one whole line per ``os.write``.

    Opening it starts the file over for a fresh run (``start_step == 0``) or,
    for a resumed run, keeps only the records up to ``start_step`` (the steps
    after it are about to be redone); both rewrites are atomic, so a follower
    sees the file replaced, never half of it. Each record is written when it is
    recorded (about 2 microseconds; at most ~20,000 per run), so a follower
    sees a live run move and a crash loses nothing already recorded. A failed
    write raises one :class:`RunFolderError`; the writer then ignores further
    records and :meth:`close` stays silent, so a full disk ends as one message.
    """

    FILE = METRICS_FILE
    MARKS_WRITER = True  # writes writer.json: the run's one mark of who writes it

    def __init__(self, run_dir: str | os.PathLike, start_step: int = 0):
        self.path = Path(run_dir) / self.FILE
        self.failed = False
        try:
            atomic_write_text(self.path, "".join(line + "\n" for line in self._kept(start_step)))
            flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0)
            self._fd: int | None = os.open(self.path, flags)
        except OSError as exc:
            raise _write_error(self.path, exc) from exc
        self._mark = _write_writer_mark(self.path.parent) if self.MARKS_WRITER else None

    def _kept(self, start_step: int) -> list[str]:
        """The lines of an earlier run to keep: the complete records up to ``start_step``."""
        if start_step <= 0 or not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        kept = []
        for line in text.splitlines():
            row = record_from_line(line)
            step = None if row is None else row.get("step", 0)
            if isinstance(step, (int, float)) and step <= start_step:
                kept.append(line)
        return kept

    def record(self, kind: str, values: Mapping[str, Any]) -> None:
        """Append one ``{"type": kind, ...values}`` line; :class:`RunFolderError` if the disk refuses."""
        if self.failed or self._fd is None:
            return
        view = memoryview((json.dumps({"type": kind, **values}) + "\n").encode("utf-8"))
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self.failed = True
            raise _write_error(self.path, exc) from exc

    def close(self) -> None:
        """Close the file; never raises (a write error was reported by :meth:`record`)."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if self._mark is not None:
            _write_writer_mark(self._mark.parent, closed=True)
            self._mark = None


class SamplesWriter(MetricsWriter):
    """Appends one ``{"type": "sample", "step", "prompt", "text"}`` line per sample to
    ``samples.jsonl``, by the same rules as ``metrics.jsonl`` (whole lines; a resume at step S
    keeps the samples up to S)."""

    FILE = SAMPLES_FILE
    MARKS_WRITER = False  # the metrics writer beside it marks the run

    def add(self, sample: SampleText) -> None:
        self.record("sample", {"step": sample.step, "prompt": sample.prompt, "text": sample.text})


# --------------------------------------------------------------------------- reading


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def record_from_line(line: str | bytes) -> dict[str, Any] | None:
    """One JSON-lines record as a dict, or None for a cut, empty or foreign line."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def json_records(text: str) -> list[dict[str, Any]]:
    """The records of a JSON-lines text; lines that are not a JSON object are skipped
    (a line cut by a crash, or the partial first line of a tail)."""
    return [row for line in text.splitlines() if (row := record_from_line(line)) is not None]


def _tail(path: Path, size: int = TAIL_BYTES) -> str:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        fh.seek(max(0, end - size))
        return fh.read().decode("utf-8", errors="replace")


def read_text(path: Path) -> str:
    """A run file's text, empty when it cannot be read (missing, or being replaced)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def samples_from_records(records: Iterable[Mapping[str, Any]]) -> list[SampleText]:
    """The samples among ``records``, one per step (a later line wins), in step order; lines
    without an integer step or a text are skipped."""
    by_step: dict[int, SampleText] = {}
    for row in records:
        step, text, prompt = row.get("step"), row.get("text"), row.get("prompt", "")
        if isinstance(step, int) and not isinstance(step, bool) and isinstance(text, str):
            by_step[step] = SampleText(step, prompt if isinstance(prompt, str) else "", text)
    return [by_step[k] for k in sorted(by_step)]


def read_samples(run_dir: str | os.PathLike) -> list[SampleText]:
    """The samples a run wrote at its evaluations, in step order (empty when it wrote none)."""
    return samples_from_records(json_records(read_text(Path(run_dir) / SAMPLES_FILE)))


@dataclass
class RunRecord:
    """What a list of runs shows about one run folder."""

    path: Path
    train_config: dict[str, Any] = field(default_factory=dict)
    last_step: int = 0
    last_train_loss: float | None = None
    last_val_loss: float | None = None
    checkpoints: list[Path] = field(default_factory=list)
    modified: float = 0.0
    best_val_loss: float | None = None
    elapsed_s: float | None = None  # training time the last train record reports (pauses excluded)
    device: str = ""
    display_name: str = ""  # what a person named it (display_name.txt), else the folder's name

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def total_steps(self) -> int | None:
        steps = self.train_config.get("steps")
        return steps if isinstance(steps, int) else None


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run folder: it holds a config.json or a metrics.jsonl."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() or (path / METRICS_FILE).is_file()


def is_run_file(name: str) -> bool:
    """Whether a file of this name in a run folder is one its writers create (atomic writes' temps included)."""
    if name in (CONFIG_FILE, METRICS_FILE, SAMPLES_FILE, WRITER_FILE, DISPLAY_NAME_FILE):
        return True
    return bool(STEP_FILE_RE.fullmatch(name)) or is_temp_name(name)


def read_run(path: str | os.PathLike) -> RunRecord | None:
    """The record of one folder, or None when it is not a run (no config.json nor metrics.jsonl)."""
    path = Path(path)
    metrics_file = path / METRICS_FILE
    if not is_run_dir(path):
        return None
    rec = RunRecord(path=path, display_name=display_name(path))
    info = read_config(path)
    rec.train_config = config_part(info, "train_config")
    if info is not None and isinstance(info.get("device"), str):
        rec.device = info["device"]
    try:
        for row in json_records(_tail(metrics_file)):
            step = row.get("step")
            if not isinstance(step, int):
                continue
            if row.get("type") == "val":
                rec.last_val_loss = row.get("loss")
            else:
                rec.last_train_loss = row.get("loss")
                if is_number(row.get("elapsed_s")):
                    rec.elapsed_s = row["elapsed_s"]
            rec.last_step = max(rec.last_step, step)
        rec.best_val_loss = best_val_loss(metrics_file)
    except OSError:
        pass
    rec.checkpoints = sorted(path.glob("*" + CHECKPOINT_SUFFIX), key=lambda p: p.stat().st_mtime)
    try:
        rec.modified = max(p.stat().st_mtime for p in (path, *path.iterdir()))
    except (OSError, ValueError):
        rec.modified = 0.0
    return rec


def list_runs(root: str | os.PathLike | None = None) -> list[RunRecord]:
    """Every run folder under ``root`` (default ``runs_dir()``), most recently active first."""
    root = runs_dir() if root is None else Path(root)
    try:
        folders = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return []
    records = [r for p in folders if (r := read_run(p)) is not None]
    records.sort(key=lambda r: r.modified, reverse=True)
    return records


def best_val_loss(metrics_file: str | os.PathLike) -> float | None:
    """The lowest validation loss in a ``metrics.jsonl`` (None without one).

    Only lines that mention ``"val"`` are parsed: a 20,000-line file (2.5 MB) takes ~12 ms.
    """
    best = None
    with open(metrics_file, "rb") as fh:
        for line in fh:
            if b'"val"' not in line or not line.endswith(b"\n"):
                continue
            row = record_from_line(line)
            if row is not None and row.get("type") == "val" and is_number(loss := row.get("loss")):
                best = loss if best is None else min(best, loss)
    return best


# --------------------------------------------------------------------------- display names


def display_name(run_dir: str | os.PathLike) -> str:
    """The name a person gave the run (``display_name.txt``), else the folder's name.

    Renaming stores a name instead of moving the folder: a process writing the run
    (here, a CLI, another machine) keeps its path, and checkpoints keep theirs.
    """
    path = Path(run_dir)
    try:
        name = (path / DISPLAY_NAME_FILE).read_text(encoding="utf-8").strip().splitlines()
    except (OSError, ValueError):
        return path.name
    return name[0].strip() if name and name[0].strip() else path.name


def set_display_name(run_dir: str | os.PathLike, name: str) -> str:
    """Name the run ``name`` (one line); an empty name or the folder's own name removes it.

    Returns the name now shown. Writes only ``display_name.txt`` (atomically), so it is
    safe while the run is being written; :class:`RunFolderError` if the folder refuses.
    """
    path = Path(run_dir)
    name = " ".join(name.split())[:200]
    target = path / DISPLAY_NAME_FILE
    try:
        if not name or name == path.name:
            target.unlink(missing_ok=True)
            return path.name
        atomic_write_text(target, name + "\n")
    except OSError as exc:
        raise _write_error(target, exc) from exc
    return name


# --------------------------------------------------------------------------- who is writing


QUIET_S = 120.0  # a run without a writer mark whose metrics changed this recently may be live
REMOTE_QUIET_S = 600.0  # a mark from another machine counts while its metrics changed this recently


def _write_writer_mark(run_dir: Path, closed: bool = False) -> Path | None:
    """Say in the folder that this process writes it, or has closed it (advisory: a
    failure loses nothing; a mark that cannot say "closed" is removed)."""
    mark: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    if closed:
        mark["closed"] = mark.pop("started")
    try:
        return atomic_write_text(run_dir / WRITER_FILE, json.dumps(mark) + "\n")
    except OSError:
        if closed:
            (run_dir / WRITER_FILE).unlink(missing_ok=True)
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return float("inf")


def is_being_written(run_dir: str | os.PathLike, now: float | None = None) -> bool:
    """Whether a process is training into this run folder now (so it must not be deleted).

    A :class:`MetricsWriter` writes ``writer.json`` (pid, host) when it opens and marks
    it ``closed`` when it closes. An open mark: on this machine the pid answers (a
    killed writer's mark does not count); from another machine (a shared or synced
    folder) it counts while ``metrics.jsonl`` changed in the last ``REMOTE_QUIET_S``.
    A folder without a mark (older or foreign writers), or whose metrics changed after
    the mark closed, counts while its metrics changed in the last ``QUIET_S`` and its
    last step is short of its total. Errs on the side of "yes".
    """
    path = Path(run_dir)
    now = time.time() if now is None else now
    metrics_age = _age(path / METRICS_FILE, now)
    try:
        mark = json.loads((path / WRITER_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        mark = None
    except (OSError, ValueError):
        mark = {}  # unreadable (being replaced, or a foreign file): assume a writer
    if isinstance(mark, dict) and "closed" in mark:
        if metrics_age >= _age(path / WRITER_FILE, now) - 1.0:
            return False  # nothing written since the writer closed
        mark = None
    if isinstance(mark, dict):
        pid = mark.get("pid")
        if mark.get("host") == socket.gethostname() and isinstance(pid, int) and os.name != "nt":
            return _pid_alive(pid)
        return min(metrics_age, _age(path / WRITER_FILE, now)) < REMOTE_QUIET_S
    if metrics_age >= QUIET_S:
        return False
    rec = read_run(path)
    total = rec.total_steps if rec is not None else None
    return total is None or rec.last_step < total
