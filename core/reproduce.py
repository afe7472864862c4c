"""Reproduce the published benchmark table: several seeds per row, honest statistics.

Each seed is an ordinary training run (:class:`core.trainer.Trainer`) in its own
folder of the run history, so it shows up in the studio like any other run.
:meth:`Reproduction.run` yields typed events, the trainer's own wrapped with
the row and seed, so the command line and the studio consume the same stream.
:meth:`Reproduction.stop` may be called from any thread: the current run stops
after its step and saves a checkpoint; finished seeds are kept in the state
file, and running the same reproduction again skips them and continues the
stopped seed from its checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from core.data import CorpusError, load_corpus
from core.device import describe, resolve_device
from core.events import EvalMetrics, Failed, Finished
from core.events import Event as TrainerEvent
from core.hparams import TrainConfig
from core.published import PUBLISHED_ROWS, rows_of_setting, setting_key
from core.reproduce_report import (
    Report,
    RowSummary,
    SeedKey,
    SeedResult,
    State,
    StateError,
    corpus_facts,
    corpus_warning,
    load_state,
    render_markdown,
    save_state,
    summarize,
    write_markdown,
)
from core.runs import new_run_dir
from core.trainer import Trainer

PROTOCOLS = ("fixed", "published")
FATAL_KINDS = ("config", "corpus", "disk")  # every further seed would fail the same way


@dataclass(frozen=True)
class ReproduceConfig:
    """What to reproduce and how; the defaults are the published schedule."""

    rows: tuple[int, ...] = tuple(sorted(PUBLISHED_ROWS))
    seeds: int = 3
    first_seed: int = 0
    steps: int = 2000
    device: str = "auto"
    eval_protocol: str = "fixed"
    eval_batches: int = 20
    eval_every: int = 500
    data_path: str = ""  # empty: the bundled corpus
    runs_root: str = ""  # empty: the run history folder (core.resources.runs_dir())
    log_every: int = 100

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    @property
    def effective_eval_every(self) -> int:
        """Evaluations must include the last step, the one compared with the table."""
        every = max(1, self.eval_every)
        return every if self.steps % every == 0 else self.steps

    @property
    def effective_eval_batches(self) -> int:
        return self.eval_batches if self.eval_protocol == "fixed" else 1

    def settings(self) -> list[str]:
        """The distinct settings of the requested rows, in row order (rows 1-3 are one)."""
        keys: list[str] = []
        for row in sorted(self.rows):
            if setting_key(row) not in keys:
                keys.append(setting_key(row))
        return keys

    def table_rows(self) -> list[int]:
        """Every published row measured by the requested settings (asking for row 1 compares
        with rows 1-3, which are the same setting)."""
        keys = self.settings()
        return [r for r in sorted(PUBLISHED_ROWS) if setting_key(r) in keys]

    def errors(self) -> list[str]:
        problems = []
        unknown = [r for r in self.rows if r not in PUBLISHED_ROWS]
        if not self.rows:
            problems.append("no rows to reproduce")
        if unknown:
            problems.append(f"there is no published row {unknown[0]}")
        if self.seeds < 1:
            problems.append("at least one seed is needed")
        if self.eval_protocol not in PROTOCOLS:
            problems.append(f"the validation protocol must be one of {', '.join(PROTOCOLS)}")
        if self.eval_every < 1:
            problems.append("evaluate every must be at least 1: the table compares validation losses")
        if not problems:
            problems += self.train_config(setting_key(self.rows[0]), self.first_seed, "").errors()
        return problems

    def train_config(self, setting: str, seed: int, run_dir: str, device: str = "",
                     data_path: str = "", resume: str = "") -> TrainConfig:
        """The ordinary training run of one seed of one setting."""
        row = int(setting.removeprefix("row"))
        return TrainConfig(
            data_path=data_path or self.data_path, steps=self.steps, seed=seed,
            eval_every=self.effective_eval_every, eval_batches=self.eval_batches,
            eval_protocol=self.eval_protocol, save_every=0, log_every=self.log_every,
            save_dir=run_dir, device=device or self.device, resume=resume,
        ).replace(**PUBLISHED_ROWS[row].overrides)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": list(self.rows), "seed_list": self.seed_list,
                "eval_every": self.effective_eval_every}


# -- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """The first event: what will run, on which device and corpus, and what is done already."""

    settings: tuple[tuple[str, tuple[int, ...]], ...]  # (setting, the published rows it measures)
    seeds: tuple[int, ...]
    total: int  # seed runs in the plan
    done: int  # of those, already finished in an earlier run (skipped)
    device: str
    device_description: str
    torch_version: str
    corpus: dict[str, Any]
    warning: str | None  # the corpus is not the canonical one


@dataclass(frozen=True)
class SeedStarted:
    setting: str
    rows: tuple[int, ...]
    seed: int
    index: int  # 1-based position among the plan's seed runs
    total: int
    run_dir: str
    resumed_from: str | None = None  # checkpoint of an earlier, stopped attempt


@dataclass(frozen=True)
class SeedProgress:
    """One trainer event of the running seed (Started, StepMetrics, EvalMetrics, ...)."""

    setting: str
    seed: int
    event: TrainerEvent


@dataclass(frozen=True)
class SeedFinished:
    result: SeedResult
    skipped: bool = False  # finished in an earlier run with the same settings


@dataclass(frozen=True)
class SeedFailed:
    setting: str
    seed: int
    message: str
    kind: str
    run_dir: str = ""


@dataclass(frozen=True)
class ReproductionFinished:
    """The last event. ``error`` is set when the reproduction could not go on."""

    summaries: tuple[RowSummary, ...]
    stopped: bool = False
    error: str | None = None
    error_kind: str = ""
    report: Report | None = None
    markdown: str = ""


ReproduceEvent = (Planned | SeedStarted | SeedProgress | SeedFinished | SeedFailed | RowSummary
                  | ReproductionFinished)


# -- run folders ----------------------------------------------------------------------


# -- the engine -------------------------------------------------------------------------


class Reproduction:
    """Runs the seeds of the requested rows; iterate :meth:`run` to drive it.

    ``state_path`` (JSON) records finished seeds after each one, and
    ``markdown_path`` gets the table; both are rewritten atomically. Without a
    state path nothing is remembered between runs.
    """

    def __init__(self, config: ReproduceConfig, state_path: str | Path | None = None,
                 markdown_path: str | Path | None = None, command: str = ""):
        self.config = config
        self.state_path = Path(state_path) if state_path else None
        self.markdown_path = Path(markdown_path) if markdown_path else None
        self.command = command
        self._lock = threading.Lock()
        self._stop = False
        self._trainer: Trainer | None = None
        self._started = False

    def stop(self) -> None:
        """Stop after the current step of the current seed (it saves a checkpoint); any thread."""
        with self._lock:
            self._stop = True
            trainer = self._trainer
        if trainer is not None:
            trainer.stop()

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def run(self) -> Iterator[ReproduceEvent]:
        if self._started:
            raise RuntimeError("a Reproduction runs once; create a new one to run again")
        self._started = True
        cfg = self.config
        problems = cfg.errors()
        if problems:
            yield ReproductionFinished((), error="invalid settings: " + "; ".join(problems),
                                       error_kind="config")
            return
        try:
            device = resolve_device(cfg.device)
        except (ValueError, RuntimeError) as exc:
            yield ReproductionFinished((), error=str(exc), error_kind="config")
            return
        try:
            data_path = cfg.data_path or str(_bundled_corpus())
            corpus = load_corpus(data_path)
            for key in cfg.settings():
                corpus.check_seq_len(cfg.train_config(key, 0, "").seq_len, True)
        except (CorpusError, FileNotFoundError) as exc:
            yield ReproductionFinished((), error=str(exc), error_kind="corpus")
            return
        try:
            state = load_state(self.state_path) if self.state_path else State()
        except StateError as exc:
            yield ReproductionFinished((), error=str(exc), error_kind="state")
            return

        facts = corpus_facts(data_path, len(corpus.text), corpus.sha256)
        self._report = Report(command=self.command, config=cfg.to_dict(), corpus=facts,
                              device=str(device), device_description=describe(device),
                              torch_version=torch.__version__)
        self._state = state
        rows = cfg.table_rows()
        plan = [(key, seed) for key in cfg.settings() for seed in cfg.seed_list]
        self._keys = [self._key(k, s, corpus.sha256, str(device)) for k, s in plan]
        done = sum(1 for key in self._keys if state.finished(key) is not None)
        self._write_error: str | None = None
        self._write()  # an unwritable output is found now, not after hours of training
        if self._write_error:
            yield ReproductionFinished((), error=self._write_error, error_kind="output")
            return
        yield Planned(
            settings=tuple((k, tuple(rows_of_setting(k))) for k in cfg.settings()),
            seeds=tuple(cfg.seed_list), total=len(plan), done=done, device=str(device),
            device_description=self._report.device_description,
            torch_version=torch.__version__, corpus=facts, warning=corpus_warning(facts))

        error: tuple[str, str] | None = None
        for index, key in enumerate(self._keys, 1):
            previous = state.finished(key)
            if previous is not None:
                yield SeedFinished(previous, skipped=True)
            elif not self._stop:
                outcome: list = []
                yield from self._run_seed(key, index, len(plan), data_path, corpus, outcome)
                if outcome and not isinstance(outcome[0], SeedResult) and outcome[0][0] in FATAL_KINDS:
                    error = outcome[0]
                    break
            if key.seed == cfg.seed_list[-1]:  # the setting's last seed: its rows' summaries
                yield from summarize([r for r in rows if setting_key(r) == key.setting],
                                     self._results())

        self._report.stopped = self._stop and len(self._results()) < len(plan)
        markdown = self._write()
        if error is None and self._write_error:
            error = ("disk", self._write_error)
        yield ReproductionFinished(
            tuple(self._report.summaries), stopped=self._report.stopped,
            error=error[1] if error else None, error_kind=error[0] if error else "",
            report=self._report, markdown=markdown)

    def _results(self) -> list[SeedResult]:
        """The finished seeds of this plan (the state may hold other configurations' too)."""
        return [r for key in self._keys if (r := self._state.finished(key)) is not None]

    # -- one seed ---------------------------------------------------------------------

    def _key(self, setting: str, seed: int, sha: str, device: str) -> SeedKey:
        cfg = self.config
        return SeedKey(setting=setting, seed=seed, steps=cfg.steps, eval_protocol=cfg.eval_protocol,
                       eval_batches=cfg.effective_eval_batches,
                       eval_every=cfg.effective_eval_every, corpus_sha256=sha, device=device)

    def _run_seed(self, key: SeedKey, index: int, total: int, data_path: str, corpus,
                  outcome: list) -> Iterator[ReproduceEvent]:
        """Train one seed; ``outcome`` receives its SeedResult or ``(kind, message)``."""
        cfg = self.config
        partial = self._state.partial_for(key)
        if partial and not Path(partial.get("checkpoint") or "").is_file():
            partial = None  # its checkpoint is gone: start this seed afresh
        root = Path(cfg.runs_root) if cfg.runs_root else _runs_dir()
        run_dir = Path(partial["run_dir"]) if partial else new_run_dir(
            f"reproduce-{key.setting}-seed{key.seed}", root)
        resume = partial["checkpoint"] if partial else ""
        earlier_wall = float(partial.get("wall_s", 0.0)) if partial else 0.0
        tc = cfg.train_config(key.setting, key.seed, str(run_dir), key.device, data_path, resume)
        trainer = Trainer(tc, corpus)
        with self._lock:
            self._trainer = trainer
            if self._stop:
                trainer.stop()
        yield SeedStarted(key.setting, tuple(rows_of_setting(key.setting)), key.seed, index, total,
                          str(run_dir), resume or None)
        t0 = time.perf_counter()
        last_eval: EvalMetrics | None = None
        try:
            for event in trainer.run():
                yield SeedProgress(key.setting, key.seed, event)
                if isinstance(event, EvalMetrics):
                    last_eval = event
                elif isinstance(event, Failed):
                    outcome.append((event.kind, event.message))
                    if resume and event.kind == "checkpoint":  # unusable: start afresh next time
                        self._state.partial = [p for p in self._state.partial if p is not partial]
                        self._write()
                    yield SeedFailed(key.setting, key.seed, event.message, event.kind, str(run_dir))
                elif isinstance(event, Finished):
                    wall = earlier_wall + time.perf_counter() - t0
                    if event.stopped:
                        if event.last_checkpoint:
                            self._state.set_partial(key, str(run_dir), event.last_checkpoint, wall)
                            self._write()
                    elif last_eval is None or last_eval.step != tc.steps:
                        message = "the run ended without a validation loss at its last step"
                        outcome.append(("error", message))
                        yield SeedFailed(key.setting, key.seed, message, "error", str(run_dir))
                    else:
                        result = SeedResult(
                            **asdict(key), device_description=describe(key.device),
                            torch_version=torch.__version__, val_loss=last_eval.loss,
                            val_content=last_eval.content, val_energy=last_eval.energy,
                            wall_s=wall, train_s=event.elapsed_s, run_dir=str(run_dir),
                            checkpoint=event.last_checkpoint,
                            finished_at=datetime.now().isoformat(timespec="seconds"))
                        self._state.add(result)
                        outcome.append(result)
                        self._write()
                        yield SeedFinished(result)
        finally:
            with self._lock:
                self._trainer = None
        if outcome and not isinstance(outcome[0], SeedResult):
            self._report.failures.append(f"{key.setting} seed {key.seed}: {outcome[0][1]}")

    def _write(self) -> str:
        """Save the state and the table as they stand; returns the Markdown.

        A failed write is remembered (the last event reports it) and the seeds go on:
        their results stay in memory and the next write may succeed.
        """
        self._report.summaries = summarize(self.config.table_rows(), self._results())
        target = None
        try:
            if self.state_path:
                target = self.state_path
                save_state(target, self._state, self._report)
            if self.markdown_path:
                target = self.markdown_path
                write_markdown(target, self._report)
        except OSError as exc:
            self._write_error = f"cannot write {target}: {exc.strerror or exc}"
        return render_markdown(self._report)


def _bundled_corpus() -> Path:
    from core.resources import bundled_corpus

    return bundled_corpus()


def _runs_dir() -> Path:
    from core.resources import runs_dir

    return runs_dir()


__all__ = [
    "Planned", "ReproduceConfig", "ReproduceEvent", "Reproduction", "ReproductionFinished",
    "RowSummary", "SeedFailed", "SeedFinished", "SeedProgress", "SeedResult", "SeedStarted",
]
