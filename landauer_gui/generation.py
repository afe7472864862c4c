"""What a generation worker does, off the UI thread: load the model (unless cached), check the prompt, stream.

Qt-free on purpose: the items below are plain objects that the Generate view
receives in order through a :class:`landauer_gui.workers.WorkerSlot`. The
torch-dependent imports happen inside :func:`generation_items`, which only
runs once the engine is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.hparams import SamplingConfig


@dataclass
class Loaded:
    """A model loaded on the worker thread, handed back so the UI thread can cache it."""

    key: tuple
    model: Any
    itos: Any
    info: Any


@dataclass
class Problem:
    """An expected failure (bad file, bad prompt) worded for the person at the screen."""

    message: str
    missing: tuple[str, ...] = ()


class Ready:
    """The prompt was accepted; only characters follow."""


def load_unless_cached(path: str, device: str, key: tuple, cached: tuple | None
                       ) -> tuple[Loaded | None, tuple]:
    """``(model, itos, info)`` for ``path``: ``cached`` as it is, or loaded now, then with a
    :class:`Loaded` for the view to cache (on the worker thread; raises what ``load_model`` raises)."""
    if cached is not None:
        return None, cached
    from core.checkpoint import load_model

    model, itos, info = load_model(path, device)  # itos keys are ints (validated)
    return Loaded(key, model, itos, info), (model, itos, info)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def generation_items(path: str, device: str, key: tuple, cached: tuple | None, prompt: str,
                     sampling: SamplingConfig, stop: threading.Event,
                     scored: bool = False) -> Iterator[object]:
    """Runs on the worker thread: ``Loaded`` (unless cached), then ``Ready`` and characters, or a ``Problem``.

    With ``scored`` the characters come as ``(char, probability)`` pairs
    (:meth:`core.sampling.TextGenerator.stream_scored`, no extra pass).

    Expected failures become a :class:`Problem` item rather than an exception, so
    the view can show a precise message (and which prompt characters are unknown).
    """
    from core.checkpoint import CheckpointError
    from core.sampling import PromptError, TextGenerator

    name = Path(path).name
    try:
        loaded, (model, itos, info) = load_unless_cached(path, device, key, cached)
        if loaded is not None:
            yield loaded
        generator = TextGenerator(model, itos)
        chars = (generator.stream_scored if scored else generator.stream)(prompt, sampling, stop)
    except PromptError as exc:
        yield Problem(_sentence(str(exc)) + ".", tuple(getattr(exc, "missing", ())))
        return
    except CheckpointError as exc:  # its messages name the file, the cause and what to do
        yield Problem(str(exc))
        return
    except (OSError, ValueError) as exc:
        yield Problem(f"Cannot generate from {name}: {exc}")
        return
    yield Ready()
    yield from chars
