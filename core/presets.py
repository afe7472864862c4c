"""Preset files: named sets of training settings (the published benchmark rows, the user's own).

A preset is JSON ``{"name", "description", "config": {field: value}}`` whose
config keys are :class:`core.hparams.TrainConfig` fields; it names only what it
sets, so applying one means defaults first, then the preset's values. Paths and
the device are left out: they belong to a machine, not to a recipe. This module
is the one reader and writer of the format, and stays free of torch and Qt so
the studio can list presets before the engine has loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.files import atomic_write_text
from core.hparams import TrainConfig, param_specs
from core.resources import resource_path

EXCLUDED_FIELDS = ("data_path",)  # per machine; the studio has its own corpus picker


class PresetError(ValueError):
    """A preset file that cannot be used; the message names the file and the problem."""


def preset_fields() -> list[str]:
    """The TrainConfig fields a preset may set (those the studio's form shows)."""
    return [s.name for s in param_specs(TrainConfig)
            if not s.param.cli_only and s.name not in EXCLUDED_FIELDS]


def read_preset(path: str | Path) -> dict[str, Any]:
    """``{"name", "description", "config"}`` of a preset file; unknown keys are dropped."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PresetError(f"cannot read preset {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path.name} is not a JSON preset: {exc}") from None
    if isinstance(data, dict) and "config" not in data:
        data = {"config": data}  # a bare {field: value} dict is accepted too
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise PresetError(f"{path.name} is not a preset: expected an object with a \"config\" object")
    known = set(preset_fields())
    config = {k: v for k, v in data["config"].items() if k in known}
    if not config:
        raise PresetError(f"{path.name} sets none of the training settings")
    return {
        "name": str(data.get("name") or path.stem),
        "description": str(data.get("description") or ""),
        "config": config,
    }


def write_preset(path: str | Path, name: str, config: TrainConfig, description: str = "") -> Path:
    """Save ``config``'s preset fields atomically: a failed write leaves the old file whole."""
    keep = set(preset_fields())
    body = {"name": name, "description": description,
            "config": {k: v for k, v in config.to_dict().items() if k in keep}}
    return atomic_write_text(path, json.dumps(body, indent=2, ensure_ascii=False) + "\n")


def bundled_presets() -> list[Path]:
    """The preset files shipped with the studio (the published benchmark rows), by name."""
    try:
        folder = resource_path("resources", "presets")
    except FileNotFoundError:
        return []
    return sorted(folder.glob("*.json"))
