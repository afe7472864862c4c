"""Which devices can train, and how to name them for a person.

The studio lists :func:`detect_devices` in its device menu and the CLI accepts the
same names, so "auto", "cpu", "cuda", "cuda:N" and "mps" mean the same thing
everywhere. A device that cannot be used is refused up front with a message that
says why, instead of a CUDA error in the middle of a run.
"""

from __future__ import annotations

import functools
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

_CUDA_NAME = re.compile(r"^cuda(?::(\d+))?$")
_CPUINFO_KEYS = ("model name", "hardware", "cpu model", "processor", "model")


@dataclass(frozen=True)
class DeviceInfo:
    """One usable device: ``name`` is a torch device string ("cuda:0", "mps", "cpu")."""

    name: str
    kind: str  # "cuda", "mps" or "cpu"
    description: str  # e.g. "CUDA: NVIDIA GeForce RTX 3070, 8.0 GB"

    @property
    def device(self) -> torch.device:
        return torch.device(self.name)


def _cuda_available() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver must not take the device menu down
        return False


def _cuda_count() -> int:
    try:
        return int(torch.cuda.device_count()) if _cuda_available() else 0
    except Exception:
        return 0


def _cuda_built() -> bool:
    try:
        return bool(torch.backends.cuda.is_built())
    except Exception:
        return torch.version.cuda is not None or getattr(torch.version, "hip", None) is not None


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    try:
        return bool(mps is not None and mps.is_available())
    except Exception:
        return False


def _mps_built() -> bool:
    mps = getattr(torch.backends, "mps", None)
    try:
        return bool(mps is not None and mps.is_built())
    except Exception:
        return False


def _cuda_description(index: int) -> str:
    label = "ROCm" if getattr(torch.version, "hip", None) else "CUDA"
    try:
        props = torch.cuda.get_device_properties(index)
        return f"{label}: {props.name}, {props.total_memory / 2**30:.1f} GB"
    except Exception:
        return f"{label}: GPU {index}"


def cpu_model(system: str | None = None, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's marketing name, or a generic fallback; never raises."""
    system = system or platform.system()
    try:
        if system == "Linux" and cpuinfo.is_file():
            found: dict[str, str] = {}
            for line in cpuinfo.read_text(errors="replace").splitlines():
                key, sep, value = line.partition(":")
                key, value = key.strip().lower(), value.strip()
                # On x86 "processor" is just an index; skip purely numeric values.
                if sep and value and key in _CPUINFO_KEYS and not value.isdigit():
                    found.setdefault(key, value)
            for key in _CPUINFO_KEYS:
                if key in found:
                    return found[key]
        if system == "Darwin":
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=2, check=False,
            ).stdout.strip()
            if out:
                return out
        name = platform.processor() or platform.machine()
        if name:
            return name
    except Exception:
        pass
    return "unknown processor"


@functools.lru_cache(maxsize=1)
def _cached_cpu_model() -> str:
    return cpu_model()


def _cpu_description() -> str:
    threads = torch.get_num_threads()
    return f"CPU: {_cached_cpu_model()}, {threads} thread{'s' if threads != 1 else ''}"


def detect_devices() -> list[DeviceInfo]:
    """Usable devices, best first: each CUDA GPU, then Apple MPS, then the CPU (always last)."""
    devices = [DeviceInfo(f"cuda:{i}", "cuda", _cuda_description(i)) for i in range(_cuda_count())]
    if _mps_available():
        devices.append(DeviceInfo("mps", "mps", "MPS: Apple GPU"))
    devices.append(DeviceInfo("cpu", "cpu", _cpu_description()))
    return devices


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch device for a user's choice, or ``ValueError`` saying why it cannot be used.

    "auto" (or empty) picks the best available; "cuda" means "cuda:0".
    """
    if isinstance(name, torch.device):
        name = str(name)
    choice = (name or "auto").strip().lower()
    if choice == "auto":
        return torch.device(detect_devices()[0].name)
    if choice == "cpu":
        return torch.device("cpu")
    m = _CUDA_NAME.match(choice)
    if m:
        index = int(m.group(1) or 0)
        if not _cuda_built():
            raise ValueError(
                f"{choice} was requested, but this PyTorch build has no CUDA support "
                "(it is a CPU-only build); install a CUDA build of PyTorch or choose cpu"
            )
        count = _cuda_count()
        if count == 0:
            raise ValueError(
                f"{choice} was requested, but no usable CUDA GPU was found "
                "(check that the GPU and its driver are installed); choose cpu or auto"
            )
        if index >= count:
            present = ", ".join(f"cuda:{i}" for i in range(count))
            raise ValueError(
                f"{choice} was requested, but only {count} CUDA "
                f"device{'s are' if count > 1 else ' is'} present ({present})"
            )
        return torch.device("cuda", index)
    if choice in ("mps", "mps:0"):
        if not _mps_built():
            raise ValueError(
                "mps was requested, but this PyTorch build has no MPS support "
                "(Apple's GPU backend needs PyTorch for macOS on Apple silicon); choose cpu or auto"
            )
        if not _mps_available():
            raise ValueError(
                "mps was requested, but the Apple GPU is not available "
                "(it needs macOS 12.3 or newer on Apple silicon); choose cpu or auto"
            )
        return torch.device("mps")
    raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")


def describe(device: torch.device | str) -> str:
    """A person's name for ``device``, e.g. "CPU: AMD EPYC 7B13, 2 threads"."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index
        if index is None:
            try:
                index = torch.cuda.current_device()
            except Exception:
                index = 0
        return _cuda_description(index)
    if device.type == "mps":
        return "MPS: Apple GPU"
    if device.type == "cpu":
        return _cpu_description()
    return str(device)
