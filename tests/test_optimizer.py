"""The compiled clip + Adam update against PyTorch's clip_grad_norm_ and default Adam."""

from __future__ import annotations

import copy

import pytest
import torch

from core import scan_numba
from core.model import LandauerLLM
from core.optimizer import ClippedAdam, make_optimizer

needs_numba = pytest.mark.skipif(not scan_numba.available(), reason="numba unavailable")


def _pair(max_norm: float):
    torch.manual_seed(0)
    ours = LandauerLLM(11, 4, 8, 2, 2.0)
    plain = copy.deepcopy(ours)
    update = ClippedAdam(make_optimizer(list(ours.parameters()), 3e-3), max_norm)
    return ours, plain, update, torch.optim.Adam(plain.parameters(), lr=3e-3)


def _published_step(plain, optimizer, max_norm):
    norm = torch.nn.utils.clip_grad_norm_(plain.parameters(), max_norm) if max_norm > 0 else None
    optimizer.step()
    return norm


@needs_numba
@pytest.mark.parametrize("max_norm", [0.0, 1.0, 1e6])
def test_compiled_update_follows_clip_and_default_adam(max_norm):
    ours, plain, update, optimizer = _pair(max_norm)
    assert update.compiled
    start = copy.deepcopy(ours)
    gen = torch.Generator().manual_seed(1)
    for step in range(20):
        for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
            a.grad = torch.randn(a.shape, generator=gen) * (3.0 if step % 2 else 0.1)
            b.grad = a.grad.clone()
        norm = update.clip()
        ref_norm = _published_step(plain, optimizer, max_norm)
        update.step()
        if ref_norm is not None:
            assert norm == pytest.approx(float(ref_norm), rel=1e-6)
        for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
            torch.testing.assert_close(a.grad, b.grad, atol=1e-7, rtol=1e-6)  # clipped in place alike
    for a, b, s in zip(ours.parameters(), plain.parameters(), start.parameters(), strict=True):
        assert (a - s).abs().max() > 1e-2  # the weights moved
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    ours_state, plain_state = update.optimizer.state_dict(), optimizer.state_dict()
    assert ours_state["state"].keys() == plain_state["state"].keys()
    for key, state in ours_state["state"].items():
        assert state["step"].item() == plain_state["state"][key]["step"].item() == 20
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state[name], plain_state["state"][key][name], atol=1e-7, rtol=1e-5)


@needs_numba
def test_compiled_update_continues_from_a_loaded_state():
    """After load_state_dict the update uses the loaded moments, not the ones it saw before."""
    ours, plain, update, optimizer = _pair(1.0)
    for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
        a.grad = torch.ones_like(a)
        b.grad = a.grad.clone()
    update.clip()
    update.step()
    _published_step(plain, optimizer, 1.0)
    saved = copy.deepcopy(update.optimizer.state_dict())
    for _ in range(3):  # wander off, then go back to the saved state
        for a in ours.parameters():
            a.grad = torch.randn_like(a)
        update.clip()
        update.step()
    with torch.no_grad():
        for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
            a.copy_(b)
    update.optimizer.load_state_dict(saved)
    for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
        a.grad = torch.full_like(a, -0.5)
        b.grad = a.grad.clone()
    update.clip()
    update.step()
    _published_step(plain, optimizer, 1.0)
    for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_a_default_adam_keeps_its_own_step():
    """Only the fused Adam of make_optimizer is replaced; the published default runs as it is."""
    model = LandauerLLM(5, 2, 3, 1, 2.0)
    assert not ClippedAdam(torch.optim.Adam(model.parameters()), 1.0).compiled
    assert not ClippedAdam(torch.optim.Adam(model.parameters(), fused=True, weight_decay=0.1), 1.0).compiled


@needs_numba
def test_a_non_finite_gradient_shows_in_the_norm():
    ours, _, update, _ = _pair(1.0)
    for a in ours.parameters():
        a.grad = torch.zeros_like(a)
    next(ours.parameters()).grad[0] = float("nan")
    assert torch.isnan(torch.tensor(update.clip()))
