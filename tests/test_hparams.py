"""The model's settings are declared once (ModelConfig); everything else derives from it."""

from __future__ import annotations

from dataclasses import fields

from core import checkpoint, trainer
from core.hparams import ModelConfig, TrainConfig, param_specs
from core.model import LandauerLLM


def test_train_config_shares_the_model_declarations():
    model = {s.name: s for s in param_specs(ModelConfig)}
    train = {s.name: s for s in param_specs(TrainConfig)}
    assert list(model) == ["embed_dim", "hidden_dim", "num_layers", "phase_scaling"]
    for name, spec in model.items():
        assert train[name] == spec  # same default, help, range, group
    assert ModelConfig.keys() == ("vocab_size", *model)
    assert checkpoint.CONFIG_KEYS == ModelConfig.keys()
    assert trainer.MODEL_KEYS == ModelConfig.setting_names() == tuple(model)


def test_everything_builds_from_model_config():
    cfg = TrainConfig(embed_dim=5, hidden_dim=7, num_layers=3, phase_scaling=1.5)
    assert cfg.model_config(11) == ModelConfig(11, 5, 7, 3, 1.5)
    assert cfg.model_kwargs(11) == {"vocab_size": 11, "embed_dim": 5, "hidden_dim": 7,
                                    "num_layers": 3, "phase_scaling": 1.5}
    model = LandauerLLM.from_config(cfg.model_kwargs(11))
    assert model.config == ModelConfig(11, 5, 7, 3, 1.5)
    assert LandauerLLM(4).config == ModelConfig(4)  # the constructor's defaults are ModelConfig's
    assert isinstance(ModelConfig(4, phase_scaling=2).phase_scaling, float)


def test_train_flags_keep_their_order():
    names = [f.name for f in fields(TrainConfig)]
    assert names[:7] == ["data_path", "batch_size", "seq_len", "embed_dim", "hidden_dim",
                         "num_layers", "phase_scaling"]
