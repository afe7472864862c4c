"""What a loaded checkpoint must hold before a model is built from it: the published
keys, a config of positive sizes, tensors of the shapes the config implies (and no
more bytes than the file holds), finite weights, and a one-character-per-id vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from core.checkpoint_reading import CheckpointError
from core.hparams import ModelConfig

EXTRAS_KEY = "landauer_studio"
CONFIG_KEYS = ModelConfig.keys()  # vocab_size first, phase_scaling last (the checks rely on it)
REQUIRED_KEYS = ("model_state", "config", "itos")

def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_config(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{where}: 'config' should be a dict of model sizes, got {type(config).__name__}.")
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"{where}: 'config' lacks {', '.join(missing)}; the model cannot be rebuilt "
                              "without it. The file is not a Landauer LLM checkpoint or is damaged.")
    for k in CONFIG_KEYS[:-1]:
        if not _positive_int(config[k]):
            raise CheckpointError(f"{where}: config {k} is {config[k]!r}; it must be a positive whole number.")
    ps = config["phase_scaling"]
    if isinstance(ps, bool) or not isinstance(ps, (int, float)) or not math.isfinite(ps) or ps <= 0:
        raise CheckpointError(f"{where}: config phase_scaling is {ps!r}; it must be a positive number.")
    return {k: config[k] for k in CONFIG_KEYS}


def check_itos(itos: dict[int, str], vocab_size: int, where: str) -> None:
    if sorted(itos) != list(range(vocab_size)):
        raise CheckpointError(
            f"{where}: 'itos' has {len(itos)} characters with ids {_id_range(itos)}, but the model's "
            f"vocab_size is {vocab_size} (ids 0..{vocab_size - 1}). The vocabulary does not match the model.")
    if len(set(itos.values())) != len(itos):
        raise CheckpointError(f"{where}: 'itos' lists some character twice, so text cannot be encoded.")


def _id_range(itos: dict[int, str]) -> str:
    return f"{min(itos)}..{max(itos)}" if itos else "(none)"


def expected_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of the published state dict for ``config``.

    Written out rather than read from a model: building one, even on the meta
    device, costs seconds of imports or the memory of the real weights.
    """
    v, e, h, layers = (int(config[k]) for k in CONFIG_KEYS[:4])
    shapes: dict[str, tuple[int, ...]] = {"token_embedding.weight": (v, e), "rnn.hidden_scale": (layers, h)}
    for layer in range(layers):
        shapes[f"rnn.input_linears.{layer}.weight"] = (h, e if layer == 0 else h)
        shapes[f"rnn.input_linears.{layer}.bias"] = (h,)
    shapes["output_head.weight"] = (v, h)
    shapes["output_head.bias"] = (v,)
    return shapes


def _held_bytes(tensors: Sequence[Any]) -> int:
    """Bytes of distinct data behind ``tensors`` (shared or expanded storages counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor):
            st = t.untyped_storage()
            seen[st.data_ptr() if st.nbytes() else id(st)] = st.nbytes()
    return sum(seen.values())


def _check_sizes(state: Mapping[str, Any], config: dict[str, Any], where: str) -> None:
    """Refuse a config the file's weights cannot fill, before anything is built from it.

    The model is built from ``config``; a few kilobytes declaring a huge model (tensors
    whose shapes are expanded views of a tiny storage) would otherwise allocate gigabytes.
    """
    declared = sum(math.prod(shape) for shape in expected_shapes(config).values())
    held = _held_bytes(list(state.values()))
    if declared * 2 > held:  # at least two bytes per weight (half precision)
        raise CheckpointError(
            f"{where}: its config declares {declared:,} parameters but the file holds {held:,} bytes of "
            "weights. The file is damaged or crafted; it was not loaded.")


def _check_state(state: Any, config: dict[str, Any], where: str) -> None:
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{where}: 'model_state' should be a dict of tensors, got {type(state).__name__}.")
    _check_sizes(state, config, where)
    want = expected_shapes(config)
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if extra:
            parts.append("unexpected " + ", ".join(map(str, extra)))
        raise CheckpointError(f"{where}: 'model_state' does not fit a {config['num_layers']}-layer "
                              f"Landauer LLM ({'; '.join(parts)}). The file is from another model or damaged.")
    for k, shape in want.items():
        t = state[k]
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{where}: model_state {k} is a {type(t).__name__}, not a tensor.")
        if tuple(t.shape) != shape:
            raise CheckpointError(
                f"{where}: model_state {k} has shape {tuple(t.shape)}, but the config "
                f"(vocab {config['vocab_size']}, embed {config['embed_dim']}, hidden {config['hidden_dim']}) "
                f"needs {shape}. The file's config and weights disagree; it is damaged.")
        if not t.is_floating_point():
            raise CheckpointError(f"{where}: model_state {k} holds {t.dtype} values, not floating point.")
        if t.untyped_storage().nbytes() < (t.storage_offset() + t.numel()) * t.element_size():
            raise CheckpointError(
                f"{where}: model_state {k} has shape {tuple(t.shape)} but its data holds only "
                f"{t.untyped_storage().nbytes():,} bytes. The file is damaged or crafted.")
        if not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"{where}: model_state {k} holds {bad:,} NaN or infinite values, so the model cannot "
                "produce text. The run diverged before this save or the file is damaged; use an earlier "
                "checkpoint.")


def validate_payload(payload: Any, where: str) -> dict[str, Any]:
    """Check the structure of a loaded checkpoint; return it with ``itos`` keys as int and ``args`` a dict."""
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{where} holds a {type(payload).__name__}, not a checkpoint dict. "
                              "Choose a .pth file written by train.py or Landauer Studio.")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        hint = ""
        if all(isinstance(v, torch.Tensor) for v in payload.values()) and payload:
            hint = " It looks like a bare state dict: the vocabulary and model sizes were not saved with it."
        keys = [repr(k) for k in list(payload)[:8]] + (["..."] if len(payload) > 8 else [])
        raise CheckpointError(f"{where} is not a Landauer LLM checkpoint: it lacks "
                              f"{', '.join(repr(k) for k in missing)} (it has {', '.join(keys) or 'nothing'})."
                              + hint)
    out = dict(payload)
    config = _check_config(payload["config"], where)
    itos = itos_dict(payload["itos"], where)
    check_itos(itos, config["vocab_size"], where)
    _check_state(payload["model_state"], config, where)
    args = payload.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise CheckpointError(f"{where}: 'args' should be a dict of hyperparameters, got {type(args).__name__}.")
    extras = payload.get(EXTRAS_KEY)
    if extras is not None and not isinstance(extras, Mapping):
        raise CheckpointError(f"{where}: '{EXTRAS_KEY}' should be a dict, got {type(extras).__name__}.")
    out["itos"] = itos
    out["args"] = dict(args)
    return out



def itos_dict(itos: Mapping[int, str] | Sequence[str], where: str) -> dict[int, str]:
    """``itos`` as ``{0: ch0, 1: ch1, ...}``, accepting a list or a dict with int-like keys."""
    if isinstance(itos, Mapping):
        items = list(itos.items())
    elif isinstance(itos, Sequence) and not isinstance(itos, str):
        items = list(enumerate(itos))
    else:
        raise CheckpointError(f"{where}: 'itos' must map token ids to characters, got {type(itos).__name__}.")
    out: dict[int, str] = {}
    for k, v in items:
        if isinstance(k, bool) or not isinstance(k, int):
            try:
                k = int(k)
            except (TypeError, ValueError):
                raise CheckpointError(f"{where}: 'itos' has a non-integer token id {k!r}.") from None
        if not isinstance(v, str) or len(v) != 1:
            raise CheckpointError(f"{where}: 'itos' maps token {k} to {v!r}, not to one character.")
        out[int(k)] = str(v)
    return out

