"""The compiled cross-entropy of the fused loss against torch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import loss_numba

pytestmark = pytest.mark.skipif(not loss_numba.available(), reason="numba unavailable")


@pytest.mark.parametrize("rows, vocab, spread", [(1, 1, 1.0), (7, 3, 1.0), (2048, 65, 3.0), (33, 200, 40.0)])
def test_loss_probabilities_and_gradient_equal_torch(rows, vocab, spread):
    torch.manual_seed(rows)
    logits = torch.randn(rows, vocab) * spread
    targets = torch.randint(vocab, (rows,))
    ref_loss = F.cross_entropy(logits.double(), targets, reduction="sum").item()
    ref_probs = torch.softmax(logits.double(), dim=1)
    work = logits.clone()
    loss = loss_numba.softmax_loss_(work, targets)
    assert loss == pytest.approx(ref_loss, rel=1e-9, abs=1e-9)
    torch.testing.assert_close(work, ref_probs.float(), atol=1e-7, rtol=1e-6)
    scale = 0.37 / rows
    columns = loss_numba.softmax_grad_(work, targets, scale)
    ref_grad = ((ref_probs - F.one_hot(targets, vocab).double()) * scale).float()
    torch.testing.assert_close(work, ref_grad, atol=1e-8, rtol=1e-5)
    torch.testing.assert_close(columns, ref_grad.sum(0), atol=1e-7, rtol=1e-5)


def test_extreme_logits_and_nan():
    logits = torch.tensor([[0.0, -200.0, 80.0], [1e4, -1e4, 0.0]])
    targets = torch.tensor([2, 1])
    work = logits.clone()
    loss = loss_numba.softmax_loss_(work, targets)
    assert loss == pytest.approx(F.cross_entropy(logits.double(), targets, reduction="sum").item(), rel=1e-9)
    assert bool(torch.isfinite(work).all()) and work[0, 2] == 1.0 and work[1, 0] == 1.0
    bad = logits.clone()
    bad[0, 1] = float("nan")
    assert np.isnan(loss_numba.softmax_loss_(bad, targets))  # a diverged model shows as a NaN loss


def test_exp_polynomial_accuracy():
    x = np.concatenate([np.linspace(-20, 0, 200_001), np.linspace(-104, -20, 50_001)])
    ours = np.array([loss_numba._exp_nonpositive(v) for v in x[::7]])
    rel = np.abs(ours / np.exp(x[::7]) - 1)
    assert rel[x[::7] >= -20].max() < 1e-12
    assert rel.max() < 5e-9
