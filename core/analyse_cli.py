"""``landauer-analyse`` / ``python -m core.analyse``: what a checkpoint makes of a text, as a report.

Writes an HTML page (the text coloured by surprise, with per-character
tooltips) or a CSV table, chosen by the extension of ``--out``, and prints
the totals. Expected problems (missing or damaged checkpoint, characters the
model does not know, an unwritable or unknown output file) print one line on
stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_USAGE = 2
PROG = "landauer-analyse"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Analyse a text with a Landauer LLM checkpoint: per-character surprise, "
                    "probability, rank, the model's top-5 guesses and state motion, written "
                    "as a coloured HTML page or a CSV table.",
    )
    p.add_argument("--checkpoint", required=True, help="Checkpoint file (.pth) to analyse with.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="The text to analyse (at least 2 characters).")
    source.add_argument("--text-file", help="A UTF-8 text file to analyse.")
    p.add_argument("--out", required=True,
                   help="Report file: .html (coloured text with tooltips) or .csv (a row per character).")
    p.add_argument("--device", default="cpu",
                   help="Device: cpu, auto, cuda, cuda:N or mps. Default: 'cpu'.")
    p.add_argument("--temperature", type=float, default=None,
                   help="Energy temperature for the energy total; default: the one the run trained with.")
    return p


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Analyse a text and write the report; returns the process exit status."""
    args = parser().parse_args(argv)

    from core.analysis import analyse_text, checkpoint_temperature
    from core.checkpoint import CheckpointError, load_model
    from core.data import CorpusError, read_corpus_text
    from core.device import resolve_device
    from core.report import summary_rows, write_report
    from core.sampling import PromptError

    try:
        kind = _check_out(args.out)
        if not Path(args.checkpoint).is_file():
            return _error(f"checkpoint {args.checkpoint} not found")
        text = args.text if args.text is not None else read_corpus_text(args.text_file)
        device = resolve_device(args.device)
        model, itos, info = load_model(args.checkpoint, device)
        temperature = args.temperature if args.temperature is not None else checkpoint_temperature(info)
        analysis = analyse_text(model, itos, text, temperature=temperature)
    except (CheckpointError, CorpusError, PromptError, ValueError, RuntimeError, OSError) as exc:
        return _error(_one_line(exc))
    title = f"{Path(args.checkpoint).name} on {_source_name(args)}"
    try:
        written = write_report(analysis, args.out, title)
    except OSError as exc:
        return _error(f"cannot write {args.out}: {exc.strerror or exc}")
    lines = [f"wrote {kind.upper()} report {written}"]
    lines += [f"  {label}: {value}" for label, value in summary_rows(analysis)]
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:  # e.g. piped into `head`: the report is written, that is what counts
        sys.stdout = None
    return EXIT_OK


def _check_out(out: str) -> str:
    """The report kind, and a refusal before any work when the file could not be written."""
    from core.report import report_format

    kind = report_format(out)
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"{out} is a folder; give a file name ending in .html or .csv")
    return kind


def _source_name(args: argparse.Namespace) -> str:
    if args.text_file is not None:
        return Path(args.text_file).name
    return "the given text"


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
