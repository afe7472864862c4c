"""Typed events yielded by the trainer.

The CLI and the studio consume the same stream; :func:`format_event` gives the
published log lines so both print exactly the same text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Started:
    """Training is about to take its first step (after any resume)."""

    run_dir: str
    device: str
    device_description: str
    start_step: int
    total_steps: int
    vocab_size: int
    train_tokens: int
    val_tokens: int
    num_parameters: int
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StepMetrics:
    """Losses of one optimisation step (energy is reported without its weight)."""

    step: int
    total_steps: int
    loss: float
    content: float
    energy: float
    tokens_per_s: float
    elapsed_s: float


@dataclass(frozen=True)
class EvalMetrics:
    """Validation losses, averaged over the fixed evaluation batches."""

    step: int
    loss: float
    content: float
    energy: float
    batches: int


@dataclass(frozen=True)
class SampleText:
    """The text the model wrote after ``prompt`` at an evaluation (fixed seed: comparable across steps)."""

    step: int
    prompt: str
    text: str


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str
    reason: str = "periodic"  # "periodic", "final" or "stop"


@dataclass(frozen=True)
class Paused:
    step: int


@dataclass(frozen=True)
class Resumed:
    step: int


@dataclass(frozen=True)
class Finished:
    """The run ended normally, or by a stop request (``stopped`` is then True)."""

    step: int
    run_dir: str
    last_checkpoint: str | None
    stopped: bool = False
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class Failed:
    """The run could not continue; ``message`` is meant for a person to read."""

    step: int
    message: str
    kind: str = "error"  # "nan", "corpus", "checkpoint", "disk", "config", "error"
    last_checkpoint: str | None = None


Event = Started | StepMetrics | EvalMetrics | SampleText | CheckpointSaved | Paused | Resumed | Finished | Failed


def format_event(event: Event, log_every: int = 100) -> str | None:
    """The log line for ``event`` as the published ``train.py`` printed it, or None.

    Samples have no published line (see :func:`format_sample`)."""
    if isinstance(event, StepMetrics):
        if log_every <= 0 or event.step % log_every:
            return None
        return (
            f"step {event.step:05d} | loss={event.loss:.4f} "
            f"(content={event.content:.4f}, energy={event.energy:.4f})"
        )
    if isinstance(event, EvalMetrics):
        return (
            f"[val] step {event.step:05d} | loss={event.loss:.4f} "
            f"(content={event.content:.4f}, energy={event.energy:.4f})"
        )
    if isinstance(event, CheckpointSaved):
        return f"Saved checkpoint to {event.path}"
    if isinstance(event, Started):
        return (
            f"Training on {event.device_description} | vocab {event.vocab_size} | "
            f"{event.num_parameters:,} parameters | steps {event.start_step}->{event.total_steps}"
        )
    if isinstance(event, Paused):
        return f"Paused at step {event.step}"
    if isinstance(event, Resumed):
        return f"Resumed at step {event.step}"
    if isinstance(event, Finished):
        verb = "Stopped" if event.stopped else "Finished"
        return f"{verb} at step {event.step} after {event.elapsed_s:.1f}s"
    if isinstance(event, Failed):
        return f"Training failed at step {event.step}: {event.message}"
    return None


SAMPLE_INDENT = "    "


def format_sample(event: SampleText, indent: str = SAMPLE_INDENT) -> str:
    """A sample as indented lines (prompt included, blank lines at its ends left out), to print
    under its ``[val]`` line."""
    return "\n".join(indent + line for line in (event.prompt + event.text).strip("\n").split("\n"))
