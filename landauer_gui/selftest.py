"""``landauer-studio --self-test``: prove an installation works, end to end, without a person.

A frozen bundle can look complete and still fail on first use (a Qt plugin,
a torch library or numba's compiler left behind), so this check does what a
user does first: open the window, train a tiny model on the bundled corpus
through the Train view (its worker thread, plots and checkpoint), reload the
checkpoint and sample from it. It also compiles the numba scan kernel (the
bundle is read-only, so the compile cache must land in the per-user folder)
and checks it against the torch scan.

Everything the run writes goes to a temporary home folder
(``LANDAUER_STUDIO_HOME``), so a user's runs, settings and caches are never
touched. It prints one line, ``SELF-TEST PASSED: …`` or ``SELF-TEST FAILED: …``,
and returns 0 only when everything passed. A watchdog ends the process if
something hangs, so CI never waits forever.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

TIMEOUT_S = float(os.environ.get("LANDAUER_SELFTEST_TIMEOUT", "120"))
HOME_ENV = "LANDAUER_STUDIO_HOME"  # same name as core.resources.HOME_ENV (imported later, see run())
STEPS = 20
TINY_MODEL = dict(batch_size=8, seq_len=32, embed_dim=16, hidden_dim=32, num_layers=2,
                  steps=STEPS, save_every=0, eval_every=10, eval_batches=2)
CORPUS_WAIT_S = 30.0
SAMPLE_CHARS = 80
PROMPT = "ROMEO:"
QT_NONE_CALLS = 200  # void Qt calls made to detect bindings that drop references to None


class SelfTestError(Exception):
    """A check failed; the message is the reason shown to the user."""


def _say(line: str) -> None:
    """Print the verdict where one can read it (a windowed app on Windows may have no stdout)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            print(line, file=stream, flush=True)
            return


def _ensure_platform() -> None:
    """Without a display, Qt's default platform plugin would abort the process."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or os.environ.get("QT_QPA_PLATFORM")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def _start_watchdog(seconds: float) -> threading.Event:
    """End the whole process if the checks have not finished in time (a hung thread, a deadlock)."""
    done = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            _say(f"SELF-TEST FAILED: timed out after {seconds:.0f} s")
            os._exit(3)

    threading.Thread(target=watch, name="selftest-watchdog", daemon=True).start()
    return done


def _wait(app, condition: Callable[[], bool], deadline: float, what: str) -> None:
    """Run the Qt event loop until ``condition()`` holds; fail once ``deadline`` passes."""
    while not condition():
        if time.monotonic() > deadline:
            raise SelfTestError(f"timed out while {what}")
        app.processEvents()
        time.sleep(0.01)


def _check_qt_bindings() -> None:
    """Some PySide6 builds (6.12 on Python < 3.12) drop a reference to None on every void call.

    The dependency pin excludes them; this catches an installation that got one
    anyway, since the app would abort ("deallocating None") after a few
    thousand UI updates.
    """
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(QT_NONE_CALLS):
        probe.setObjectName("selftest")
    after = sys.getrefcount(None)
    if before - after > QT_NONE_CALLS * 3 // 4:
        raise SelfTestError(
            f"PySide6 {pyside_version} drops a reference to None on every call on Python "
            f"{sys.version_info.major}.{sys.version_info.minor}, so the studio would crash after a "
            "few thousand updates; install another PySide6 version (not 6.12 on this Python)")


def _check_resources() -> None:
    from core.resources import bundled_corpus, resource_path

    for parts in (("resources", "icons", "landauer-studio.png"),):
        try:
            resource_path(*parts)
        except FileNotFoundError as exc:
            raise SelfTestError(str(exc)) from None
    try:
        bundled_corpus()
    except FileNotFoundError as exc:
        raise SelfTestError(str(exc)) from None


def _check_numba() -> str:
    """Compile the numba scan (cache in the per-user folder) and compare it with the torch scan."""
    if importlib.util.find_spec("numba") is None:
        return "torch scan (numba not installed)"
    import torch

    from core import scan_numba
    from core.scan import elementwise_scan

    if not scan_numba.available():
        reason = scan_numba.unavailable_reason()
        if reason is None:
            return "torch scan (numba disabled)"
        raise SelfTestError(f"numba is installed but unusable: {reason}")
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(5, 3, 8, generator=gen)
    h0 = torch.randn(3, 8, generator=gen)
    scale = torch.ones(8)
    angles = torch.arange(8, dtype=torch.float32) * 2.39996322972865332
    t0 = time.perf_counter()
    fast, _ = elementwise_scan(u, h0, scale, angles, backend="numba")
    ready_s = time.perf_counter() - t0
    ref, _ = elementwise_scan(u, h0, scale, angles, backend="torch")
    err = float((fast - ref).abs().max())
    if not err < 1e-4:
        raise SelfTestError(f"the numba scan differs from the torch scan by {err:.2e}")
    return f"numba scan ready in {ready_s:.1f}s"  # compiled, or loaded from the per-user cache


def _read_losses(run_dir: Path) -> tuple[float, float]:
    from core.trainer import METRICS_FILE

    losses = []
    for line in (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("type") == "train":
            losses.append(float(row["loss"]))
    if not losses:
        raise SelfTestError(f"the run recorded no training steps in {run_dir / METRICS_FILE}")
    return losses[0], losses[-1]


def _train(app, window, deadline: float) -> tuple[str, str, float, float]:
    """Train through the Train view, as a user would; returns (checkpoint, device, first, last loss)."""
    from core.trainer import CONFIG_FILE

    tv = window.train_view
    saved: list[str] = []
    errors: list[str] = []
    tv.checkpoint_saved.connect(saved.append)
    tv.error_shown.connect(errors.append)

    tv.corpus_picker.use_bundled()
    tv.form.set_values(tv.form.values().replace(**TINY_MODEL))
    try:  # Start is blocked while the corpus is read in the background, or when it is unusable
        _wait(app, lambda: not tv.start_blockers(), min(deadline, time.monotonic() + CORPUS_WAIT_S),
              "reading the bundled corpus")
    except SelfTestError:
        raise SelfTestError("the Train view cannot start: " + "; ".join(tv.start_blockers())) from None
    if not tv.start():
        raise SelfTestError("the Train view refused to start: " + "; ".join(tv.start_blockers()))
    _wait(app, lambda: not tv.is_running(), deadline, f"training {STEPS} steps")
    if errors:
        raise SelfTestError(f"training failed: {errors[-1]}")
    if not saved:
        raise SelfTestError("training ended without saving a checkpoint")
    run_dir = tv.run_dir()
    info = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    first, last = _read_losses(run_dir)
    return saved[-1], str(info.get("device", "?")), first, last


def _generate(app, checkpoint: str, deadline: float) -> tuple[int, float]:
    """Reload the checkpoint and stream a sample on a worker thread, as the Generate view does."""
    from core.checkpoint import load_model
    from core.hparams import SamplingConfig
    from core.sampling import TextGenerator
    from landauer_gui.workers import BackgroundIterator

    model, itos, info = load_model(checkpoint, "cpu")
    if info.step != STEPS:
        raise SelfTestError(f"the reloaded checkpoint is at step {info.step}, expected {STEPS}")
    vocab = set(itos.values())
    prompt = "".join(ch for ch in PROMPT if ch in vocab) or itos[0]
    generator = TextGenerator(model, itos)
    sampling = SamplingConfig(max_new_tokens=SAMPLE_CHARS, temperature=1.0, top_k=0, seed=1234)
    stop = threading.Event()
    chunks: list[str] = []
    failures: list[str] = []
    worker = BackgroundIterator(lambda: generator.stream(prompt, sampling, stop))
    worker.item.connect(chunks.append)
    worker.failed.connect(failures.append)
    t0 = time.perf_counter()
    worker.start()
    try:
        _wait(app, lambda: not worker.is_running(), deadline, "generating a sample")
    finally:
        stop.set()
        worker.wait(5_000)
    elapsed = time.perf_counter() - t0
    if failures:
        raise SelfTestError(f"generation failed: {failures[-1]}")
    text = "".join(chunks)
    if len(text) != SAMPLE_CHARS or not set(text) <= vocab:
        raise SelfTestError(f"generation gave {len(text)} characters, expected {SAMPLE_CHARS} "
                            "from the model's vocabulary")
    return len(text), elapsed


def _checks(deadline: float) -> str:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "landauer-studio"])
    _check_qt_bindings()
    _check_resources()
    numba_note = _check_numba()

    from landauer_gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    app.processEvents()
    try:
        checkpoint, device, first, last = _train(app, window, deadline)
        chars, gen_s = _generate(app, checkpoint, deadline)
    finally:
        window.close()  # stops any run and waits for worker threads
        window.deleteLater()
        app.processEvents()
    return (f"trained {STEPS} steps on {device} (loss {first:.2f} -> {last:.2f}), checkpoint "
            f"reloaded, generated {chars} chars in {gen_s:.1f}s, {numba_note}")


def run(timeout_s: float = TIMEOUT_S) -> int:
    """Run every check; print one verdict line; 0 when all passed."""
    _ensure_platform()
    home = tempfile.mkdtemp(prefix="landauer-selftest-")
    previous_home = os.environ.get(HOME_ENV)
    os.environ[HOME_ENV] = home
    done = _start_watchdog(timeout_s + 30)  # the checks' own deadline fires first
    try:
        verdict = _checks(time.monotonic() + timeout_s)
    except SelfTestError as exc:
        _say(f"SELF-TEST FAILED: {exc}")
        return 1
    except Exception as exc:  # any crash is a failed installation, reported in one line
        if sys.stderr is not None:
            traceback.print_exc()
        _say(f"SELF-TEST FAILED: {type(exc).__name__}: {exc}")
        return 1
    else:
        _say(f"SELF-TEST PASSED: {verdict}")
        return 0
    finally:
        done.set()
        if previous_home is None:
            os.environ.pop(HOME_ENV, None)
        else:
            os.environ[HOME_ENV] = previous_home
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(run())
