"""The training step's one-node loss against the per-step reference and the golden tensors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core import scan_numba
from core.fused_loss import fused_grads, fused_losses
from core.model import LandauerLLM, compute_losses

BACKENDS = ["torch"] + (["numba"] if scan_numba.available() else [])


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def _reference(model, idx, targets, temperature, energy_weight):
    logits, trace, _ = model.forward_reference(idx)
    return compute_losses(logits, targets, trace, temperature, energy_weight)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 5),
    steps=st.integers(1, 20),
    hidden=st.integers(1, 40),
    layers=st.integers(1, 4),
    vocab=st.sampled_from([3, 13, 120]),  # 120 > B*T: layer 0 projects embeddings instead of a table
    weights=st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 2.0), st.floats(0.0, 2.0)),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from(BACKENDS),
)
def test_losses_and_gradients_equal_the_reference(batch, steps, hidden, layers, vocab, weights, seed, backend):
    torch.manual_seed(seed)
    model = LandauerLLM(vocab, 6, hidden, layers, 1.7)
    with torch.no_grad():
        model.rnn.hidden_scale.uniform_(0.5, 1.5)
    idx = torch.randint(vocab, (batch, steps))
    targets = torch.randint(vocab, (batch, steps))
    fused = fused_losses(model, idx, targets, 0.3, 0.7, backend=backend)
    ref = _reference(model, idx, targets, 0.3, 0.7)
    for a, b in zip((fused.total, fused.content, fused.energy), (ref.total, ref.content, ref.energy), strict=True):
        torch.testing.assert_close(a, b, atol=2e-6, rtol=1e-5)
    # any mix of the three outputs: each has its own path back
    w_total, w_content, w_energy = weights
    mix = lambda losses: w_total * losses.total + w_content * losses.content + w_energy * losses.energy  # noqa: E731
    g_fused = _grads(model, mix(fused_losses(model, idx, targets, 0.3, 0.7, backend=backend)))
    g_ref = _grads(model, mix(_reference(model, idx, targets, 0.3, 0.7)))
    for name in g_ref:
        torch.testing.assert_close(g_fused[name], g_ref[name], atol=2e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["small", "default"])  # "warm" starts from a given state; training never does
def test_matches_the_original_code(golden_dir, name, backend):
    golden = torch.load(golden_dir / f"parity_{name}.pt", weights_only=True)
    assert golden["h0"] is None
    cfg = golden["config"]
    model = LandauerLLM.from_config(cfg)
    model.load_state_dict(golden["state_dict"])
    losses = fused_losses(model, golden["idx"], golden["targets"], cfg["temperature"], cfg["energy_weight"],
                          backend=backend)
    for key, value in (("content_loss", losses.content), ("energy", losses.energy), ("total_loss", losses.total)):
        torch.testing.assert_close(value, golden[key], atol=2e-5, rtol=0, msg=key)
    grads = _grads(model, losses.total)
    assert set(grads) == set(golden["grads"])
    for key, grad in grads.items():
        torch.testing.assert_close(grad, golden["grads"][key], atol=2e-5, rtol=1e-4, msg=key)


def test_a_single_step_has_no_energy():
    model = LandauerLLM(7, 4, 9, 2, 2.0)
    idx = torch.randint(7, (3, 1))
    losses = fused_losses(model, idx, idx, 0.05, 0.1)
    assert losses.energy.item() == 0.0 and losses.total.item() == losses.content.item()


@pytest.mark.parametrize("name", ["small", "default"])
def test_the_benchmark_yardstick_is_the_original_step(golden_dir, name):
    """The speed benchmark's baseline computes the original code's losses and gradients."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "published_step.py"
    spec = importlib.util.spec_from_file_location("published_step", path)
    published_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(published_step)

    golden = torch.load(golden_dir / f"parity_{name}.pt", weights_only=True)
    cfg = golden["config"]
    model = LandauerLLM.from_config(cfg)
    model.load_state_dict(golden["state_dict"])
    losses = published_step.published_losses(model, golden["idx"], golden["targets"], cfg["temperature"],
                                             cfg["energy_weight"])
    for key, value in (("content_loss", losses.content), ("energy", losses.energy), ("total_loss", losses.total)):
        torch.testing.assert_close(value, golden[key], atol=1e-5, rtol=0, msg=key)
    for key, grad in _grads(model, losses.total).items():
        torch.testing.assert_close(grad, golden["grads"][key], atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vocab", [5, 200])  # 200 > B*T: layer 0 projects embeddings instead of a table
def test_gradients_without_autograd_equal_the_autograd_node(backend, vocab):
    """fused_grads (the trainer's step) is fused_losses + backward, and adds to existing gradients."""
    torch.manual_seed(4)
    model = LandauerLLM(vocab, 6, 24, 3, 1.7)
    idx, targets = torch.randint(vocab, (3, 11)), torch.randint(vocab, (3, 11))
    expected = _grads(model, fused_losses(model, idx, targets, 0.3, 0.7, backend=backend).total)
    model.zero_grad(set_to_none=True)
    losses = fused_grads(model, idx, targets, 0.3, 0.7, backend=backend)
    reference = fused_losses(model, idx, targets, 0.3, 0.7, backend=backend)
    for a, b in zip((losses.total, losses.content, losses.energy),
                    (reference.total, reference.content, reference.energy), strict=True):
        assert torch.equal(a, b.detach())
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, expected[name]), name
    fused_grads(model, idx, targets, 0.3, 0.7, backend=backend)  # accumulates, as backward() does
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 2 * expected[name], atol=1e-7, rtol=1e-6, msg=name)


def test_the_benchmarks_product_floor_runs_the_steps_products():
    """bench_speed's ceiling times the fast step's matrix products alone: the same FLOPs as the step."""
    import importlib.util
    from pathlib import Path

    from torch.utils.flop_counter import FlopCounterMode

    from core.hparams import TrainConfig

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_speed.py"
    spec = importlib.util.spec_from_file_location("bench_speed", path)
    bench_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_speed)

    cfg = TrainConfig(batch_size=4, seq_len=8, embed_dim=6, hidden_dim=16, num_layers=3)
    vocab = 11  # fewer symbols than batch positions: the first layer projects the vocabulary table
    torch.manual_seed(0)
    model = LandauerLLM.from_config(cfg.model_kwargs(vocab))
    idx = torch.randint(0, vocab, (cfg.batch_size, cfg.seq_len))
    with FlopCounterMode(display=False) as step_flops:
        fused_grads(model, idx, idx, cfg.temperature, cfg.energy_weight)
    with FlopCounterMode(display=False) as product_flops:
        bench_speed.step_products(cfg, vocab)()
    assert step_flops.get_total_flops() == product_flops.get_total_flops() > 0
