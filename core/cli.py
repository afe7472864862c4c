"""Command lines: ``landauer-train`` / ``python -m core.train`` and
``landauer-generate`` / ``python -m core.generate``.

Flags come from the hyperparameter dataclasses (:mod:`core.hparams`), so every
published flag keeps its name and default, and the log lines are the published
ones (:func:`core.events.format_event`). Expected problems (missing file, bad
checkpoint, unknown prompt characters, invalid values) print one line on
stderr and exit with status 2 instead of a traceback.

Exit status of training: 0 finished, 1 failed while training (e.g. the loss
became NaN, disk full), 2 unusable input or settings, 130 stopped by Ctrl+C
(after saving a checkpoint).

Under ``torchrun`` every process runs this same command (see
:mod:`core.distributed`); rank 0 prints the log, the others print only errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from core.events import Failed, Finished, SampleText, format_event, format_sample
from core.hparams import SamplingConfig, TrainConfig, add_arguments, from_namespace, param_specs
from core.interrupt import sigint_handled_by
from core.resume import merge_resume, saved_train_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
USAGE_KINDS = ("config", "corpus", "checkpoint")  # failures caused by what the user passed in


def _error(prog: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return code


# -- training ---------------------------------------------------------------------


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landauer-train",
        description="Train the Landauer LLM on a UTF-8 text file. Ctrl+C stops after the "
                    "current step and saves a checkpoint; --resume continues from one.",
    )
    add_arguments(parser, TrainConfig)
    parser.add_argument("--print-samples", action="store_true",
                        help="Print each evaluation's sample (see --sample-length), indented, "
                             "under its [val] line.")
    return parser


_NOT_GIVEN = object()


def _explicit_flags(argv: Sequence[str] | None) -> set[str]:
    """Names of the options actually given on the command line (not left at their default).

    Parses ``argv`` a second time with every default replaced by a sentinel, so a
    flag given with its default value still counts as given.
    """
    probe = train_parser()
    probe.set_defaults(**dict.fromkeys((s.name for s in param_specs(TrainConfig)), _NOT_GIVEN))
    return {k for k, v in vars(probe.parse_args(argv)).items() if v is not _NOT_GIVEN}


def _resume_config(config: TrainConfig, explicit: set[str]) -> TrainConfig:
    """On ``--resume``, start from the checkpoint's settings; flags given now override them,
    and each override that changes a saved setting is said on stderr.

    Without this, ``--resume ckpt --steps 4000`` would silently fall back to the
    default model size and learning rate instead of the run being continued.
    """
    from core.checkpoint import load_checkpoint

    resumed = merge_resume(saved_train_config(load_checkpoint(config.resume)), config, explicit)
    if resumed.changed:
        print(resumed.describe(), file=sys.stderr, flush=True)
    return resumed.config


def train_main(argv: Sequence[str] | None = None) -> int:
    """Run training from command-line flags; returns the process exit status."""
    prog = "landauer-train"
    parser = train_parser()
    args = parser.parse_args(argv)  # before any torch import: --help answers at once
    # -- distributed (torchrun): rank 0 prints the log; the others only their errors
    from core.distributed import launched_rank

    rank = launched_rank()
    if rank:
        prog = f"landauer-train [rank {rank}]"
    config = from_namespace(TrainConfig, args)
    explicit = _explicit_flags(argv)

    if config.resume:
        from core.checkpoint import CheckpointError

        try:
            config = _resume_config(config, explicit)
        except CheckpointError as exc:
            return _error(prog, str(exc))
    if "data_path" not in explicit and not config.resume and not Path(config.data_path).exists():
        config = _with_bundled_corpus(config, quiet=rank > 0)

    from core.trainer import Trainer

    trainer = Trainer(config)
    interrupted = []
    distributed = trainer.dist.active

    def on_sigint(signum, frame):
        # First Ctrl+C: stop cleanly (a checkpoint is saved). Second: abort at once.
        # Under torchrun, which passes the terminal's Ctrl+C on to every process a second
        # time, every Ctrl+C means "stop after this step" (torchrun kills what is left).
        interrupted.append(True)
        if distributed:
            if rank == 0 and len(interrupted) == 1:
                print("\nStopping all processes after this step...", file=sys.stderr, flush=True)
            trainer.stop()
            return
        if len(interrupted) > 1:
            raise KeyboardInterrupt
        print("\nStopping after this step (Ctrl+C again to abort without saving)...",
              file=sys.stderr, flush=True)
        trainer.stop()

    def aborted() -> int:
        kept = (f"the last good checkpoint is {trainer.last_checkpoint}" if trainer.last_checkpoint
                else "no checkpoint was saved")
        print(f"{prog}: aborted by a second Ctrl+C without saving; {kept}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED

    code = EXIT_FAILED
    try:
        with sigint_handled_by(on_sigint):
            for event in trainer.run():
                line = format_event(event, config.log_every)
                if isinstance(event, Failed):
                    if len(interrupted) > 1:  # the abort surfaced as a failure (e.g. of the save it cut short)
                        return aborted()
                    code = EXIT_USAGE if event.kind in USAGE_KINDS else EXIT_FAILED
                    print(f"{prog}: error: {event.message}", file=sys.stderr, flush=True)
                    if event.last_checkpoint:
                        print(f"Last good checkpoint: {event.last_checkpoint}", file=sys.stderr, flush=True)
                elif line is not None and rank == 0:
                    print(line, flush=True)
                elif isinstance(event, SampleText) and args.print_samples and rank == 0:
                    print(format_sample(event), flush=True)
                if isinstance(event, Finished):
                    # distributed: a Ctrl+C on any one rank stopped all of them
                    code = EXIT_INTERRUPTED if (event.stopped and (interrupted or distributed)) else EXIT_OK
    except KeyboardInterrupt:
        return aborted()
    return code


def _with_bundled_corpus(config: TrainConfig, quiet: bool = False) -> TrainConfig:
    """The published default ``tiny_shakespeare.txt`` falls back to the corpus shipped with the app."""
    from core.resources import bundled_corpus

    try:
        path = bundled_corpus()
    except FileNotFoundError:
        return config
    if not quiet:
        print(f"{config.data_path} not found here; using the bundled corpus {path}", file=sys.stderr)
    return config.replace(data_path=str(path))


# -- generation -------------------------------------------------------------------


def generate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landauer-generate",
        description="Generate text from a Landauer LLM checkpoint. The whole prompt "
                    "conditions the model (the original used only its last character).",
    )
    parser.add_argument("--checkpoint", required=True, help="Checkpoint file (.pth) to sample from.")
    parser.add_argument("--prompt", default=" ", help="Text to continue. Default: ' '.")
    parser.add_argument("--device", default="cpu",
                        help="Device: cpu, auto, cuda, cuda:N or mps. Default: 'cpu'.")
    parser.add_argument("--no-stream", action="store_true",
                        help="Print the text once it is complete instead of character by character.")
    add_arguments(parser, SamplingConfig)
    return parser


def generate_main(argv: Sequence[str] | None = None) -> int:
    """Sample text from a checkpoint; returns the process exit status."""
    prog = "landauer-generate"
    args = generate_parser().parse_args(argv)
    sampling = from_namespace(SamplingConfig, args)
    problems = sampling.errors()
    if problems:
        return _error(prog, "; ".join(problems))

    from core.checkpoint import CheckpointError, load_model
    from core.device import resolve_device
    from core.sampling import PromptError, TextGenerator

    if not Path(args.checkpoint).is_file():
        return _error(prog, f"checkpoint {args.checkpoint} not found")
    try:
        device = resolve_device(args.device)
        model, itos, _info = load_model(args.checkpoint, device)
        stream = TextGenerator(model, itos).stream(args.prompt, sampling)
    except (CheckpointError, PromptError, ValueError, RuntimeError, OSError) as exc:
        return _error(prog, str(exc))

    out = sys.stdout
    try:
        if args.no_stream:
            out.write(args.prompt + "".join(stream) + "\n")
        else:
            out.write(args.prompt)
            out.flush()
            for ch in stream:
                out.write(ch)
                out.flush()
            out.write("\n")
        out.flush()
    except KeyboardInterrupt:
        out.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. piped into `head`
        return EXIT_OK
    return EXIT_OK
