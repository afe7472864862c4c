"""``landauer-reproduce`` / ``python -m core.reproduce_cli``: reproduce the published table.

Prints the progress of each seed, then the Markdown table (also written with
``--out``). Ctrl+C stops the current seed after its step (it saves a
checkpoint); finished seeds are kept in the state file, and the same command
run again skips them.

Exit status: 0 every seed finished, 1 a seed failed (e.g. its loss became
NaN), 2 unusable input or settings, 130 stopped by Ctrl+C.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from core.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    _error,
)
from core.events import EvalMetrics, StepMetrics, format_event
from core.hparams import TrainConfig, param_specs
from core.interrupt import stop_on_first_ctrl_c
from core.published import parse_rows
from core.reproduce import (
    PROTOCOLS,
    Planned,
    ReproduceConfig,
    Reproduction,
    ReproductionFinished,
    RowSummary,
    SeedFailed,
    SeedFinished,
    SeedProgress,
    SeedStarted,
)
from core.reproduce_report import format_duration

PROG = "landauer-reproduce"


def _protocol_help() -> str:
    spec = next(s for s in param_specs(TrainConfig) if s.name == "eval_protocol")
    return spec.param.help + " Default: 'fixed'."


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train each published benchmark row with several seeds and compare the "
                    "validation losses with the published table. Each seed is an ordinary run "
                    "in the run history. Ctrl+C stops after the current step; running the same "
                    "command again skips finished seeds.",
        epilog="Example: landauer-reproduce --rows 1,4 --seeds 3 --steps 2000 "
               "--data-path tiny_shakespeare.txt --out results.md",
    )
    p.add_argument("--rows", default="all",
                   help="Published rows to reproduce: 1,4 or 1-4 or all (rows 1-3 are one "
                        "setting, trained once). Default: all.")
    p.add_argument("--seeds", type=int, default=3, help="Seeds per row. Default: 3.")
    p.add_argument("--first-seed", type=int, default=0,
                   help="Seeds are FIRST, FIRST+1, ... Default: 0.")
    p.add_argument("--steps", type=int, default=2000, help="Training steps per seed. Default: 2000.")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps. "
                        "Default: auto.")
    p.add_argument("--eval-protocol", choices=PROTOCOLS, default="fixed", help=_protocol_help())
    p.add_argument("--eval-batches", type=int, default=20,
                   help="Fixed validation batches averaged per evaluation. Default: 20.")
    p.add_argument("--eval-every", type=int, default=500,
                   help="Evaluate every N steps; when the steps are not a multiple of N, only the "
                        "last step is evaluated (the one compared). Default: 500.")
    p.add_argument("--data-path", default="",
                   help="Corpus. Default: the bundled one. The published numbers come from the "
                        "canonical tiny_shakespeare.txt (1,115,394 characters); with another "
                        "file the comparison is only indicative.")
    p.add_argument("--out", default="", help="Write the Markdown table here; its state goes "
                   "to OUT.json unless --json is given.")
    p.add_argument("--json", default="", help="Write the results (and resume state) here as JSON.")
    p.add_argument("--runs-dir", default="",
                   help="Folder for the seeds' run folders. Default: the run history.")
    p.add_argument("--log-every", type=int, default=500,
                   help="Print a training line every N steps of each seed (0: none). Default: 500.")
    return p


def _rows_label(rows: Sequence[int]) -> str:
    return f"row {rows[0]}" if len(rows) == 1 else f"rows {rows[0]}-{rows[-1]}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        rows = tuple(parse_rows(args.rows))
    except ValueError as exc:
        return _error(PROG, str(exc))
    config = ReproduceConfig(
        rows=rows, seeds=args.seeds, first_seed=args.first_seed, steps=args.steps,
        device=args.device, eval_protocol=args.eval_protocol, eval_batches=args.eval_batches,
        eval_every=args.eval_every, data_path=args.data_path, runs_root=args.runs_dir,
        log_every=args.log_every)
    state_path = args.json or (args.out + ".json" if args.out else None)
    words = sys.argv[1:] if argv is None else list(argv)
    command = " ".join([PROG, *(shlex.quote(w) for w in words)])
    engine = Reproduction(config, state_path=state_path, markdown_path=args.out or None,
                          command=command)
    code = EXIT_FAILED
    failed = False
    stopping = "\nStopping after this step; finished seeds are kept (Ctrl+C again to abort)..."
    try:
        with stop_on_first_ctrl_c(engine.stop, stopping) as interrupted:
            for event in engine.run():
                failed |= isinstance(event, SeedFailed)
                if isinstance(event, ReproductionFinished):
                    code = _finish(event, args, state_path, failed, bool(interrupted))
                else:
                    _print(event, config.log_every)
    except KeyboardInterrupt:
        print(f"{PROG}: aborted; finished seeds are in {state_path or 'no state file'}",
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    return code


def _print(event, log_every: int) -> None:
    out = sys.stdout
    if isinstance(event, Planned):
        settings = ", ".join(_rows_label(rows) for _, rows in event.settings)
        print(f"Reproducing {settings}: {event.total} seed runs ({event.done} finished earlier) "
              f"on {event.device_description}, PyTorch {event.torch_version}", file=out)
        c = event.corpus
        print(f"Corpus {c['name']}: {c['characters']:,} characters, SHA-256 {c['sha256'][:12]}"
              + (" (canonical)" if c["canonical"] else ""), file=out)
        if event.warning:
            print(f"{PROG}: warning: {event.warning}", file=sys.stderr)
    elif isinstance(event, SeedStarted):
        again = f", continuing from {event.resumed_from}" if event.resumed_from else ""
        print(f"[{event.index}/{event.total}] {_rows_label(event.rows)}, seed {event.seed}: "
              f"{event.run_dir}{again}", file=out)
    elif isinstance(event, SeedProgress):
        if isinstance(event.event, (StepMetrics, EvalMetrics)):
            line = format_event(event.event, log_every)
            if line and log_every > 0:
                print(f"  {line}", file=out)
    elif isinstance(event, SeedFinished):
        r = event.result
        when = "finished earlier" if event.skipped else format_duration(r.wall_s)
        print(f"  {r.setting} seed {r.seed}: validation loss {r.val_loss:.4f} ({when})", file=out)
    elif isinstance(event, SeedFailed):
        print(f"{PROG}: {event.setting} seed {event.seed} failed: {event.message}", file=sys.stderr)
    elif isinstance(event, RowSummary):
        ours = "no seed finished" if not event.n else f"{event.mean:.4f}" + (
            f" ± {event.sd:.4f}" if event.sd is not None else "") + f" (n={event.n})"
        diff = "" if event.diff_sd is None else f", {event.diff_sd:+.1f} sd from published"
        print(f"Row {event.row}: published {event.published_text}, ours {ours}{diff}", file=out)
    out.flush()


def _finish(event: ReproductionFinished, args, state_path: str | None, failed: bool,
            interrupted: bool) -> int:
    if event.error:
        usage = event.error_kind in ("config", "corpus", "state", "output")
        return _error(PROG, event.error, EXIT_USAGE if usage else EXIT_FAILED)
    print("", flush=True)
    print(event.markdown, end="", flush=True)
    written = [p for p in (args.out, state_path) if p]
    if written:
        print(f"Wrote {' and '.join(written)}", file=sys.stderr, flush=True)
    if event.stopped:
        return EXIT_INTERRUPTED if interrupted else EXIT_OK
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
