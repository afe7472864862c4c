"""Hyperparameters: the single source of truth for CLI flags and the studio's forms.

Each field carries a :class:`Param` in its metadata (help text, valid range,
step, group). ``core.cli`` builds argparse flags from it and the studio builds
its form from it, so a new hyperparameter is added in exactly one place.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Param:
    """How to present and validate one hyperparameter."""

    help: str
    label: str = ""  # shown in the studio's form; derived from the field name if empty
    low: float | None = None
    high: float | None = None
    step: float | None = None  # spin-box step in the studio
    group: str = "General"
    kind: str = ""  # "int", "float", "str", "path", "choice" (inferred from the default if empty)
    choices: tuple[str, ...] = ()
    decimals: int = 4  # for floats in the studio
    cli_only: bool = False  # not shown in the studio's form (e.g. resume, save_dir)


def hp(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with a :class:`Param` attached."""
    return field(default=default, metadata={"param": Param(help=help, **kw)})


@dataclass(frozen=True)
class ParamSpec:
    """A resolved field: name, type, default and its :class:`Param`."""

    name: str
    kind: str
    default: Any
    param: Param

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return self.param.label or self.name.replace("_", " ").capitalize()


def param_specs(cls_or_obj: Any) -> list[ParamSpec]:
    """All hyperparameters of a config dataclass, in declaration order."""
    specs = []
    for f in fields(cls_or_obj):
        p: Param | None = f.metadata.get("param")
        if p is None:
            continue
        kind = p.kind or {bool: "bool", int: "int", float: "float"}.get(type(f.default), "str")
        specs.append(ParamSpec(f.name, kind, f.default, p))
    return specs


def check_value(spec: ParamSpec, value: Any) -> str | None:
    """A message saying why ``value`` is invalid for ``spec``, or None when it is fine."""
    p = spec.param
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{spec.name} must be a whole number"
    elif spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{spec.name} must be a number"
        if value != value or value in (float("inf"), float("-inf")):
            return f"{spec.name} must be a finite number"
    elif spec.kind == "choice":
        if value not in p.choices:
            return f"{spec.name} must be one of {', '.join(p.choices)}"
        return None
    else:
        return None if isinstance(value, str) else f"{spec.name} must be text"
    if p.low is not None and value < p.low:
        return f"{spec.name} must be at least {p.low:g} (got {value:g})"
    if p.high is not None and value > p.high:
        return f"{spec.name} must be at most {p.high:g} (got {value:g})"
    return None


class _ConfigMixin:
    """Validation and (de)serialisation shared by the config dataclasses."""

    def errors(self) -> list[str]:
        """Every problem with these values, as sentences for a person; empty when valid."""
        return [msg for s in param_specs(self) if (msg := check_value(s, getattr(self, s.name)))]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Build from a dict, ignoring unknown keys and turning path-like values into str."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        kept = {}
        for k, v in values.items():
            if k in names:
                kept[k] = str(v) if hasattr(v, "__fspath__") else v
        return cls(**kept)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class ModelConfig(_ConfigMixin):
    """The model's settings, declared once: the keys stored under ``config`` in every checkpoint.

    ``vocab_size`` comes from the corpus; the other four are hyperparameters a
    person chooses. :class:`TrainConfig` shares their declarations
    (:func:`same_as`), ``LandauerLLM`` is built from this class, and the
    checkpoint reader validates exactly :meth:`keys`.
    """

    vocab_size: int
    embed_dim: int = hp(64, "Size of each character's embedding.", label="Embedding size", low=1, high=8192, group="Model")
    hidden_dim: int = hp(256, "Hidden units per recurrent layer.", label="Hidden size", low=1, high=8192, group="Model")
    num_layers: int = hp(2, "Recurrent layers; deeper layers rotate more slowly.", label="Layers", low=1, high=32, group="Model")
    phase_scaling: float = hp(2.0, "Layer l rotates by golden angle / phase_scaling**l.", label="Phase scaling", low=0.01, high=100.0, step=0.1, decimals=3, group="Model")

    def __post_init__(self) -> None:
        for f in fields(self):  # stored as plain int/float, as the published code saved them
            object.__setattr__(self, f.name, (float if f.type in ("float", float) else int)(getattr(self, f.name)))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Every key of a checkpoint's ``config``, in the published order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The keys a person chooses (all but ``vocab_size``, which the corpus decides)."""
        return tuple(s.name for s in param_specs(cls))


def same_as(cls: type, name: str) -> Any:
    """A field declared exactly like ``cls.name``, so two dataclasses share one declaration."""
    f = next(f for f in fields(cls) if f.name == name)
    return field(default=f.default, metadata=f.metadata)


@dataclass(frozen=True)
class TrainConfig(_ConfigMixin):
    """Every flag of the published ``train.py`` with its default, plus our extras."""

    data_path: str = hp("tiny_shakespeare.txt", "UTF-8 text file to train on.", kind="path", group="Data")
    batch_size: int = hp(32, "Sequences per optimisation step.", label="Batch size", low=1, high=4096, group="Data")
    seq_len: int = hp(64, "Characters per training sequence (backpropagation length).", label="Sequence length", low=1, high=16384, group="Data")
    embed_dim: int = same_as(ModelConfig, "embed_dim")
    hidden_dim: int = same_as(ModelConfig, "hidden_dim")
    num_layers: int = same_as(ModelConfig, "num_layers")
    phase_scaling: float = same_as(ModelConfig, "phase_scaling")
    temperature: float = hp(0.05, "Temperature of the thermodynamic-inertia energy term.", label="Energy temperature", low=0.0, high=100.0, step=0.01, group="Loss")
    energy_weight: float = hp(0.1, "Weight of the energy term in the total loss.", label="Energy weight", low=0.0, high=100.0, step=0.01, group="Loss")
    lr: float = hp(3e-3, "Adam learning rate.", label="Learning rate", low=1e-7, high=1.0, step=1e-4, decimals=6, group="Optimisation")
    grad_clip: float = hp(1.0, "Clip the gradient norm to this value (0 disables).", label="Gradient clip", low=0.0, high=1e4, step=0.1, group="Optimisation")
    steps: int = hp(2000, "Total optimisation steps.", label="Steps", low=1, high=10_000_000, group="Schedule")
    save_every: int = hp(500, "Save a checkpoint every N steps (0: only at the end).", label="Save every", low=0, high=10_000_000, group="Schedule")
    eval_every: int = hp(500, "Evaluate on validation data every N steps (0 disables).", label="Evaluate every", low=0, high=10_000_000, group="Schedule")
    eval_batches: int = hp(20, "Validation batches averaged per evaluation under the fixed protocol (the same batches every time).", label="Validation batches", low=1, high=10_000, group="Schedule")
    eval_protocol: str = hp("fixed", "How validation is estimated. fixed: the mean over the same eval_batches batches at every evaluation (steady, comparable across runs). published: one new random batch at every evaluation, as the original train.py did (noisy; eval_batches is ignored), to reproduce the published numbers' spread.", label="Validation protocol", kind="choice", choices=("fixed", "published"), group="Schedule")
    log_every: int = hp(100, "Print a training log line every N steps (0 disables).", low=0, high=10_000_000, group="Schedule", cli_only=True)
    seed: int = hp(1337, "Random seed for initialisation and batch sampling.", label="Seed", low=0, high=2**31 - 1, group="Schedule")
    sample_prompt: str = hp("\\n", "Text the model continues at every evaluation, so the run shows what it learned; \\n is a new line, \\t a tab, \\\\ a backslash.", label="Sample prompt", group="Samples")
    sample_length: int = hp(200, "Characters sampled after the prompt at every evaluation (0 disables samples).", label="Sample length", low=0, high=100_000, group="Samples")
    sample_seed: int = hp(0, "Seed of the evaluation samples: the same draw at every evaluation, so samples compare across steps.", label="Sample seed", low=0, high=2**31 - 1, group="Samples")
    save_dir: str = hp("saved_models", "Folder for checkpoints, config.json and metrics.jsonl.", kind="path", group="Data", cli_only=True)
    device: str = hp("auto", "Device to train on: auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps.", kind="str", group="Device", cli_only=True)
    resume: str = hp("", "Checkpoint to resume from (continues its step count, optimiser and RNG state).", kind="path", group="Data", cli_only=True)

    def model_kwargs(self, vocab_size: int) -> dict[str, Any]:
        """The checkpoint's ``config`` for these settings (see :class:`ModelConfig`)."""
        return self.model_config(vocab_size).to_dict()

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size, **{k: getattr(self, k) for k in ModelConfig.setting_names()})

    def sample_prompt_text(self) -> str:
        """:attr:`sample_prompt` with its backslash escapes read (``\\n`` is a new line)."""
        return unescape(self.sample_prompt)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def unescape(text: str) -> str:
    """``\\n``, ``\\t`` and ``\\\\`` as the characters they name; any other backslash stays as typed.

    Lets a one-line field (a CLI flag, the studio's form) hold a prompt with new lines.
    """
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class SamplingConfig(_ConfigMixin):
    """How to sample text from a trained model."""

    max_new_tokens: int = hp(200, "Characters to generate after the prompt.", label="Characters", low=1, high=1_000_000)
    temperature: float = hp(1.0, "Sampling temperature (lower is more conservative; 0 is greedy).", label="Temperature", low=0.0, high=10.0, step=0.05, decimals=2)
    top_k: int = hp(0, "Sample only among the k most likely characters (0: all).", label="Top-k", low=0, high=100_000)
    seed: int = hp(-1, "Random seed for reproducible samples (-1: random).", label="Seed", low=-1, high=2**31 - 1)


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per hyperparameter of ``cls`` with its default and help."""
    for s in param_specs(cls):
        if s.name in skip:
            continue
        typ = {"int": int, "float": float}.get(s.kind, str)
        rng = ""
        if s.param.low is not None and s.param.high is not None:
            rng = f" Range {s.param.low:g}..{s.param.high:g}."
        parser.add_argument(
            s.flag,
            dest=s.name,
            type=typ,
            default=s.default,
            choices=list(s.param.choices) or None,
            help=f"{s.param.help}{rng} Default: {s.default!r}.",
        )


def from_namespace(cls: type, ns: argparse.Namespace):
    """Build ``cls`` from parsed CLI arguments (unknown attributes are ignored)."""
    return cls.from_dict(vars(ns))
