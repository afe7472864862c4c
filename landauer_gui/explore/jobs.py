"""What the Explore view runs on worker threads: read a text, analyse it, compare, branch.

Each job is a generator handed to the project's worker helper; it yields
typed items the view consumes on the UI thread. Everything slow for a long
text happens here, also the preparation the UI would otherwise do (per
character arrays, colour scales, newline positions), so receiving a result
costs the UI thread a few milliseconds whatever the text's length.
Expected failures (an unreadable file, characters the model does not know)
become a :class:`~landauer_gui.generation.Problem` item worded for the person at the screen.
torch and the analysis engine are imported inside the jobs, never when the
window is built.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landauer_gui.explore.colours import (
    ColourScale,
    diverging_scale,
    motion_scale,
    rank_scale,
    surprise_scale,
)
from landauer_gui.explore.text_pane import newline_positions
from landauer_gui.generation import Problem, load_unless_cached
from landauer_gui.widgets import sentence

# States of every layer cost L*H floats per character; beyond this many floats
# (128 MB) only a leading window of the text keeps them.
HIDDEN_BUDGET = 32 * 1024 * 1024


@dataclass
class TextRead:
    """A text read from a file or a corpus, with where it came from."""

    text: str
    origin: str


@dataclass
class Prepared:
    """One analysis and everything the view draws from it, computed off the UI thread.

    ``per_char`` holds arrays of the text's length (NaN at position 0, which
    nothing predicts): "surprise" in bits, "rank" and "motion".
    ``hidden`` is ``(L, m, H)`` for the first ``m`` characters (``m`` may be
    less than the text's length for long texts), or None. ``char_order`` lists
    the character ids by their mean predicted probability over the text, most
    expected first (the distribution chart's fixed order).
    """

    analysis: Any  # core.analysis.TextAnalysis
    per_char: dict[str, np.ndarray]
    scales: dict[str, ColourScale]
    newlines: np.ndarray
    hidden: np.ndarray | None
    summary: Any  # core.analysis.AnalysisSummary
    seconds: float
    checkpoint: str
    char_order: np.ndarray


@dataclass
class Compared:
    """Surprise of the second checkpoint minus the first's, per character (bits, NaN at 0)."""

    delta_bits: np.ndarray
    scale: ColourScale
    summary_b: Any
    checkpoint: str


def per_char(values: np.ndarray) -> np.ndarray:
    """Per-prediction values ``(n-1,)`` as per-character ones ``(n,)``: character 0 gets NaN."""
    out = np.empty(len(values) + 1, dtype=np.float64)
    out[0] = np.nan
    out[1:] = values
    return out


def _worded(exc: Exception, name: str) -> str:
    from core.checkpoint import CheckpointError

    if isinstance(exc, CheckpointError):
        return str(exc)
    return f"Cannot analyse with {name}: {sentence(str(exc))}"


def hidden_window(n_chars: int, layers: int, width: int, budget: int = HIDDEN_BUDGET) -> int:
    """How many leading characters keep every layer's states within ``budget`` floats."""
    return max(2, min(n_chars, budget // max(1, layers * width)))


def analysis_items(path: str, device: str, key: tuple, cached: tuple | None, text: str,
                   budget: int = HIDDEN_BUDGET) -> Iterator[object]:
    """Load (unless cached) and analyse ``text``; yields ``Loaded?`` then ``Prepared`` or ``Problem``."""
    from core.analysis import analyse_text, checkpoint_temperature

    name = Path(path).name
    try:
        loaded, (model, itos, info) = load_unless_cached(path, device, key, cached)
        if loaded is not None:
            yield loaded
        t0 = time.perf_counter()
        temperature = checkpoint_temperature(info)
        cfg = model.config
        m = hidden_window(len(text), cfg.num_layers, cfg.hidden_dim, budget)
        whole = m >= len(text)
        analysis = analyse_text(model, itos, text, keep_hidden=whole, temperature=temperature)
        hidden = analysis.hidden
        if not whole:  # states for a leading window only: the same reading, stopped early
            hidden = analyse_text(model, itos, text[:m], keep_hidden=True).hidden
        seconds = time.perf_counter() - t0
    except (OSError, ValueError) as exc:  # PromptError and CheckpointError are ValueErrors
        yield Problem(_worded(exc, name))
        return
    bits = per_char(analysis.surprise / math.log(2.0))
    chars = {"surprise": bits, "rank": per_char(analysis.rank), "motion": per_char(analysis.motion)}
    scales = {"surprise": surprise_scale(analysis.surprise), "rank": rank_scale(),
              "motion": motion_scale(analysis.motion)}
    order = np.argsort(-analysis.probs.mean(axis=0, dtype=np.float64), kind="stable")
    yield Prepared(analysis, chars, scales, newline_positions(text), hidden, analysis.summary(),
                   seconds, path, order)


def compare_items(path: str, device: str, first: Any) -> Iterator[object]:
    """Analyse ``first``'s text with another checkpoint; yields ``Compared`` or ``Problem``."""
    from core.analysis import analyse_text, compare
    from core.checkpoint import load_model

    try:
        model, itos, _info = load_model(path, device)
        second = analyse_text(model, itos, first.text, keep_hidden=False)
        delta = per_char(compare(first, second) / math.log(2.0))
    except (OSError, ValueError) as exc:
        yield Problem(_worded(exc, Path(path).name))
        return
    title = f"surprise of {Path(path).name} − this (bits)"
    yield Compared(delta, diverging_scale(delta, title, " b"), second.summary(), path)


def branch_items(model: Any, itos: dict[int, str], prefix: str, sampling: Any,
                 stop: threading.Event) -> Iterator[object]:
    """Continue ``prefix`` (which ends with the chosen character) with the sampler, one char at a time."""
    from core.sampling import TextGenerator

    try:
        chars = TextGenerator(model, itos).stream(prefix, sampling, stop)
    except ValueError as exc:
        yield Problem(f"Cannot branch here: {exc}.")
        return
    yield from chars


def read_file_items(path: str) -> Iterator[object]:
    """A UTF-8 text file; yields ``TextRead`` or ``Problem``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        yield Problem(f"{Path(path).name} is not UTF-8 text; save it as UTF-8 and try again.")
        return
    except OSError as exc:
        yield Problem(f"Cannot read {path}: {exc.strerror or exc}.")
        return
    yield TextRead(text, Path(path).name)


def corpus_slice_items(path: str, start: int, length: int) -> Iterator[object]:
    """``length`` characters of a corpus's validation split from ``start``; ``TextRead`` or ``Problem``."""
    from core.data import CorpusError, load_corpus

    try:
        corpus = load_corpus(path)
    except (CorpusError, OSError, ValueError) as exc:
        yield Problem(f"Cannot read the corpus: {exc}")
        return
    n = len(corpus.val_data)
    if n < 2:
        yield Problem(f"{Path(path).name} has no validation text to take a slice from.")
        return
    start = max(0, min(int(start), n - 2))
    text = corpus.decode(corpus.val_data[start:start + int(length)])
    yield TextRead(text, f"{Path(path).name}, validation characters {start:,}–{start + len(text):,} of {n:,}")
