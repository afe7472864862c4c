"""Checkpoints: the published format, written atomically and read without running code.

A checkpoint is a ``torch.save``d dict with the published keys ``model_state``,
``config``, ``args`` and ``itos``, plus our extras under ``landauer_studio``.
Everything we write is a type ``torch.load(weights_only=True)`` accepts, so the
original ``generate.py`` opens our files on current PyTorch.

Reading never unpickles arbitrary objects: the safe loader refuses anything but
plain data, and the only names we add are the ``pathlib`` classes the original
stored in ``args``, mapped to functions that return a plain ``str`` (a
``WindowsPath`` cannot be built on Linux, nor a ``PosixPath`` on Windows).
"""

from __future__ import annotations

import errno
import math
import os
import pickle
import pickletools
import re
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

import torch

from core.files import TEMP_SUFFIX, create_temp, fsync_dir
from core.hparams import ModelConfig
from core.model import LandauerLLM
from core.runs import STEP_FILE_RE as STEP_FILE_RE  # the run folder owns checkpoint names
from core.runs import step_from_archive_name, step_from_name

FORMAT_VERSION = 1
EXTRAS_KEY = "landauer_studio"
CONFIG_KEYS = ModelConfig.keys()  # vocab_size first, phase_scaling last (the checks rely on it)
REQUIRED_KEYS = ("model_state", "config", "itos")


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message says which file, why, and what to do."""


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


def _itos_dict(itos: Mapping[int, str] | Sequence[str], where: str) -> dict[int, str]:
    """``itos`` as ``{0: ch0, 1: ch1, ...}``, accepting a list or a dict with int-like keys."""
    if isinstance(itos, Mapping):
        items = list(itos.items())
    elif isinstance(itos, Sequence) and not isinstance(itos, str):
        items = list(enumerate(itos))
    else:
        raise CheckpointError(f"{where}: 'itos' must map token ids to characters, got {type(itos).__name__}.")
    out: dict[int, str] = {}
    for k, v in items:
        if isinstance(k, bool) or not isinstance(k, int):
            try:
                k = int(k)
            except (TypeError, ValueError):
                raise CheckpointError(f"{where}: 'itos' has a non-integer token id {k!r}.") from None
        if not isinstance(v, str) or len(v) != 1:
            raise CheckpointError(f"{where}: 'itos' maps token {k} to {v!r}, not to one character.")
        out[int(k)] = str(v)
    return out


def build_payload(model: LandauerLLM, itos: Mapping[int, str] | Sequence[str],
                  args: Mapping[str, Any], extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The dict to save: published keys first, our training state under ``landauer_studio``.

    Tensors are shared with the model and optimiser (moved to CPU if elsewhere),
    so save the payload before the next optimisation step changes them.
    """
    where = "checkpoint payload"
    config = {k: getattr(model.config, k) for k in CONFIG_KEYS}
    config = {k: (float(v) if k == "phase_scaling" else int(v)) for k, v in config.items()}
    itos_d = _itos_dict(itos, where)
    _check_itos(itos_d, config["vocab_size"], where)
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


# --------------------------------------------------------------------------- loading


def _posix_path(*parts: str) -> str:
    return str(PurePosixPath(*parts))


def _windows_path(*parts: str) -> str:
    return str(PureWindowsPath(*parts))


def _native_path(*parts: str) -> str:
    return str(PurePath(*parts))


# The names pickle writes for paths: ``pathlib.X`` (Python <= 3.12 and >= 3.14) and
# ``pathlib._local.X`` (Python 3.13). Each becomes a function returning a plain str.
_PATH_GLOBALS: list[tuple[Any, str]] = [
    (fn, f"{module}.{name}")
    for module in ("pathlib", "pathlib._local")
    for name, fn in (
        ("PosixPath", _posix_path),
        ("PurePosixPath", _posix_path),
        ("WindowsPath", _windows_path),
        ("PureWindowsPath", _windows_path),
        ("Path", _native_path),
        ("PurePath", _native_path),
    )
]
PATH_GLOBAL_NAMES = frozenset(name for _, name in _PATH_GLOBALS)

# torch's allowlist is process-wide; the lock keeps one load's scope from ending
# another's (the studio reads checkpoint details on a worker thread).
_LOAD_LOCK = threading.Lock()
# Mapping a pickled name to a different function needs (callable, "module.name") entries.
_TORCH_VERSION = tuple(int(x) for x in re.findall(r"\d+", torch.__version__)[:2])
_SAFE_PATHS_SUPPORTED = _TORCH_VERSION >= (2, 6) and hasattr(torch.serialization, "safe_globals")


@contextmanager
def _paths_as_str() -> Iterator[None]:
    """Scope in which the safe loader turns pickled pathlib objects into str."""
    with _LOAD_LOCK, torch.serialization.safe_globals(_PATH_GLOBALS):
        yield


_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
               "SHORT_BINUNICODE", "BINUNICODE8"}


def pickle_globals(data: bytes) -> list[str]:
    """Every ``module.name`` a pickle refers to, found by reading its opcodes (nothing runs).

    Follows ``STACK_GLOBAL`` (protocol 4+) through its two pushed strings, memo
    included, so a refusal can name the global whatever protocol wrote the file.
    """
    names: list[str] = []
    recent: list[str | None] = []  # last pushed values, None where not a string
    memo: dict[int, str | None] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
                recent.append(None)
            elif name == "STACK_GLOBAL":
                if len(recent) >= 2 and recent[-1] is not None and recent[-2] is not None:
                    names.append(f"{recent[-2]}.{recent[-1]}")
                recent.append(None)
            elif name in _STRING_OPS:
                recent.append(str(arg))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = recent[-1] if recent else None
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                recent.append(memo.get(int(arg)))
            elif name not in ("FRAME", "PROTO"):
                recent.append(None)
            del recent[:-2]
    except Exception:
        pass  # damaged or truncated: report what was found before the damage
    return list(dict.fromkeys(_py3_name(n) for n in names))


def _py3_name(name: str) -> str:
    """``__builtin__.exec`` as Python 3 spells it: protocol 2 pickles use Python 2 module names."""
    module, _, attr = name.rpartition(".")
    try:
        import _compat_pickle

        module, attr = _compat_pickle.NAME_MAPPING.get((module, attr), (module, attr))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    except ImportError:
        pass
    return f"{module}.{attr}" if module else attr


def _pickle_bytes(path: Path, is_zip: bool) -> bytes:
    """The pickle inside a torch.save archive, or the head of a raw (legacy) pickle file."""
    try:
        if is_zip:
            with zipfile.ZipFile(path) as zf:
                pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
                return zf.read(pkl)
        with open(path, "rb") as f:
            return f.read(MAX_PICKLE_BYTES)
    except Exception:
        return b""


def _unsafe_globals(data: bytes) -> list[str]:
    """The names in a pickle that are neither allowed by the safe loader nor paths."""
    try:
        from torch import _weights_only_unpickler as wo

        allowed = set(wo._get_allowed_globals())
        ours = ()
    except Exception:  # private API; without it, list everything that is not torch's own
        allowed, ours = set(), ("torch.", "collections.OrderedDict")
    return [g for g in pickle_globals(data)
            if g not in allowed and g not in PATH_GLOBAL_NAMES and not (ours and g.startswith(ours))]


def _opcode_name(code: int) -> str:
    """``FRAME (0x95)`` for the byte the safe loader reports as an unsupported operand."""
    for op in pickletools.opcodes:
        if ord(op.code) == code:
            return f"{op.name} (0x{code:02x})"
    return f"0x{code:02x}"


def _load_error(path: Path, exc: Exception) -> CheckpointError:
    msg = str(exc)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    is_zip = head == b"PK\x03\x04"
    is_pickle = head.startswith(b"\x80")
    if isinstance(exc, pickle.UnpicklingError):
        names = re.findall(r"GLOBAL (\S+) (?:was not an allowed|whose module)", msg)
        if is_zip or is_pickle:
            names = _unsafe_globals(_pickle_bytes(path, is_zip)) or names
        if names:
            listed = ", ".join(dict.fromkeys(names))
            return CheckpointError(
                f"Refused to open {path}: it refers to {listed}, which is not plain data "
                "(tensors, numbers, text). Opening it could run code hidden in the file, so it was "
                "not loaded. Use checkpoints only from sources you trust; a file written by train.py "
                "or Landauer Studio never contains such references.")
        if not is_zip and not is_pickle:
            return _not_checkpoint(path)
        operand = re.search(r"Unsupported operand (\d+)", msg)
        if operand:
            detail = f"its pickle instruction {_opcode_name(int(operand.group(1)))} is not accepted"
        else:
            found = re.search(r"WeightsUnpickler error: (.*)", msg)
            detail = (found.group(1) if found else msg).strip()[:200]
        if not is_zip:
            protocol = head[1] if len(head) > 1 else "?"
            return CheckpointError(
                f"Refused to open {path}: it is a plain Python pickle (protocol {protocol}), not a "
                f"PyTorch checkpoint written by torch.save, and the safe loader stopped there ({detail}). "
                "It was not loaded; choose a .pth file written by train.py or Landauer Studio.")
        return CheckpointError(
            f"Refused to open {path}: it holds data the safe loader does not accept "
            f"({detail}). It was not loaded; re-save it "
            "with train.py or Landauer Studio from a trusted copy.")
    if not is_zip and not is_pickle:
        return _not_checkpoint(path)
    if not is_zip and "magic number" in msg.lower():
        return CheckpointError(f"{path} is a plain Python pickle, not a PyTorch checkpoint written by "
                               "torch.save. Choose a .pth file written by train.py or Landauer Studio.")
    if is_zip and "central directory" in msg:
        return _archive_error(path, path.stat().st_size)
    if is_zip and not _has_pickle(path):
        return CheckpointError(f"{path} is a zip archive but not a PyTorch checkpoint. "
                               "Choose a .pth file written by train.py or Landauer Studio.")
    if isinstance(exc, EOFError) or "ran out of input" in msg.lower():
        return CheckpointError(f"{path}: the file ends early (truncated at {path.stat().st_size:,} bytes?); "
                               "it is incomplete or damaged. Use another checkpoint from the run.")
    return CheckpointError(f"{path} is damaged or not a checkpoint ({type(exc).__name__}: {msg[:200]}). "
                           "Choose another checkpoint from the run.")


def _has_pickle(path: Path) -> bool:
    """Whether a zip holds the ``data.pkl`` record every ``torch.save`` archive has."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist())
    except Exception:
        return True  # unreadable index: reported as damaged, not as foreign


def _not_checkpoint(path: Path) -> CheckpointError:
    return CheckpointError(f"{path} is not a PyTorch checkpoint (it does not start like a torch.save "
                           "file). Choose a .pth file written by train.py or Landauer Studio.")


# --------------------------------------------------------------------------- archive checks

# Bytes per element of the storage classes torch.save names in its pickle.
_STORAGE_ITEMSIZE = {"Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2,
                     "Char": 1, "Byte": 1, "Bool": 1, "ComplexFloat": 8, "ComplexDouble": 16}
MAX_PICKLE_BYTES = 64 << 20  # the pickle of a checkpoint is kilobytes; the weights are separate records
_INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}


def declared_storages(data: bytes) -> dict[str, int]:
    """``{record key: bytes}`` of the tensor storages a torch.save pickle refers to, read from
    its opcodes (nothing runs): ``('storage', torch.XStorage, key, location, numel)`` ids."""
    out: dict[str, int] = {}
    recent: list[tuple[str, Any]] = []
    memo: dict[int, tuple[str, Any]] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
                if recent:
                    memo[len(memo) if name == "MEMOIZE" else int(arg)] = recent[-1]
                continue
            if name == "FRAME":
                continue
            if name in ("GET", "BINGET", "LONG_BINGET"):
                recent.append(memo.get(int(arg), ("?", None)))
                del recent[:-6]
                continue
            if name == "BINPERSID" and len(recent) >= 6:
                (_, tag), (_, cls), (_, key), _, (kind, numel), (last, _) = recent[-6:]
                if tag == "storage" and kind == "int" and last == "TUPLE" and isinstance(cls, str):
                    storage = cls.replace(" ", ".").rsplit(".", 1)[-1].removesuffix("Storage")
                    out[str(key)] = int(numel) * _STORAGE_ITEMSIZE.get(storage, 1)
            kind = "str" if name in _STRING_OPS else "int" if name in _INT_OPS else name
            recent.append((kind, arg))
            del recent[:-6]
    except Exception:
        pass  # damaged: what was read so far
    return out


def _archive_error(path: Path, size: int) -> CheckpointError:
    """Why a file that starts like a zip archive cannot be opened as one: almost always truncation."""
    needed = None
    try:
        with open(path, "rb") as f:
            head = f.read(min(size, MAX_PICKLE_BYTES + 4096))
        name_len, extra_len = int.from_bytes(head[26:28], "little"), int.from_bytes(head[28:30], "little")
        name = head[30:30 + name_len].decode("utf-8", "replace")
        if name.endswith("data.pkl"):
            stored = declared_storages(head[30 + name_len + extra_len:])
            if stored:
                needed = sum(stored.values()) + 30 + name_len + extra_len
    except OSError:
        pass
    if needed is not None and needed > size:
        where = f"truncated at {size:,} of at least {needed:,} bytes?"
    else:
        where = f"truncated at {size:,} bytes? its archive index is missing"
    return CheckpointError(
        f"{path}: the file ends early ({where}); it is incomplete or damaged, probably cut short by "
        "an interrupted copy, download or save. Use another checkpoint from the run.")


def check_archive(path: str | os.PathLike) -> None:
    """Check a torch.save archive's structure and sizes without reading its weights.

    Runs before ``torch.load``, which trusts the sizes an archive declares: a few
    kilobytes claiming gigabyte records would make it allocate them. Raises
    :class:`CheckpointError` for a truncated file, records larger than the file,
    compressed records (torch.save never writes them) or storages the records do
    not hold. Files that are not zip archives are left to the loader.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError):
        raise _archive_error(path, size) from None
    with zf:
        infos = zf.infolist()
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                raise CheckpointError(
                    f"{path} is not a file torch.save wrote: its record {info.filename} is compressed. "
                    "Use the .pth file as written by train.py or Landauer Studio, not a repacked copy.")
            if info.header_offset + info.file_size > size or info.file_size > size:
                raise CheckpointError(
                    f"{path} is damaged or crafted: its record {info.filename} claims {info.file_size:,} "
                    f"bytes, but the whole file has {size:,}. It was not loaded.")
        total = sum(i.file_size for i in infos)
        if total > size:
            raise CheckpointError(f"{path} is damaged or crafted: its records claim {total:,} bytes, but "
                                  f"the file has {size:,}. It was not loaded.")
        pkl = next((i for i in infos if i.filename == "data.pkl" or i.filename.endswith("/data.pkl")), None)
        if pkl is None:
            return  # reported by the loader as "not a PyTorch checkpoint"
        if pkl.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"{path} is not a Landauer LLM checkpoint: its pickle alone is "
                                  f"{pkl.file_size:,} bytes. It was not loaded.")
        try:
            stored = declared_storages(zf.read(pkl))
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _archive_error(path, size) from exc
        records = {i.filename.rsplit("/data/", 1)[-1]: i.file_size for i in infos if "/data/" in i.filename}
        for key, nbytes in stored.items():
            held = records.get(key)
            if held is not None and nbytes > held:
                raise CheckpointError(
                    f"{path} is damaged or crafted: tensor storage {key} declares {nbytes:,} bytes but its "
                    f"record holds {held:,}. It was not loaded.")


def _read_file(path: Path, map_location: Any) -> Any:
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}: the file does not exist. Check the path, "
                              "or pick one of the run's landauer_llm_step*.pth files.")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file. Pick a .pth file inside it.")
    try:
        if path.stat().st_size == 0:
            raise CheckpointError(f"{path} is empty (0 bytes): its save was interrupted. "
                                  "Use another checkpoint from the run.")
        if not _SAFE_PATHS_SUPPORTED:
            raise CheckpointError(f"Cannot open {path} safely with PyTorch {torch.__version__}: "
                                  "reading checkpoints needs PyTorch 2.6 or newer. Upgrade torch.")
        check_archive(path)
        with _paths_as_str():
            return torch.load(str(path), map_location=map_location, weights_only=True)
    except (CheckpointError, MemoryError):
        raise
    except PermissionError as exc:
        raise CheckpointError(f"No permission to read {path}: check the file's permissions.") from exc
    except OSError as exc:
        raise CheckpointError(f"Could not read {path}: {exc.strerror or exc}.") from exc
    except Exception as exc:  # torch reports damage as RuntimeError, EOFError, UnpicklingError...
        raise _load_error(path, exc) from exc


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_config(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{where}: 'config' should be a dict of model sizes, got {type(config).__name__}.")
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"{where}: 'config' lacks {', '.join(missing)}; the model cannot be rebuilt "
                              "without it. The file is not a Landauer LLM checkpoint or is damaged.")
    for k in CONFIG_KEYS[:-1]:
        if not _positive_int(config[k]):
            raise CheckpointError(f"{where}: config {k} is {config[k]!r}; it must be a positive whole number.")
    ps = config["phase_scaling"]
    if isinstance(ps, bool) or not isinstance(ps, (int, float)) or not math.isfinite(ps) or ps <= 0:
        raise CheckpointError(f"{where}: config phase_scaling is {ps!r}; it must be a positive number.")
    return {k: config[k] for k in CONFIG_KEYS}


def _check_itos(itos: dict[int, str], vocab_size: int, where: str) -> None:
    if sorted(itos) != list(range(vocab_size)):
        raise CheckpointError(
            f"{where}: 'itos' has {len(itos)} characters with ids {_id_range(itos)}, but the model's "
            f"vocab_size is {vocab_size} (ids 0..{vocab_size - 1}). The vocabulary does not match the model.")
    if len(set(itos.values())) != len(itos):
        raise CheckpointError(f"{where}: 'itos' lists some character twice, so text cannot be encoded.")


def _id_range(itos: dict[int, str]) -> str:
    return f"{min(itos)}..{max(itos)}" if itos else "(none)"


def expected_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of the published state dict for ``config``.

    Written out rather than read from a model: building one, even on the meta
    device, costs seconds of imports or the memory of the real weights.
    """
    v, e, h, layers = (int(config[k]) for k in CONFIG_KEYS[:4])
    shapes: dict[str, tuple[int, ...]] = {"token_embedding.weight": (v, e), "rnn.hidden_scale": (layers, h)}
    for layer in range(layers):
        shapes[f"rnn.input_linears.{layer}.weight"] = (h, e if layer == 0 else h)
        shapes[f"rnn.input_linears.{layer}.bias"] = (h,)
    shapes["output_head.weight"] = (v, h)
    shapes["output_head.bias"] = (v,)
    return shapes


def _held_bytes(tensors: Sequence[Any]) -> int:
    """Bytes of distinct data behind ``tensors`` (shared or expanded storages counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor):
            st = t.untyped_storage()
            seen[st.data_ptr() if st.nbytes() else id(st)] = st.nbytes()
    return sum(seen.values())


def _check_sizes(state: Mapping[str, Any], config: dict[str, Any], where: str) -> None:
    """Refuse a config the file's weights cannot fill, before anything is built from it.

    The model is built from ``config``; a few kilobytes declaring a huge model (tensors
    whose shapes are expanded views of a tiny storage) would otherwise allocate gigabytes.
    """
    declared = sum(math.prod(shape) for shape in expected_shapes(config).values())
    held = _held_bytes(list(state.values()))
    if declared * 2 > held:  # at least two bytes per weight (half precision)
        raise CheckpointError(
            f"{where}: its config declares {declared:,} parameters but the file holds {held:,} bytes of "
            "weights. The file is damaged or crafted; it was not loaded.")


def _check_state(state: Any, config: dict[str, Any], where: str) -> None:
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{where}: 'model_state' should be a dict of tensors, got {type(state).__name__}.")
    _check_sizes(state, config, where)
    want = expected_shapes(config)
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if extra:
            parts.append("unexpected " + ", ".join(map(str, extra)))
        raise CheckpointError(f"{where}: 'model_state' does not fit a {config['num_layers']}-layer "
                              f"Landauer LLM ({'; '.join(parts)}). The file is from another model or damaged.")
    for k, shape in want.items():
        t = state[k]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{where}: model_state {k} is a {type(t).__name__}, not a tensor.")
        if tuple(t.shape) != shape:
            raise CheckpointError(
                f"{where}: model_state {k} has shape {tuple(t.shape)}, but the config "
                f"(vocab {config['vocab_size']}, embed {config['embed_dim']}, hidden {config['hidden_dim']}) "
                f"needs {shape}. The file's config and weights disagree; it is damaged.")
        if not t.is_floating_point():
            raise CheckpointError(f"{where}: model_state {k} holds {t.dtype} values, not floating point.")
        if t.untyped_storage().nbytes() < (t.storage_offset() + t.numel()) * t.element_size():
            raise CheckpointError(
                f"{where}: model_state {k} has shape {tuple(t.shape)} but its data holds only "
                f"{t.untyped_storage().nbytes():,} bytes. The file is damaged or crafted.")
        if not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"{where}: model_state {k} holds {bad:,} NaN or infinite values, so the model cannot "
                "produce text. The run diverged before this save or the file is damaged; use an earlier "
                "checkpoint.")


def validate_payload(payload: Any, where: str) -> dict[str, Any]:
    """Check the structure of a loaded checkpoint; return it with ``itos`` keys as int and ``args`` a dict."""
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{where} holds a {type(payload).__name__}, not a checkpoint dict. "
                              "Choose a .pth file written by train.py or Landauer Studio.")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        hint = ""
        if all(isinstance(v, torch.Tensor) for v in payload.values()) and payload:
            hint = " It looks like a bare state dict: the vocabulary and model sizes were not saved with it."
        keys = [repr(k) for k in list(payload)[:8]] + (["..."] if len(payload) > 8 else [])
        raise CheckpointError(f"{where} is not a Landauer LLM checkpoint: it lacks "
                              f"{', '.join(repr(k) for k in missing)} (it has {', '.join(keys) or 'nothing'})."
                              + hint)
    out = dict(payload)
    config = _check_config(payload["config"], where)
    itos = _itos_dict(payload["itos"], where)
    _check_itos(itos, config["vocab_size"], where)
    _check_state(payload["model_state"], config, where)
    args = payload.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise CheckpointError(f"{where}: 'args' should be a dict of hyperparameters, got {type(args).__name__}.")
    extras = payload.get(EXTRAS_KEY)
    if extras is not None and not isinstance(extras, Mapping):
        raise CheckpointError(f"{where}: '{EXTRAS_KEY}' should be a dict, got {type(extras).__name__}.")
    out["itos"] = itos
    out["args"] = dict(args)
    return out


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint with the safe loader; paths in ``args`` come back as str.

    Never unpickles arbitrary objects: a file referring to anything but plain data
    and pathlib paths is refused with a :class:`CheckpointError` naming it.
    """
    path = Path(path)
    return validate_payload(_read_file(path, map_location), str(path))


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
