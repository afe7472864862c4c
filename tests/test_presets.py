"""Preset files: reading, writing (atomically) and the bundled benchmark presets."""

from __future__ import annotations

import json
import os

import pytest

from core import presets
from core.hparams import TrainConfig
from core.presets import PresetError, bundled_presets, preset_fields, read_preset, write_preset


def test_round_trip_keeps_only_preset_fields(tmp_path):
    cfg = TrainConfig().replace(hidden_dim=24, lr=5e-4, data_path="/somewhere/corpus.txt")
    path = write_preset(tmp_path / "mine.json", "mine", cfg, "my settings")
    body = json.loads(path.read_text(encoding="utf-8"))
    assert body["name"] == "mine" and body["description"] == "my settings"
    assert "data_path" not in body["config"]
    assert set(body["config"]) == set(preset_fields())
    p = read_preset(path)
    assert p["config"]["hidden_dim"] == 24 and p["config"]["lr"] == pytest.approx(5e-4)


def test_bare_dict_is_a_preset_named_after_its_file(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"hidden_dim": 32, "not_a_setting": 1}), encoding="utf-8")
    p = read_preset(path)
    assert p == {"name": "small", "description": "", "config": {"hidden_dim": 32}}


@pytest.mark.parametrize("content, expected", [
    ("{not json", "is not a JSON preset"),
    ("[1, 2]", "is not a preset"),
    ('{"config": {"colour": "blue"}}', "sets none of the training settings"),
])
def test_bad_files_are_named_in_the_message(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PresetError, match=expected) as info:
        read_preset(path)
    assert "bad.json" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(PresetError, match="cannot read preset"):
        read_preset(tmp_path / "nowhere.json")


def test_failed_write_leaves_the_old_preset_whole(tmp_path, monkeypatch):
    path = write_preset(tmp_path / "keep.json", "keep", TrainConfig().replace(hidden_dim=24))
    before = path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)  # the new bytes never reach the disk
    with pytest.raises(OSError):
        write_preset(path, "keep", TrainConfig().replace(hidden_dim=99))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]  # no temporary file left


def test_bundled_presets_are_readable():
    found = bundled_presets()
    assert len(found) >= 5
    names = [read_preset(p)["name"] for p in found]
    assert names[0] == "Quick smoke test"


def test_no_bundled_folder_means_no_presets(monkeypatch):
    def missing(*parts):
        raise FileNotFoundError("/".join(parts))

    monkeypatch.setattr(presets, "resource_path", missing)
    assert bundled_presets() == []
