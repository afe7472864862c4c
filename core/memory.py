"""How much memory a training configuration needs, checked before anything is allocated.

The ranges in :mod:`core.hparams` allow sizes whose activations alone exceed any
machine (a batch of 4096 sequences of 16384 characters). Instead of letting the
process be killed mid-allocation, the trainer (and the studio's form) compare
:func:`estimate_training_memory` with what the device has free and refuse with
one line naming the setting to lower.

The estimate counts what the training step really keeps (see
:mod:`core.fused_loss`): per layer the trace and, for the backward, the cosine
and sine of the rotation angles; the logits and their log-probabilities; the
backward's few time-major gradients; parameters, gradients and Adam's two
moments; one validation batch at a time; the corpus's token ids. Measured
peak RSS stays within a factor of 2 of it either way (0.7-1.2 measured) (``tests/test_memory.py``).

Qt-free and cheap: no tensor is built to compute an estimate.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FLOAT_BYTES = 4  # float32 weights and activations
INDEX_BYTES = 8  # int64 token ids in a batch
# Freed buffers of one size are not always reusable for the next allocation, so the
# process's peak exceeds the bytes live at once; measured on CPU at about a quarter.
ALLOCATOR_SLACK = 1.25
WARN_FRACTION = 0.7  # above this share of the free memory the studio and CLI warn
UNKNOWN = None

# Which settings shrink each part of the estimate (the refusal names the largest part's).
LOWER = {
    "activations": "the batch size or the sequence length (or the hidden size)",
    "validation": "the batch size or the sequence length",
    "parameters": "the hidden size, embedding size or number of layers",
    "gradients": "the hidden size, embedding size or number of layers",
    "optimizer": "the hidden size, embedding size or number of layers",
    "corpus": "the corpus size (use a smaller text file)",
}


def id_bytes(vocab_size: int) -> int:
    """Bytes per token id in memory: the smallest integer type that holds the vocabulary."""
    if vocab_size <= 256:
        return 1
    return 2 if vocab_size <= 2**15 else 4


def parameter_count(vocab_size: int, embed_dim: int, hidden_dim: int, num_layers: int) -> int:
    """Number of weights of a Landauer LLM (embedding, input projections, scales, head)."""
    v, e, h, n = int(vocab_size), int(embed_dim), int(hidden_dim), int(num_layers)
    return v * e + n * h + (e * h + h) + (n - 1) * (h * h + h) + v * h + v


def _get(config: Any, name: str) -> Any:
    return config[name] if isinstance(config, Mapping) else getattr(config, name)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run needs, by part. ``total`` is the peak: the training step and a
    validation pass never hold their activations at the same time."""

    parameters: int
    gradients: int
    optimizer: int
    activations: int  # kept by one training step (forward results for the backward + its gradients)
    validation: int  # one validation batch's forward (no gradients)
    corpus: int  # token ids of the whole text
    num_parameters: int = 0
    details: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def device_bytes(self) -> int:
        """What lives on the training device (GPU memory when training on CUDA)."""
        return self.parameters + self.gradients + self.optimizer + max(self.activations, self.validation)

    @property
    def host_bytes(self) -> int:
        """What always stays in the computer's main memory (the corpus)."""
        return self.corpus

    @property
    def total(self) -> int:
        return self.device_bytes + self.host_bytes

    def breakdown(self) -> dict[str, int]:
        return {"parameters": self.parameters, "gradients": self.gradients, "optimizer": self.optimizer,
                "activations": self.activations, "validation": self.validation, "corpus": self.corpus}

    def largest(self) -> str:
        """The part that dominates (the one whose settings to lower)."""
        parts = self.breakdown()
        return max(parts, key=parts.get)


def estimate_training_memory(config: Any, vocab_size: int, corpus_chars: int) -> MemoryEstimate:
    """Bytes needed to train ``config`` (a ``TrainConfig`` or a dict with its field names).

    ``vocab_size`` and ``corpus_chars`` come from the corpus (``Corpus.vocab_size``,
    ``Corpus.characters``). Counts the fused training step of :mod:`core.fused_loss`.
    """
    b, t = int(_get(config, "batch_size")), int(_get(config, "seq_len"))
    e, h = int(_get(config, "embed_dim")), int(_get(config, "hidden_dim"))
    layers = int(_get(config, "num_layers"))
    evaluates = int(_get(config, "eval_every")) > 0
    v = int(vocab_size)
    n = b * t  # positions per batch
    f = FLOAT_BYTES
    params = parameter_count(v, e, h, layers)

    batch = 2 * n * INDEX_BYTES + 2 * n * INDEX_BYTES  # x, y; time-major tokens, flat targets
    embedded = 0 if v < n else n * e * f  # kept when the table is not projected and gathered
    kept = layers * 3 * n * h * f  # per layer: trace, cos and sin of the angles
    forward_peak = kept + n * h * f + 2 * n * v * f  # + current projection, logits and log-probs
    backward_peak = kept + 3 * n * h * f + n * v * f  # + three (T,B,H) gradients; log-probs reused
    activations = int(ALLOCATOR_SLACK * (batch + embedded + max(forward_peak, backward_peak)))
    validation = 0
    if evaluates:  # autograd-free forward + cross-entropy on one batch at a time
        validation = int(ALLOCATOR_SLACK * (2 * n * INDEX_BYTES + embedded + 5 * n * h * f + 3 * n * v * f))
    return MemoryEstimate(
        parameters=params * f,
        gradients=params * f,
        optimizer=2 * params * f,  # Adam's exp_avg and exp_avg_sq
        activations=activations,
        validation=validation,
        corpus=int(corpus_chars) * id_bytes(v),
        num_parameters=params,
        details={"batch": batch, "kept_per_layer": 3 * n * h * f, "logits": n * v * f},
    )


# --------------------------------------------------------------------------- free memory


def available_host_bytes() -> int | None:
    """Memory the system can give this process now without swapping, or None if unknown.

    Linux: ``MemAvailable`` from /proc/meminfo. Elsewhere: free physical pages
    (``sysconf``), or psutil when installed; None when nothing answers.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional

        return int(psutil.virtual_memory().available)
    except Exception:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def available_device_bytes(device: Any) -> int | None:
    """Free memory of ``device`` ("cpu", "cuda:0", a ``torch.device``), or None if unknown."""
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    if kind == "cuda":
        try:
            import torch

            free, _total = torch.cuda.mem_get_info(device)
            return int(free)
        except Exception:
            return None
    return available_host_bytes()  # CPU; Apple MPS shares the main memory


@dataclass(frozen=True)
class MemoryVerdict:
    """``level``: "ok", "warn" (more than 70% of the free memory) or "refuse"; ``message``
    is one line for a person (empty when ok)."""

    level: str
    message: str
    needed: int
    available: int | None

    @property
    def ok(self) -> bool:
        return self.level != "refuse"


def format_bytes(n: float) -> str:
    """``1.5 GB``-style sizes (powers of 1024, as the system monitor shows them)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"  # pragma: no cover


def check_memory(estimate: MemoryEstimate, device: Any = "cpu", *,
                 available: int | None | object = UNKNOWN, host_available: int | None | object = UNKNOWN
                 ) -> MemoryVerdict:
    """Compare ``estimate`` with the free memory of ``device`` (and of the host, for a GPU).

    ``available``/``host_available`` override the measured free bytes (tests, or a
    form that measured once). Unknown free memory never refuses.
    """
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    name = str(device)
    if kind == "cuda":
        checks = [("device", estimate.device_bytes, available if available is not UNKNOWN
                   else available_device_bytes(device), f"{name} (GPU memory)"),
                  ("host", estimate.host_bytes, host_available if host_available is not UNKNOWN
                   else available_host_bytes(), "main memory")]
    else:
        checks = [("all", estimate.total, available if available is not UNKNOWN
                   else available_host_bytes(), f"{name}" if kind != "cpu" else "this computer")]
    worst: MemoryVerdict | None = None
    for part, need, free, where in checks:
        if free is None or need <= 0:
            continue
        share = need / max(int(free), 1)
        level = "refuse" if share > 1.0 else "warn" if share > WARN_FRACTION else "ok"
        if level == "ok":
            continue
        parts = estimate.breakdown()
        if part == "device":
            parts.pop("corpus")
        elif part == "host":
            parts = {"corpus": estimate.corpus}
        big = max(parts, key=parts.get)
        what = ", ".join(f"{k} {format_bytes(v)}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])
                         if v >= 0.05 * need)
        if level == "refuse":
            msg = (f"this configuration needs about {format_bytes(need)} of memory ({what}), but only "
                   f"{format_bytes(free)} is free on {where}; lower {LOWER[big]}")
        else:
            msg = (f"this configuration needs about {format_bytes(need)} of memory ({what}), "
                   f"{math.floor(100 * share)}% of the {format_bytes(free)} free on {where}; "
                   f"other programs may run short (lower {LOWER[big]} to be safe)")
        verdict = MemoryVerdict(level, msg, need, int(free))
        if worst is None or (verdict.level == "refuse" and worst.level != "refuse"):
            worst = verdict
    if worst is not None:
        return worst
    free = next((c[2] for c in checks if c[2] is not None), None)
    return MemoryVerdict("ok", "", estimate.total, None if free is None else int(free))


# --------------------------------------------------------------------------- failures


_OOM_TEXT = ("can't allocate memory", "not enough memory", "out of memory", "cannot allocate memory",
             "failed to allocate")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure of any kind: ``MemoryError`` (Python, numpy),
    CUDA's ``OutOfMemoryError``, or the CPU allocator's ``RuntimeError``
    ("DefaultCPUAllocator: can't allocate memory", "not enough memory", MPS "out of memory")."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except Exception:  # pragma: no cover - torch always importable in the app
        pass
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(s in text for s in _OOM_TEXT)
    return False
