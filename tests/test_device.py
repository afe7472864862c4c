"""Device detection and naming; GPUs are simulated by patching torch's queries."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
import torch

import core.device as dev
from core.device import DeviceInfo, cpu_model, describe, detect_devices, resolve_device


@pytest.fixture
def no_gpu(monkeypatch):
    """A CPU-only machine, whatever this one is."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch, no_gpu):
    names = ["NVIDIA GeForce RTX 3070", "NVIDIA A100-SXM4-40GB"]
    memory = [8 * 2**30, 40 * 2**30]
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(
        torch.cuda,
        "get_device_properties",
        lambda i: SimpleNamespace(name=names[int(i)], total_memory=memory[int(i)]),
    )


@pytest.fixture
def apple(monkeypatch, no_gpu):
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


def test_cpu_only_machine(no_gpu):
    devices = detect_devices()
    assert [d.name for d in devices] == ["cpu"]
    cpu = devices[0]
    assert cpu.kind == "cpu" and cpu.device == torch.device("cpu")
    threads = torch.get_num_threads()
    assert cpu.description.startswith("CPU: ")
    assert cpu.description.endswith(f", {threads} thread{'s' if threads != 1 else ''}")
    assert describe("cpu") == describe(torch.device("cpu")) == cpu.description
    assert resolve_device("auto") == resolve_device("") == resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


def test_gpus_first_cpu_last(two_gpus):
    devices = detect_devices()
    assert [d.name for d in devices] == ["cuda:0", "cuda:1", "cpu"]
    assert [d.kind for d in devices] == ["cuda", "cuda", "cpu"]
    assert devices[0].description == "CUDA: NVIDIA GeForce RTX 3070, 8.0 GB"
    assert devices[1].description == "CUDA: NVIDIA A100-SXM4-40GB, 40.0 GB"
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("CUDA:1") == torch.device("cuda", 1)
    assert describe(torch.device("cuda", 1)) == devices[1].description
    assert describe("cuda") == devices[0].description
    with pytest.raises(ValueError, match=r"cuda:2 was requested, but only 2 CUDA devices are present \(cuda:0, cuda:1\)"):
        resolve_device("cuda:2")


def test_cuda_without_cuda_build(monkeypatch, no_gpu):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    with pytest.raises(ValueError, match="this PyTorch build has no CUDA support"):
        resolve_device("cuda")


def test_cuda_build_without_gpu(monkeypatch, no_gpu):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    with pytest.raises(ValueError, match="no usable CUDA GPU was found"):
        resolve_device("cuda:0")


def test_broken_driver_still_lists_the_cpu(monkeypatch, no_gpu):
    def boom():
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "is_available", boom)
    assert [d.name for d in detect_devices()] == ["cpu"]


def test_apple_mps(apple):
    devices = detect_devices()
    assert [d.name for d in devices] == ["mps", "cpu"]
    assert devices[0] == DeviceInfo("mps", "mps", "MPS: Apple GPU")
    assert resolve_device("auto") == resolve_device("mps") == torch.device("mps")
    assert describe("mps") == "MPS: Apple GPU"


def test_cuda_beats_mps(two_gpus, apple):
    assert [d.name for d in detect_devices()] == ["cuda:0", "cuda:1", "mps", "cpu"]


def test_mps_refusals(monkeypatch, no_gpu):
    with pytest.raises(ValueError, match="no MPS support"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    with pytest.raises(ValueError, match="macOS 12.3"):
        resolve_device("mps")


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "cuda:-1", "metal"])
def test_unknown_device_names(name):
    with pytest.raises(ValueError, match="use auto, cpu, cuda, cuda:N or mps"):
        resolve_device(name)


def test_cpu_model_from_linux_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\n")
    assert cpu_model("Linux", x86) == "AMD EPYC 7B13"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 38.40\nCPU implementer\t: 0x41\n\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n")
    assert cpu_model("Linux", arm) == "BCM2835"


def test_cpu_model_fallbacks(tmp_path, monkeypatch):
    monkeypatch.setattr(dev.platform, "processor", lambda: "Intel64 Family 6 Model 154 Stepping 3, GenuineIntel")
    assert cpu_model("Windows") == "Intel64 Family 6 Model 154 Stepping 3, GenuineIntel"
    assert cpu_model("Linux", tmp_path / "missing") == "Intel64 Family 6 Model 154 Stepping 3, GenuineIntel"

    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return SimpleNamespace(stdout="Apple M2 Pro\n", returncode=0)

    monkeypatch.setattr(dev.subprocess, "run", fake_run)
    assert cpu_model("Darwin") == "Apple M2 Pro"
    assert calls == [["sysctl", "-n", "machdep.cpu.brand_string"]]

    def broken(*a, **kw):
        raise subprocess.TimeoutExpired("sysctl", 2)

    monkeypatch.setattr(dev.subprocess, "run", broken)
    monkeypatch.setattr(dev.platform, "processor", lambda: "")
    monkeypatch.setattr(dev.platform, "machine", lambda: "")
    assert cpu_model("Darwin") == "unknown processor"
