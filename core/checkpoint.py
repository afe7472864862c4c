"""Checkpoints: the published format, written atomically and read without running code.

A checkpoint is a ``torch.save``d dict with the published keys ``model_state``,
``config``, ``args`` and ``itos``, plus our extras under ``landauer_studio``.
Everything we write is a type ``torch.load(weights_only=True)`` accepts, so the
original ``generate.py`` opens our files on current PyTorch.

This module builds, saves (atomically) and loads that dict and summarises it.
Reading a file without trusting it is :mod:`core.checkpoint_reading` (no code
runs; damaged files get messages that say what happened); what a loaded dict
must hold before a model is built is :mod:`core.checkpoint_validation`.
"""

from __future__ import annotations

import errno
import os
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.checkpoint_reading import CheckpointError as CheckpointError
from core.checkpoint_reading import read_checkpoint_file
from core.checkpoint_validation import CONFIG_KEYS as CONFIG_KEYS
from core.checkpoint_validation import EXTRAS_KEY, check_itos, itos_dict, validate_payload
from core.files import TEMP_SUFFIX, create_temp, fsync_dir
from core.model import LandauerLLM
from core.runs import step_from_archive_name, step_from_name

FORMAT_VERSION = 1


# --------------------------------------------------------------------------- payload


# Exactly these types survive ``torch.load(weights_only=True)`` on every PyTorch we
# support; subclasses (numpy.float64, IntEnum, custom tensors) pickle by class name
# and would make the file unreadable for the safe loader.
_SCALARS = (type(None), bool, int, float, str, bytes)
_TORCH_VALUES = (torch.dtype, torch.device, torch.Size)
_TENSORS = (torch.Tensor, torch.nn.Parameter)


def _plain(value: Any, where: str, *, convert: bool) -> Any:
    """Check (and with ``convert``, tidy) one value so the safe loader can read it back.

    Tidying turns path-like values into ``str``, numpy scalars into Python numbers
    and moves tensors to the CPU, so a file saved on a GPU opens anywhere.
    """
    t = type(value)
    if t in _SCALARS or t in _TORCH_VALUES:
        return value
    if t in _TENSORS:
        if convert and value.device.type != "cpu":
            return value.detach().cpu()
        return value
    if convert:
        if isinstance(value, os.PathLike):
            p = os.fspath(value)
            return p if isinstance(p, str) else os.fsdecode(p)
        if t.__module__ == "numpy" and getattr(value, "shape", None) == () and hasattr(value, "item"):
            return _plain(value.item(), where, convert=False)
        if isinstance(value, Mapping) and t is not dict and t is not OrderedDict:
            value, t = dict(value), dict
    if t is dict or t is OrderedDict:
        out = t()
        for k, v in value.items():
            key = _plain(k, f"{where} key {k!r}", convert=convert)
            out[key] = _plain(v, f"{where}[{k!r}]", convert=convert)
        meta = getattr(value, "_metadata", None)
        if meta is not None:  # state dicts carry per-module versions; keep them
            out._metadata = _plain(meta, f"{where}._metadata", convert=convert)
        return out
    if t is list:
        return [_plain(v, f"{where}[{i}]", convert=convert) for i, v in enumerate(value)]
    if t is tuple:
        return tuple(_plain(v, f"{where}[{i}]", convert=convert) for i, v in enumerate(value))
    raise CheckpointError(
        f"{where} is a {t.__module__}.{t.__qualname__}, which the safe loader "
        "(torch.load with weights_only=True) cannot read back. Store plain values instead: "
        "numbers, text, lists, dicts or tensors (convert dataclasses with to_dict(), paths with str())."
    )


def check_payload(payload: Mapping[str, Any]) -> None:
    """Raise :class:`CheckpointError` unless every value in ``payload`` is plain data."""
    _plain(dict(payload), "payload", convert=False)




def build_payload(model: LandauerLLM, itos: Mapping[int, str] | Sequence[str],
                  args: Mapping[str, Any], extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The dict to save: published keys first, our training state under ``landauer_studio``.

    Tensors are shared with the model and optimiser (moved to CPU if elsewhere),
    so save the payload before the next optimisation step changes them.
    """
    where = "checkpoint payload"
    config = {k: getattr(model.config, k) for k in CONFIG_KEYS}
    config = {k: (float(v) if k == "phase_scaling" else int(v)) for k, v in config.items()}
    itos_d = itos_dict(itos, where)
    check_itos(itos_d, config["vocab_size"], where)
    if not isinstance(args, Mapping):
        raise CheckpointError(f"{where}: 'args' must be a dict of hyperparameters, got {type(args).__name__}.")
    payload: dict[str, Any] = {
        "model_state": _plain(model.state_dict(), "model_state", convert=True),
        "config": config,
        "args": _plain(dict(args), "args", convert=True),
        "itos": itos_d,
    }
    if extras is not None:
        if not isinstance(extras, Mapping):
            raise CheckpointError(f"{where}: extras must be a dict, got {type(extras).__name__}.")
        version = extras.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"{where}: extras claim format_version {version!r}, but this code writes {FORMAT_VERSION}.")
        payload[EXTRAS_KEY] = _plain({**extras, "format_version": FORMAT_VERSION}, EXTRAS_KEY, convert=True)
    return payload


# --------------------------------------------------------------------------- saving


def _open_writer(fd: int):
    """The file object ``torch.save`` writes to (a seam: tests swap in failing writers)."""
    return os.fdopen(fd, "wb")


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: torch wraps a failed write in a RuntimeError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _save_error(path: Path, exc: BaseException) -> CheckpointError:
    kept = "Any earlier file at that path was left unchanged."
    if isinstance(exc, CheckpointError):
        return exc
    err = _os_error(exc)
    code = getattr(err, "errno", None)
    if isinstance(err, IsADirectoryError) or path.is_dir():
        return CheckpointError(f"Cannot save checkpoint {path}: a folder with that name exists; choose "
                               "another file name.")
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        what = "disk full" if code == errno.ENOSPC else "disk quota exceeded"
        return CheckpointError(f"{what.capitalize()} while saving checkpoint {path}: free some space "
                               f"or choose another save folder. {kept}")
    if code in (errno.EACCES, errno.EPERM):
        return CheckpointError(f"No permission to write checkpoint {path}: choose a folder you can write "
                               f"to, or close any program that holds the file open. {kept}")
    if code == errno.EROFS:
        return CheckpointError(f"Cannot save checkpoint {path}: the drive is read-only; choose another "
                               f"save folder. {kept}")
    detail = err.strerror if err is not None and err.strerror else str(exc)
    return CheckpointError(f"Could not save checkpoint {path}: {detail}. {kept}")


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` so that ``path`` is always the old or the new complete file.

    Writes a temporary file in the same folder, fsyncs it, renames it over the
    target and fsyncs the folder: a crash, a kill or a full disk never leaves a
    half-written checkpoint behind under the real name.
    """
    path = Path(path)
    check_payload(payload)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(directory)
        fd, tmp = create_temp(directory, path.name)
    except OSError as exc:
        raise _save_error(path, exc) from exc
    lock = _hold(fd)
    f = None
    try:
        f = _open_writer(fd)
        with f:
            torch.save(dict(payload), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            if f is None:
                os.close(fd)
            os.unlink(tmp)
        except OSError:
            pass
        _release(lock)
        if isinstance(exc, Exception) and _interrupted(exc):
            raise KeyboardInterrupt from exc  # torch wraps a Ctrl+C during its writes in a RuntimeError
        if isinstance(exc, Exception):
            raise _save_error(path, exc) from exc
        raise  # KeyboardInterrupt and friends keep their meaning
    _release(lock)
    fsync_dir(directory)
    return path


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is, or wraps, a Ctrl+C (torch re-raises one from inside its writer)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        if "KeyboardInterrupt" in str(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


_TEMP_RE = re.compile(r"^\..+\.pth\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")


def _hold(fd: int) -> int | None:
    """Mark a temp file as being written: an exclusive lock that dies with the process.

    Returns a duplicate descriptor that keeps the lock after the writer closes the
    file, until the rename is done (close it then), or None without flock."""
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return os.dup(fd)
    except (ImportError, OSError):
        return None  # no flock (Windows): an open file cannot be deleted there anyway


def _release(lock: int | None) -> None:
    if lock is not None:
        try:
            os.close(lock)
        except OSError:
            pass


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete the temp files of checkpoint saves that were killed before their rename.

    A temp file is stale when nobody holds its lock (the writer died: kill -9, power
    loss) and it is not empty (a brand-new one is locked right after creation).
    Returns the removed paths; anything in use or unreadable is left alone.
    """
    removed: list[Path] = []
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: leave them
        return removed
    try:
        candidates = [p for p in Path(directory).iterdir() if _TEMP_RE.match(p.name)]
    except OSError:
        return removed
    for p in candidates:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_size > 0:
                os.unlink(p)
                removed.append(p)
        except OSError:
            pass  # locked: a save in progress
        finally:
            os.close(fd)
    return removed


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint with the safe loader; paths in ``args`` come back as str.

    Never unpickles arbitrary objects: a file referring to anything but plain data
    and pathlib paths is refused with a :class:`CheckpointError` naming it.
    """
    path = Path(path)
    return validate_payload(read_checkpoint_file(path, map_location), str(path))


# --------------------------------------------------------------------------- info


@dataclass
class CheckpointInfo:
    """What the studio shows about a checkpoint without building the model."""

    path: Path
    step: int | None
    config: dict[str, Any]
    vocab_size: int
    num_parameters: int
    val_loss: float | None
    train_loss: float | None
    is_original_format: bool
    file_size: int
    mtime: float
    args: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] | None = None
    format_version: int | None = None
    corpus: dict[str, Any] | None = None


def _archive_step(path: Path) -> int | None:
    """The step in the archive folder name: ``torch.save`` names it after the file it first wrote,
    so a renamed original checkpoint still tells its step."""
    try:
        with zipfile.ZipFile(path) as zf:
            first = zf.namelist()[0].split("/")[0]
    except Exception:
        return None
    return step_from_archive_name(first)


def _loss(metrics: Mapping[str, Any], kind: str) -> float | None:
    """The loss from ``metrics[kind]['loss']`` (trainer layout) or ``metrics[kind + '_loss']``."""
    value = metrics.get(kind)
    if isinstance(value, Mapping):
        value = value.get("loss")
    if value is None:
        value = metrics.get(f"{kind}_loss")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def info_from_payload(path: str | os.PathLike, payload: Mapping[str, Any]) -> CheckpointInfo:
    """Summarise an already validated payload (see :func:`load_checkpoint`)."""
    path = Path(path)
    st = path.stat()
    extras = payload.get(EXTRAS_KEY)
    extras = dict(extras) if isinstance(extras, Mapping) else None
    step = None
    if extras is not None:
        s = extras.get("step")
        if isinstance(s, int) and not isinstance(s, bool):
            step = s
    if step is None:
        step = step_from_name(path)
    if step is None:
        step = _archive_step(path)
    metrics = (extras or {}).get("metrics")
    metrics = metrics if isinstance(metrics, Mapping) else {}
    train_config = (extras or {}).get("train_config")
    corpus = (extras or {}).get("corpus")
    version = (extras or {}).get("format_version")
    config = {k: payload["config"][k] for k in CONFIG_KEYS}
    return CheckpointInfo(
        path=path,
        step=step,
        config=config,
        vocab_size=int(config["vocab_size"]),
        num_parameters=sum(int(t.numel()) for t in payload["model_state"].values()),
        val_loss=_loss(metrics, "val"),
        train_loss=_loss(metrics, "train"),
        is_original_format=extras is None,
        file_size=st.st_size,
        mtime=st.st_mtime,
        args=dict(payload.get("args") or {}),
        train_config=dict(train_config) if isinstance(train_config, Mapping) else None,
        format_version=version if isinstance(version, int) else None,
        corpus=dict(corpus) if isinstance(corpus, Mapping) else None,
    )


def read_info(path: str | os.PathLike) -> CheckpointInfo:
    """Step, sizes, losses and origin of a checkpoint, for listing runs."""
    return info_from_payload(path, load_checkpoint(path))


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"
               ) -> tuple[LandauerLLM, dict[int, str], CheckpointInfo]:
    """A ready-to-sample model (eval mode, on ``device``), its vocabulary and its details."""
    payload = load_checkpoint(path)
    try:
        model = LandauerLLM.from_config(payload["config"])
        model.load_state_dict(payload["model_state"], strict=True)
    except (RuntimeError, MemoryError) as exc:
        from core.memory import format_bytes, is_out_of_memory

        if is_out_of_memory(exc):
            need = sum(int(t.numel()) * 4 for t in payload["model_state"].values())
            raise CheckpointError(f"Not enough memory to load {path}: its model needs about "
                                  f"{format_bytes(need)}. Close other programs or use a smaller model.") from exc
        raise CheckpointError(f"{path}: the weights do not fit the model: {exc}") from exc
    model.to(device).eval()
    return model, payload["itos"], info_from_payload(path, payload)
