"""Resuming: one rule for the CLI and the studio, and the list of changed settings."""

from __future__ import annotations

from core.hparams import TrainConfig
from core.resume import Change, merge_resume, saved_train_config

SAVED = TrainConfig(hidden_dim=12, lr=0.01, steps=3, data_path="corpus.txt", resume="old.pth").to_dict()


def test_saved_settings_win_unless_given_now():
    now = TrainConfig(steps=10, lr=0.001, hidden_dim=99, resume="ckpt.pth")
    resumed = merge_resume(SAVED, now, explicit={"steps", "lr"})
    cfg = resumed.config
    assert (cfg.steps, cfg.lr) == (10, 0.001)  # given now
    assert (cfg.hidden_dim, cfg.data_path) == (12, "corpus.txt")  # from the checkpoint
    assert cfg.resume == "ckpt.pth"  # always the checkpoint being resumed
    assert resumed.changed == [Change("lr", 0.01, 0.001), Change("steps", 3, 10)]
    assert resumed.describe() == "resuming with changed settings: lr 0.01 -> 0.001, steps 3 -> 10"


def test_nothing_changed_and_missing_saved_settings():
    now = TrainConfig(resume="ckpt.pth", lr=0.5)
    same = merge_resume(SAVED, now, explicit={"hidden_dim"})  # given, with another value
    assert same.changed == [Change("hidden_dim", 12, 256)]
    unchanged = merge_resume(SAVED, TrainConfig(hidden_dim=12, resume="c.pth"), explicit={"hidden_dim"})
    assert unchanged.changed == [] and unchanged.describe() == ""
    # Settings an older checkpoint did not record keep the current value; none to compare.
    older = {k: v for k, v in SAVED.items() if k != "eval_batches"}
    assert merge_resume(older, TrainConfig(eval_batches=7)).config.eval_batches == 7
    # An original checkpoint saved no settings: the current ones stand.
    assert merge_resume(None, now).config == now
    assert saved_train_config({"config": {}}) is None
    assert saved_train_config({"landauer_studio": {"train_config": SAVED}}) == SAVED


def test_studio_rule_is_the_same_function():
    """The studio's form (nothing 'given') takes every saved setting, as prepare_resume did."""
    form = TrainConfig(hidden_dim=64, lr=0.2, eval_batches=3)
    merged = merge_resume(SAVED, form).config
    assert merged == TrainConfig.from_dict({**form.to_dict(), **SAVED, "resume": form.resume})
    assert str(Change("data_path", "", "a.txt")) == 'data_path "" -> a.txt'
