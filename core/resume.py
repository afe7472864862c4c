"""Resuming a run: which settings come from its checkpoint, and which the person changed.

The CLI and the studio both continue a run with the settings saved in its
checkpoint, except those given explicitly now. :func:`merge_resume` is that
rule, written once; it also lists what differs from the checkpoint, so the
change is said out loud instead of being accepted silently. No torch here:
callers pass the checkpoint's saved settings (:func:`saved_train_config`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from core.hparams import TrainConfig

NOT_COMPARED = ("resume",)  # always differs (it names the checkpoint itself)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value or '""'
    return repr(value)


@dataclass(frozen=True)
class Change:
    """One setting that differs from the checkpoint's."""

    name: str
    saved: Any
    now: Any

    def __str__(self) -> str:
        return f"{self.name} {_shown(self.saved)} -> {_shown(self.now)}"


@dataclass(frozen=True)
class ResumedSettings:
    """The settings to resume with, and how they differ from those saved in the checkpoint."""

    config: TrainConfig
    changed: list[Change] = field(default_factory=list)

    def describe(self) -> str:
        """``"resuming with changed settings: lr 0.003 -> 0.001"``, or "" when nothing changed."""
        if not self.changed:
            return ""
        return "resuming with changed settings: " + ", ".join(str(c) for c in self.changed)


def saved_train_config(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The training settings a checkpoint payload recorded, or None (e.g. an original checkpoint)."""
    extras = payload.get("landauer_studio")  # checkpoint_validation.EXTRAS_KEY, not imported: it loads torch
    saved = extras.get("train_config") if isinstance(extras, Mapping) else None
    return dict(saved) if isinstance(saved, Mapping) and saved else None


def merge_resume(saved: Mapping[str, Any] | None, current: TrainConfig,
                 explicit: Iterable[str] = ()) -> ResumedSettings:
    """Settings to continue a run with: the checkpoint's ``saved`` ones, overridden by the
    names in ``explicit`` (given now, e.g. on the command line) taken from ``current``.

    Settings the checkpoint did not record keep ``current``'s value; ``resume``
    is always ``current``'s. ``changed`` lists, in declaration order, every
    recorded setting whose value now differs. Without saved settings, ``current``
    is returned unchanged.
    """
    if not saved:
        return ResumedSettings(current)
    explicit = set(explicit)
    now = current.to_dict()
    values = {**now, **saved, **{k: now[k] for k in explicit if k in now}}
    values["resume"] = current.resume
    config = TrainConfig.from_dict(values)
    changed = [Change(f.name, saved[f.name], getattr(config, f.name)) for f in fields(TrainConfig)
               if f.name in saved and f.name not in NOT_COMPARED
               and saved[f.name] != getattr(config, f.name)]
    return ResumedSettings(config, changed)
