"""Command lines: published flags and log lines, generation from a published checkpoint, clean errors."""

from __future__ import annotations

import os
import re
import runpy
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import core.train_step as train_step_mod
from core.cli import generate_main, train_main, train_parser

REPO = Path(__file__).resolve().parents[1]
TEXT = "to be or not to be, that is the question. " * 40
STEP_LINE = re.compile(r"^step \d{5} \| loss=\d+\.\d{4} \(content=\d+\.\d{4}, energy=\d+\.\d{4}\)$")
VAL_LINE = re.compile(r"^\[val\] step \d{5} \| loss=\d+\.\d{4} \(content=\d+\.\d{4}, energy=\d+\.\d{4}\)$")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


PUBLISHED_DEFAULTS = {
    "data_path": "tiny_shakespeare.txt", "batch_size": 32, "seq_len": 64, "embed_dim": 64,
    "hidden_dim": 256, "num_layers": 2, "phase_scaling": 2.0, "temperature": 0.05,
    "energy_weight": 0.1, "lr": 3e-3, "grad_clip": 1.0, "steps": 2000, "save_every": 500,
    "eval_every": 500, "save_dir": "saved_models", "device": "auto",
}


def child_env() -> dict[str, str]:
    """A child interpreter that finds this checkout and skips compiling the numba kernels."""
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "LANDAUER_DISABLE_NUMBA": "1"}


def tiny_args(tmp_path: Path, *extra: str) -> list[str]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    return ["--data-path", str(corpus), "--batch-size", "4", "--seq-len", "8", "--embed-dim", "6",
            "--hidden-dim", "12", "--device", "cpu", "--save-dir", str(tmp_path / "run"), *extra]


def test_every_published_flag_with_its_default():
    ns = train_parser().parse_args([])
    for name, default in PUBLISHED_DEFAULTS.items():
        assert getattr(ns, name) == default, name
    flags = train_parser().format_help()
    for name in PUBLISHED_DEFAULTS:
        assert "--" + name.replace("_", "-") in flags


def test_train_prints_the_published_log_lines(tmp_path, capsys):
    code = train_main(tiny_args(tmp_path, "--steps", "20", "--log-every", "10", "--eval-every", "10",
                                "--eval-batches", "2", "--save-every", "10"))
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Training on CPU")
    assert [x for x in lines if x.startswith("step ")] and all(
        STEP_LINE.match(x) for x in lines if x.startswith("step "))
    assert [x[:16] for x in lines if x.startswith("step ")] == ["step 00010 | los", "step 00020 | los"]
    assert len([x for x in lines if VAL_LINE.match(x)]) == 2
    assert [x for x in lines if x.startswith("Saved checkpoint to ")] == [
        f"Saved checkpoint to {tmp_path / 'run' / 'landauer_llm_step10.pth'}",
        f"Saved checkpoint to {tmp_path / 'run' / 'landauer_llm_step20.pth'}",
    ]
    assert lines[-1].startswith("Finished at step 20")


def test_resume_keeps_the_checkpoint_settings(tmp_path, capsys):
    assert train_main(tiny_args(tmp_path, "--steps", "3", "--eval-every", "0", "--lr", "0.01")) == 0
    ckpt = tmp_path / "run" / "landauer_llm_step3.pth"
    capsys.readouterr()
    # Only --steps is given: model sizes, corpus and lr come from the checkpoint.
    code = train_main(["--resume", str(ckpt), "--steps", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "steps 3->5" in out.splitlines()[0]
    from core.checkpoint import load_checkpoint

    extras = load_checkpoint(tmp_path / "run" / "landauer_llm_step5.pth")["landauer_studio"]
    assert extras["train_config"]["lr"] == 0.01 and extras["train_config"]["hidden_dim"] == 12


def test_train_errors_exit_with_one_line(tmp_path, capsys):
    assert train_main(["--data-path", str(tmp_path / "missing.txt"), "--device", "cpu",
                       "--save-dir", str(tmp_path / "run")]) == 2
    _, err = capsys.readouterr()
    assert "missing.txt" in err and "Traceback" not in err

    assert train_main(tiny_args(tmp_path, "--batch-size", "0")) == 2
    _, err = capsys.readouterr()
    assert "batch_size" in err

    assert train_main(tiny_args(tmp_path, "--resume", str(tmp_path / "nope.pth"))) == 2
    _, err = capsys.readouterr()
    assert "nope.pth" in err and "Traceback" not in err


def test_train_nan_exits_non_zero(tmp_path, capsys, monkeypatch):
    real = train_step_mod.fused_grads

    def poisoned(*args, **kw):
        losses = real(*args, **kw)
        losses.total = losses.total * float("inf") * 0.0
        return losses

    monkeypatch.setattr(train_step_mod, "fused_grads", poisoned)
    assert train_main(tiny_args(tmp_path, "--steps", "3", "--eval-every", "0")) == 1
    _, err = capsys.readouterr()
    assert "nan" in err.lower()


def test_generate_from_the_published_checkpoint(golden_dir, capsys):
    ckpt = str(golden_dir / "reference_format_tiny.pth")
    assert generate_main(["--checkpoint", ckpt, "--prompt", "To be", "--max-new-tokens", "40",
                          "--seed", "3"]) == 0
    streamed = capsys.readouterr().out
    assert streamed.startswith("To be") and streamed.endswith("\n")
    assert len(streamed) == len("To be") + 40 + 1
    assert generate_main(["--checkpoint", ckpt, "--prompt", "To be", "--max-new-tokens", "40",
                          "--seed", "3", "--no-stream"]) == 0
    assert capsys.readouterr().out == streamed


def test_generate_errors_exit_2_without_traceback(golden_dir, tmp_path, capsys):
    ckpt = str(golden_dir / "reference_format_tiny.pth")
    cases = [
        (["--checkpoint", str(tmp_path / "absent.pth")], "absent.pth"),
        (["--checkpoint", ckpt, "--prompt", "caf\u00e9 \u2603"], "'\u2603'"),
        (["--checkpoint", ckpt, "--temperature", "-1"], "temperature"),
        (["--checkpoint", ckpt, "--device", "warp"], "warp"),
    ]
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    cases.append((["--checkpoint", str(junk)], "junk.pth"))
    for argv, needle in cases:
        assert generate_main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert needle in err and "Traceback" not in err and out == ""
        assert len(err.strip().splitlines()) == 1


def test_python_dash_m_entry_points(golden_dir, monkeypatch, capsys):
    # ``python -m core.train`` in a real child (cheap: the CLI imports torch only when training).
    train = subprocess.run([sys.executable, "-m", "core.train", "--help"], cwd=REPO, env=child_env(),
                           capture_output=True, text=True, timeout=120)
    assert train.returncode == 0 and "--data-path" in train.stdout
    # ``python -m core.generate`` in-process, so the test does not pay for a second torch import.
    ckpt = str(golden_dir / "reference_format_tiny.pth")
    monkeypatch.setattr(sys, "argv", ["core.generate", "--checkpoint", ckpt, "--max-new-tokens", "10"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: module already imported
        with pytest.raises(SystemExit) as done:
            runpy.run_module("core.generate", run_name="__main__")
    assert done.value.code == 0
    assert len(capsys.readouterr().out) == 1 + 10 + 1


def test_ctrl_c_stops_and_saves(tmp_path, capsys, monkeypatch):
    """The first SIGINT asks the trainer to stop: it saves a checkpoint and exits with 130."""
    real = train_step_mod.fused_grads
    calls = {"n": 0}

    def interrupt_at_step_two(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGINT)  # handled in the main thread, as a real Ctrl+C
        return real(*args, **kw)

    monkeypatch.setattr(train_step_mod, "fused_grads", interrupt_at_step_two)
    before = signal.getsignal(signal.SIGINT)
    code = train_main(tiny_args(tmp_path, "--steps", "1000", "--eval-every", "0"))
    out, err = capsys.readouterr()
    assert code == 130, err
    assert signal.getsignal(signal.SIGINT) is before
    assert "Stopped at step 2" in out and "Traceback" not in err
    assert [p.name for p in (tmp_path / "run").glob("*.pth")] == ["landauer_llm_step2.pth"]


def test_resume_says_which_settings_changed(tmp_path, capsys):
    assert train_main(tiny_args(tmp_path, "--steps", "3", "--eval-every", "0", "--lr", "0.01")) == 0
    ckpt = tmp_path / "run" / "landauer_llm_step3.pth"
    capsys.readouterr()
    # --seed is given with the value already saved: given, but not a change.
    code = train_main(["--resume", str(ckpt), "--steps", "4", "--lr", "0.001", "--seed", "1337"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err.splitlines() == ["resuming with changed settings: lr 0.01 -> 0.001, steps 3 -> 4"]
    assert "steps 3->4" in out.splitlines()[0]


def test_help_does_not_import_torch():
    """--help answers at once: neither command imports torch (nor the studio) to print it."""
    script = ("import sys\nfrom core.cli import generate_main, train_main\n"
              "for main in (train_main, generate_main):\n"
              "    try:\n        main(['--help'])\n    except SystemExit as done:\n"
              "        assert done.code == 0\n"
              "heavy = sorted(m for m in ('torch', 'numpy', 'PySide6') if m in sys.modules)\n"
              "assert not heavy, heavy\n")
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=child_env(),
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert "--data-path" in child.stdout and "--checkpoint" in child.stdout
    timed = subprocess.run([sys.executable, "-X", "importtime", "-m", "core.train", "--help"], cwd=REPO,
                           env=child_env(), capture_output=True, text=True, timeout=120)
    assert timed.returncode == 0 and "--data-path" in timed.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in timed.stderr.splitlines() if "|" in line]
    assert "core.cli" in imported and "torch" not in imported


def test_second_ctrl_c_during_a_save_aborts_cleanly(tmp_path, capsys, monkeypatch):
    """Ctrl+C twice: the second cuts the stop's save short; exit 130 with its own message, the
    last good checkpoint intact, no temp file left, no 'could not save' error."""
    import core.checkpoint as ck
    from tests.test_checkpoint import FailingWriter

    real_loss, real_writer = train_step_mod.fused_grads, ck._open_writer
    state = {"step": 0, "armed": False}

    def first_ctrl_c_at_step_two(*args, **kw):
        state["step"] += 1
        if state["step"] == 2:
            state["armed"] = True
            signal.raise_signal(signal.SIGINT)
        return real_loss(*args, **kw)

    class SecondCtrlC(FailingWriter):
        def write(self, data):
            if state["armed"]:
                state["armed"] = False
                signal.raise_signal(signal.SIGINT)  # lands inside torch.save's writer
            return self.f.write(data)

    monkeypatch.setattr(train_step_mod, "fused_grads", first_ctrl_c_at_step_two)
    monkeypatch.setattr(ck, "_open_writer", lambda fd: SecondCtrlC(real_writer(fd), 1 << 40, 0))
    before = signal.getsignal(signal.SIGINT)
    code = train_main(tiny_args(tmp_path, "--steps", "1000", "--eval-every", "0", "--save-every", "1"))
    _, err = capsys.readouterr()
    assert code == 130, err
    assert signal.getsignal(signal.SIGINT) is before
    assert "aborted by a second Ctrl+C" in err and "landauer_llm_step1.pth" in err
    assert "could not" not in err.lower() and "Traceback" not in err
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("*.pth")) == ["landauer_llm_step1.pth"]
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    assert ck.load_checkpoint(run / "landauer_llm_step1.pth")["landauer_studio"]["step"] == 1


def test_resume_with_nothing_left_to_do_says_so(tmp_path, capsys):
    assert train_main(tiny_args(tmp_path, "--steps", "3", "--eval-every", "0")) == 0
    ckpt = tmp_path / "run" / "landauer_llm_step3.pth"
    capsys.readouterr()
    for steps in ("3", "2"):
        assert train_main(tiny_args(tmp_path, "--resume", str(ckpt), "--steps", steps)) == 2
        _, err = capsys.readouterr()
        assert "already at step 3; pass --steps > 3" in err and "Traceback" not in err
