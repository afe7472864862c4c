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
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from core.events import Failed, Finished, format_event
from core.hparams import SamplingConfig, TrainConfig, add_arguments, from_namespace

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
    return parser


def _explicit_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """Names of the options actually given on the command line (not left at their default)."""
    probe = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            probe.add_argument(*action.option_strings, dest=action.dest, type=action.type,
                               default=argparse.SUPPRESS)
    ns, _ = probe.parse_known_args(argv)
    return set(vars(ns))


def _resume_config(config: TrainConfig, explicit: set[str]) -> TrainConfig:
    """On ``--resume``, start from the checkpoint's settings; flags given now override them.

    Without this, ``--resume ckpt --steps 4000`` would silently fall back to the
    default model size and learning rate instead of the run being continued.
    """
    from core.checkpoint import load_checkpoint

    payload = load_checkpoint(config.resume)
    saved = (payload.get("landauer_studio") or {}).get("train_config") or {}
    if not saved:
        return config
    merged = dict(saved)
    merged.update({k: v for k, v in config.to_dict().items() if k in explicit})
    merged["resume"] = config.resume
    return TrainConfig.from_dict(merged)


def train_main(argv: Sequence[str] | None = None) -> int:
    """Run training from command-line flags; returns the process exit status."""
    prog = "landauer-train"
    parser = train_parser()
    args = parser.parse_args(argv)
    config = from_namespace(TrainConfig, args)
    explicit = _explicit_flags(parser, argv)

    if config.resume:
        from core.checkpoint import CheckpointError

        try:
            config = _resume_config(config, explicit)
        except CheckpointError as exc:
            return _error(prog, str(exc))
    if "data_path" not in explicit and not config.resume and not Path(config.data_path).exists():
        config = _with_bundled_corpus(config)

    from core.trainer import Trainer

    trainer = Trainer(config)
    interrupted = []

    def on_sigint(signum, frame):
        # First Ctrl+C: stop cleanly (a checkpoint is saved). Second: abort at once.
        interrupted.append(True)
        print("\nStopping after this step (Ctrl+C again to abort without saving)...",
              file=sys.stderr, flush=True)
        trainer.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = _install_sigint(on_sigint)
    code = EXIT_FAILED
    try:
        for event in trainer.run():
            line = format_event(event, config.log_every)
            if isinstance(event, Failed):
                code = EXIT_USAGE if event.kind in USAGE_KINDS else EXIT_FAILED
                print(f"{prog}: error: {event.message}", file=sys.stderr, flush=True)
                if event.last_checkpoint:
                    print(f"Last good checkpoint: {event.last_checkpoint}", file=sys.stderr, flush=True)
            elif line is not None:
                print(line, flush=True)
            if isinstance(event, Finished):
                code = EXIT_INTERRUPTED if (event.stopped and interrupted) else EXIT_OK
    except KeyboardInterrupt:
        print(f"{prog}: aborted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        _restore_sigint(previous)
    return code


def _with_bundled_corpus(config: TrainConfig) -> TrainConfig:
    """The published default ``tiny_shakespeare.txt`` falls back to the corpus shipped with the app."""
    from core.resources import bundled_corpus

    try:
        path = bundled_corpus()
    except FileNotFoundError:
        return config
    print(f"{config.data_path} not found here; using the bundled corpus {path}", file=sys.stderr)
    return config.replace(data_path=str(path))


def _install_sigint(handler):
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. called from a test or a worker)
        return None


def _restore_sigint(previous) -> None:
    if previous is None:
        return
    try:
        signal.signal(signal.SIGINT, previous)
    except ValueError:
        pass


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
