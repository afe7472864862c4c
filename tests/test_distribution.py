"""The chart's reshaped distribution is the one the sampler draws from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.distribution import sampling_distribution
from core.sampling import make_generator, sample_token


def _torch_reference(logits: torch.Tensor, temperature: float, top_k: int) -> np.ndarray:
    """What sample_token feeds torch.multinomial, written out with torch ops."""
    z = logits / temperature
    if 0 < top_k < z.numel():
        kth = torch.topk(z, top_k).values[-1]
        z = z.masked_fill(z < kth, float("-inf"))
    return torch.softmax(z.double(), dim=-1).numpy()


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.5, 0), (2.0, 5), (0.8, 1), (1.3, 64)])
def test_matches_the_sampler_on_logits(temperature, top_k):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(65, generator=gen) * 3
    probs = torch.softmax(logits, dim=-1).numpy()
    got = sampling_distribution(probs, temperature, top_k)
    np.testing.assert_allclose(got, _torch_reference(logits, temperature, top_k), atol=1e-6)
    assert got.sum() == pytest.approx(1.0)
    assert (got > 0).sum() == (top_k if 0 < top_k < 65 else 65)


def test_zero_temperature_is_greedy_and_draws_stay_in_the_support():
    probs = np.array([0.1, 0.5, 0.15, 0.25])
    greedy = sampling_distribution(probs, 0.0, 0)
    assert greedy.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert sample_token(torch.log(torch.tensor(probs)), 0.0, 0, make_generator(0)) == 1
    support = sampling_distribution(probs, 1.0, 2)
    assert np.flatnonzero(support).tolist() == [1, 3]
    draws = {sample_token(torch.log(torch.tensor(probs)), 1.0, 2, make_generator(s)) for s in range(40)}
    assert draws == {1, 3}
