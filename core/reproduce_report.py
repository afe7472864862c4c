"""The results of a reproduction: the state file (JSON) and the Markdown table.

This module owns both formats. The JSON file is the record of every finished
seed (and the checkpoint of a seed that was stopped part-way), so that running
the same reproduction again skips what is done; the Markdown block is written
in the shape of BENCHMARKS.md ("Reference Results"), with the device, the
PyTorch version and the command-line overrides its "Adding Your Own Entries"
section asks for.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from core.files import atomic_write_text
from core.hparams import TrainConfig
from core.published import (
    CANONICAL_CORPUS_CHARS,
    CANONICAL_CORPUS_NAME,
    CANONICAL_CORPUS_SHA256,
    PUBLISHED_ROWS,
    rows_of_setting,
    setting_key,
)

STATE_FORMAT = "landauer-reproduce"
STATE_VERSION = 1
MATCH_FIELDS = ("setting", "seed", "steps", "eval_protocol", "eval_batches", "eval_every",
                "corpus_sha256", "device")


class StateError(ValueError):
    """The state file cannot be used; the message is written for a person to read."""


@dataclass(frozen=True)
class SeedKey:
    """What makes two seed runs the same measurement (a finished one is then skipped)."""

    setting: str
    seed: int
    steps: int
    eval_protocol: str
    eval_batches: int  # 1 under the published protocol, which ignores it
    eval_every: int
    corpus_sha256: str
    device: str

    def matches(self, record: dict[str, Any]) -> bool:
        return all(record.get(name) == getattr(self, name) for name in MATCH_FIELDS)


@dataclass(frozen=True)
class SeedResult:
    """One finished seed: the validation losses after the last step, and where it ran."""

    setting: str
    seed: int
    steps: int
    eval_protocol: str
    eval_batches: int
    eval_every: int
    corpus_sha256: str
    device: str
    device_description: str
    torch_version: str
    val_loss: float
    val_content: float
    val_energy: float
    wall_s: float  # the whole seed: setup, training, evaluations, checkpoint
    train_s: float  # the trainer's own count of training and evaluation time
    run_dir: str
    checkpoint: str | None = None
    finished_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SeedResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class RowSummary:
    """Our seeds of one published row's setting against the published value."""

    row: int
    setting: str
    published: float
    published_text: str
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    wall_s: float
    devices: tuple[str, ...]
    torch_versions: tuple[str, ...]
    shared_with: tuple[int, ...] = ()  # other requested rows measured by the same seeds

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def sd(self) -> float | None:
        """Sample standard deviation (n - 1); None below two seeds."""
        return statistics.stdev(self.values) if len(self.values) >= 2 else None

    @property
    def diff_sd(self) -> float | None:
        """(our mean - published) in our standard deviations; None when it is undefined."""
        if self.sd is None or self.mean is None or self.sd == 0:
            return None
        return (self.mean - self.published) / self.sd

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n": self.n, "mean": self.mean, "sd": self.sd,
                "diff_sd": self.diff_sd}


@dataclass
class State:
    """Everything the state file holds; ``results`` keeps seeds of other configurations too."""

    results: list[SeedResult] = field(default_factory=list)
    partial: list[dict[str, Any]] = field(default_factory=list)  # stopped seeds: key + run_dir, checkpoint, wall_s

    def finished(self, key: SeedKey) -> SeedResult | None:
        for r in self.results:
            if key.matches(r.to_dict()):
                return r
        return None

    def add(self, result: SeedResult) -> None:
        key = {name: getattr(result, name) for name in MATCH_FIELDS}
        self.results = [r for r in self.results
                        if any(getattr(r, n) != v for n, v in key.items())] + [result]
        self.partial = [p for p in self.partial if any(p.get(n) != v for n, v in key.items())]

    def partial_for(self, key: SeedKey) -> dict[str, Any] | None:
        return next((p for p in self.partial if key.matches(p)), None)

    def set_partial(self, key: SeedKey, run_dir: str, checkpoint: str, wall_s: float) -> None:
        self.partial = [p for p in self.partial if not key.matches(p)]
        self.partial.append({**asdict(key), "run_dir": run_dir, "checkpoint": checkpoint,
                             "wall_s": wall_s})


def load_state(path: str | Path) -> State:
    """The state in ``path``; an empty state when the file does not exist yet."""
    p = Path(path)
    if not p.exists():
        return State()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read {p}: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise StateError(f"{p} is not a reproduction results file (invalid JSON: {exc.msg} "
                         f"at line {exc.lineno}); choose another output name") from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise StateError(f"{p} is not a reproduction results file; choose another output name "
                         "so it is not overwritten")
    if data.get("format_version", 0) > STATE_VERSION:
        raise StateError(f"{p} was written by a newer version (format {data['format_version']})")
    try:
        results = [SeedResult.from_dict(r) for r in data.get("results", [])]
        partial = [dict(p) for p in data.get("partial", [])]
    except (TypeError, ValueError) as exc:
        raise StateError(f"{p} has a damaged results list: {exc}") from None
    return State(results=results, partial=partial)


def save_state(path: str | Path, state: State, report: Report) -> None:
    """Write the state and the current table atomically (the old file stays on failure)."""
    data = {
        "format": STATE_FORMAT,
        "format_version": STATE_VERSION,
        "updated": datetime.now().isoformat(timespec="seconds"),
        "command": report.command,
        "config": report.config,
        "corpus": report.corpus,
        "device": report.device,
        "device_description": report.device_description,
        "torch_version": report.torch_version,
        "table": [s.to_dict() for s in report.summaries],
        "results": [r.to_dict() for r in state.results],
        "partial": state.partial,
    }
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


# -- corpus facts -------------------------------------------------------------------


def corpus_facts(path: str, characters: int, sha256: str) -> dict[str, Any]:
    """Name, size and hash of the corpus used, and whether it is the canonical one."""
    return {"name": Path(path).name, "path": str(path), "characters": characters,
            "sha256": sha256, "canonical": sha256 == CANONICAL_CORPUS_SHA256}


def corpus_warning(corpus: dict[str, Any]) -> str | None:
    """A plain sentence when the corpus is not the one the published numbers came from."""
    if corpus.get("canonical"):
        return None
    return (f"the corpus {corpus['name']} ({corpus['characters']:,} characters, SHA-256 "
            f"{corpus['sha256'][:12]}…) is not the canonical {CANONICAL_CORPUS_NAME} "
            f"({CANONICAL_CORPUS_CHARS:,} characters, SHA-256 {CANONICAL_CORPUS_SHA256[:12]}…) "
            "the published numbers were measured on, so the comparison is only indicative")


# -- the table ----------------------------------------------------------------------


@dataclass
class Report:
    """What the Markdown block and the JSON file describe."""

    command: str
    config: dict[str, Any]  # the reproduction's settings (ReproduceConfig.to_dict())
    corpus: dict[str, Any]
    device: str
    device_description: str
    torch_version: str
    summaries: list[RowSummary] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stopped: bool = False


def summarize(rows: list[int], results: list[SeedResult]) -> list[RowSummary]:
    """One summary per requested row, from the results that belong to this reproduction."""
    out = []
    for row in rows:
        key = setting_key(row)
        mine = sorted((r for r in results if r.setting == key), key=lambda r: r.seed)
        pub = PUBLISHED_ROWS[row]
        out.append(RowSummary(
            row=row, setting=key, published=pub.val_loss, published_text=pub.val_text,
            values=tuple(r.val_loss for r in mine), seeds=tuple(r.seed for r in mine),
            wall_s=sum(r.wall_s for r in mine),
            devices=tuple(sorted({r.device_description for r in mine})),
            torch_versions=tuple(sorted({r.torch_version for r in mine})),
            shared_with=tuple(n for n in rows_of_setting(key) if n in rows and n != row),
        ))
    return out


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


def override_flags(row: int) -> str:
    """The row's command-line changes from the published defaults, e.g. ``--energy-weight 0.05``."""
    parts = []
    for name, value in PUBLISHED_ROWS[row].settings:
        text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"--{name.replace('_', '-')} {text}")
    return " ".join(parts)


def ours_text(s: RowSummary) -> str:
    """``1.7445 ± 0.0167 (n=3)``: our mean and sample sd (the table's and the studio's cell)."""
    if not s.n:
        return "not run"
    if s.sd is None:
        return f"{s.mean:.4f} (n=1)"
    return f"{s.mean:.4f} ± {s.sd:.4f} (n={s.n})"


def diff_text(s: RowSummary) -> str:
    """``+2.1``: (ours − published) in our sds, or why it is undefined."""
    if not s.n:
        return "–"
    if s.diff_sd is None:
        return "n/a (n < 2)" if s.n < 2 else "n/a (sd 0)"
    return f"{s.diff_sd:+.1f}"


def wall_text(s: RowSummary) -> str:
    """Total wall time of the row's seeds, and per seed."""
    if not s.n:
        return "–"
    return f"{format_duration(s.wall_s)} ({format_duration(s.wall_s / s.n)}/seed)"


def setting_text(s: RowSummary, markdown: bool = True) -> str:
    """The row's overrides (as code in Markdown), noting rows measured by the same seeds."""
    flags = override_flags(s.row)
    text = (f"`{flags}`" if markdown else flags) if flags else "published defaults"
    if s.shared_with:
        text += f" (rows {_row_range(s)}: one setting, the same seeds)"
    return text


def _row_range(s: RowSummary) -> str:
    rows = sorted((s.row, *s.shared_with))
    if rows == list(range(rows[0], rows[-1] + 1)):
        return f"{rows[0]}-{rows[-1]}"
    return ", ".join(map(str, rows))


def protocol_text(config: dict[str, Any]) -> str:
    if config.get("eval_protocol") == "published":
        return ("one new random validation batch per evaluation, as the original train.py "
                "(`--eval-protocol published`)")
    return (f"the mean of {config.get('eval_batches')} fixed validation batches per "
            "evaluation (`--eval-protocol fixed`)")


def train_command(config: dict[str, Any], corpus: dict[str, Any], device: str) -> str:
    """The ``landauer-train`` command every seed of a row runs (plus the row's overrides)."""
    flags = [f"--data-path {corpus['name']}", f"--steps {config['steps']}",
             f"--eval-every {config['eval_every']}", "--save-every 0",
             f"--eval-protocol {config['eval_protocol']}"]
    if config["eval_protocol"] == "fixed":
        flags.append(f"--eval-batches {config['eval_batches']}")
    flags += [f"--device {device}", "--seed S"]
    return "landauer-train " + " ".join(flags)


def render_markdown(report: Report) -> str:
    """A block to paste under "Reference Results" of BENCHMARKS.md."""
    cfg = report.config
    corpus = report.corpus
    lines = [
        f"**Reproduction with Landauer Studio** ({datetime.now():%Y-%m-%d}): "
        f"`{report.command}`",
        "",
        f"- Device: {report.device_description} (`{report.device}`); PyTorch "
        f"{report.torch_version}",
        f"- Corpus: {corpus['name']}, {corpus['characters']:,} characters, SHA-256 "
        f"`{corpus['sha256']}`" + (" (the canonical file)" if corpus.get("canonical") else ""),
        f"- Validation loss (total) after {cfg['steps']} steps: {protocol_text(cfg)}",
        f"- Seeds {', '.join(map(str, cfg['seed_list']))} per setting; each seed: "
        f"`{train_command(cfg, corpus, report.device)}` plus the row's overrides",
    ]
    warning = corpus_warning(corpus)
    if warning:
        lines += ["", f"> **Not comparable as is:** {warning}."]
    lines += [
        "",
        "| Run | Steps | Batch x Seq | Hidden / Layers | Overrides | Published Val Loss | "
        "Ours mean ± sd (n) | (ours − published) / sd | Wall time | Device | PyTorch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in report.summaries:
        tc = TrainConfig().replace(**PUBLISHED_ROWS[s.row].overrides)
        lines.append(
            f"| {s.row} | {cfg['steps']} | {tc.batch_size} x {tc.seq_len} | "
            f"{tc.hidden_dim} hidden, {tc.num_layers} layers | {setting_text(s)} | "
            f"{s.published_text} | {ours_text(s)} | {diff_text(s)} | {wall_text(s)} | "
            f"{', '.join(s.devices) or '–'} | {', '.join(s.torch_versions) or '–'} |")
    lines.append("")
    seen = set()
    per_seed = []
    for s in report.summaries:
        if s.setting in seen or not s.n:
            continue
        seen.add(s.setting)
        label = f"rows {_row_range(s)}" if s.shared_with else f"row {s.row}"
        values = ", ".join(f"seed {seed}: {v:.4f}" for seed, v in zip(s.seeds, s.values, strict=True))
        per_seed.append(f"{label}: {values}")
    if per_seed:
        lines.append("Per seed: " + "; ".join(per_seed) + ".")
        lines.append("")
    lines.append(
        "The published values are single runs, each measured on one random validation batch; "
        "rows 1-3 are one setting, so their spread is that measurement's noise. The last "
        "column counts how many of our seed-to-seed standard deviations our mean lies from "
        "each published value; it leaves out the published values' own single-batch noise "
        "(`--eval-protocol published` measures that spread).")
    if report.failures:
        lines += ["", "Failed seeds (not in the table): " + "; ".join(report.failures) + "."]
    if report.stopped:
        lines += ["", "Stopped before every seed had finished; running the same command again "
                  "continues where this one stopped."]
    return "\n".join(lines) + "\n"


def write_markdown(path: str | Path, report: Report) -> None:
    atomic_write_text(path, render_markdown(report))

