"""The distribution a sampler actually draws from, given the model's raw next-character probabilities.

:func:`core.sampling.sample_token` divides the logits by the temperature,
keeps only the ``top_k`` largest (ties with the k-th kept) and normalises;
temperature 0 is greedy. This is the same reshaping on probabilities, in
numpy, so a view can draw both distributions side by side without torch.
"""

from __future__ import annotations

import numpy as np


def sampling_distribution(probs: np.ndarray, temperature: float, top_k: int) -> np.ndarray:
    """``probs (V,)`` reshaped as sampling with ``temperature`` and ``top_k`` would use them (float64)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return p
    if temperature <= 0:
        out = np.zeros_like(p)
        out[int(np.argmax(p))] = 1.0
        return out
    with np.errstate(divide="ignore"):
        logits = np.log(np.maximum(p, 0.0)) / float(temperature)
    if 0 < top_k < p.size:
        kth = np.partition(logits, p.size - top_k)[p.size - top_k]
        logits = np.where(logits < kth, -np.inf, logits)
    logits = logits - np.max(logits)
    e = np.exp(logits)
    return e / e.sum()
