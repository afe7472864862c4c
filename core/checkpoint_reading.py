"""Reading a checkpoint file without trusting it, before and during ``torch.load``.

Nothing in a file runs: the pickle's opcodes are read to name any global it
would import, the zip archive's record sizes are checked against the file's
size before anything is allocated, and the safe loader maps only the
``pathlib`` classes the original stored in ``args`` to plain ``str``. Every
failure becomes a :class:`CheckpointError` that names the file and says what
happened (truncated, not a checkpoint, a refused global or opcode).
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

import torch


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message says which file, why, and what to do."""



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


def read_checkpoint_file(path: Path, map_location: Any) -> Any:
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


