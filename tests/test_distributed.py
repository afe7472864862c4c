"""Distributed training: N processes under torchrun reproduce the single-process run.

Three torchrun launches in all (each costs several seconds to start): a 20-step run
compared step by step with the single-process run, a run resumed from its step-10
checkpoint, and a Ctrl+C that must stop both processes at the same step with a
checkpoint saved.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from core.checkpoint import load_checkpoint, load_model
from core.cli import train_main
from core.distributed import _NO_BUFFER_SYNC, Group, _LossModule, launched_rank, row_slice
from core.fused_loss import fused_losses
from core.model import LandauerLLM

REPO = Path(__file__).resolve().parents[1]
TEXT = "to be or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 30
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "core.train"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the batch split, without processes ------------------------------------------------


def test_each_rank_takes_its_own_equal_slice_of_the_global_batch():
    rows = [list(range(8))[row_slice(8, r, 4)] for r in range(4)]
    assert rows == [[0, 1], [2, 3], [4, 5], [6, 7]]
    x = torch.arange(24).view(6, 4)
    y = x + 100
    parts = [Group(r, 3).rows(x, y) for r in range(3)]
    assert torch.equal(torch.cat([p[0] for p in parts]), x)
    assert torch.equal(torch.cat([p[1] for p in parts]), y)
    single = Group()
    assert single.rows(x, y)[0] is x and single.share([1, 2, 3]) == [1, 2, 3]
    assert list(Group(1, 2).share([0, 1, 2, 3, 4])) == [1, 3]
    assert list(Group(0, 2).share(iter(range(5)))) == [0, 2, 4]  # lazily drawn batches too


def test_a_batch_that_does_not_divide_evenly_is_refused_before_joining():
    with pytest.raises(ValueError, match=r"--batch-size 6 .* divide evenly among the 4 processes"):
        row_slice(6, 0, 4)
    with pytest.raises(ValueError, match="divide evenly"):
        Group(0, 4).start(torch.device("cpu"), 6)  # checked before any rendezvous
    assert not dist.is_initialized()


def test_the_torchrun_environment_is_read():
    group = Group.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (group.rank, group.world_size, group.local_rank, group.active, group.is_main) == (3, 4, 1, True, False)
    assert not Group.from_env({}).active and Group.from_env({}).is_main
    assert launched_rank({"RANK": "2"}) == 2 and launched_rank({}) == 0
    with pytest.raises(ValueError, match="whole numbers"):
        Group.from_env({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="invalid distributed setting"):
        Group.from_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_ddp_over_the_fused_loss_reaches_every_parameter(tmp_path, monkeypatch):
    """DDP hooks each parameter's gradient; one it never saw would fail the second step."""
    monkeypatch.setenv("LANDAUER_DISABLE_NUMBA", "1")  # tiny shapes: skip compiling the kernels
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = LandauerLLM(vocab_size=11, embed_dim=4, hidden_dim=6, num_layers=2)
        ddp = DistributedDataParallel(_LossModule(model), **_NO_BUFFER_SYNC)
        x = torch.randint(0, 11, (3, 5))
        y = torch.randint(0, 11, (3, 5))
        for _ in range(2):
            model.zero_grad(set_to_none=True)
            total, _, _ = ddp(x, y, 0.05, 0.1)
            total.backward()
        via_ddp = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
        fused_losses(model, x, y, 0.05, 0.1).total.backward()
    finally:
        dist.destroy_process_group()
    assert set(via_ddp) == {n for n, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        torch.testing.assert_close(via_ddp[name], p.grad, msg=name)


# -- torchrun, two processes -------------------------------------------------------


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
            "LANDAUER_DISABLE_NUMBA": "1"}


def run_args(tmp_path: Path, save_dir: str, *extra: str) -> list[str]:
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text(TEXT, encoding="utf-8")
    return ["--data-path", str(corpus), "--embed-dim", "8", "--hidden-dim", "16", "--num-layers", "2",
            "--batch-size", "4", "--seq-len", "16", "--seed", "5", "--device", "cpu", "--log-every", "1",
            "--eval-every", "10", "--eval-batches", "3", "--save-every", "10",
            "--save-dir", str(tmp_path / save_dir), *extra]


def torchrun(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(TORCHRUN + args, env=child_env(), capture_output=True, text=True, timeout=300)


def metrics(run_dir: Path) -> dict[tuple[str, int], dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return {(r["type"], r["step"]): r for r in map(json.loads, lines)}


def assert_close_rel(a: float, b: float, what: str, rel: float = 1e-4) -> None:
    assert abs(a - b) <= rel * max(abs(a), abs(b)), f"{what}: {a} vs {b}"


def test_two_processes_reproduce_one_and_resume_identically(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDAUER_DISABLE_NUMBA", "1")  # the same scan as the children
    assert train_main(run_args(tmp_path, "single", "--steps", "20")) == 0

    two = torchrun(run_args(tmp_path, "two", "--steps", "20"))
    assert two.returncode == 0, two.stderr[-3000:]
    # rank 0 alone prints: each step's line once; the other rank prints nothing
    assert sum(line.startswith("step 00007 |") for line in two.stdout.splitlines()) == 1
    assert "Traceback" not in two.stderr

    single, pair = metrics(tmp_path / "single"), metrics(tmp_path / "two")
    assert set(single) == set(pair) and ("train", 20) in pair and ("val", 20) in pair
    for key, rec in single.items():
        for field in ("loss", "content", "energy"):
            assert_close_rel(rec[field], pair[key][field], f"{key} {field}")
    assert pair[("val", 10)]["batches"] == 3  # split 2 + 1 between the ranks, summed

    want = load_checkpoint(tmp_path / "single" / "landauer_llm_step20.pth")
    got = load_checkpoint(tmp_path / "two" / "landauer_llm_step20.pth")
    assert list(got["model_state"]) == list(want["model_state"])  # no "module." prefix
    assert set(got) == set(want) and got["config"] == want["config"]
    for name, tensor in want["model_state"].items():
        torch.testing.assert_close(got["model_state"][name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    load_model(tmp_path / "two" / "landauer_llm_step20.pth", "cpu")  # opens like any checkpoint

    # resumed from its own step-10 checkpoint, it continues as if never interrupted
    resumed = torchrun(run_args(tmp_path, "resumed", "--steps", "20",
                                "--resume", str(tmp_path / "two" / "landauer_llm_step10.pth")))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = metrics(tmp_path / "resumed")
    assert {k for k in again if k[1] > 10} == {k for k in pair if k[1] > 10}
    for key, rec in again.items():
        for field in ("loss", "content", "energy"):
            assert rec[field] == pair[key][field], f"{key} {field}"
    end = load_checkpoint(tmp_path / "resumed" / "landauer_llm_step20.pth")
    for name, tensor in got["model_state"].items():
        assert torch.equal(end["model_state"][name], tensor), name


def test_ctrl_c_stops_every_process_at_the_same_step_and_saves(tmp_path):
    """A terminal's Ctrl+C reaches torchrun and the workers; torchrun passes it on once more."""
    args = run_args(tmp_path, "run", "--steps", "100000", "--log-every", "20", "--eval-every", "0",
                    "--save-every", "0")
    proc = subprocess.Popen(TORCHRUN + args, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    watchdog = threading.Timer(240, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    try:
        for line in proc.stdout:
            if line.startswith("step 00040"):
                os.killpg(proc.pid, signal.SIGINT)
                break
        out = proc.stdout.read()
        err = proc.stderr.read()
        proc.wait()
    finally:
        watchdog.cancel()
    assert "Stopping all processes after this step" in err
    assert "[rank0]" not in err and "[rank1]" not in err, err[-3000:]  # no worker traceback
    stopped = [line for line in out.splitlines() if line.startswith("Stopped at step")]
    assert len(stopped) == 1, out[-2000:]
    step = int(stopped[0].split()[3])
    assert step >= 40
    saved = tmp_path / "run" / f"landauer_llm_step{step}.pth"
    assert f"Saved checkpoint to {saved}" in out
    assert load_checkpoint(saved)["landauer_studio"]["step"] == step
