"""Numba kernels for the cross-entropy of the fused training loss on CPU.

The content loss is ``mean_i(logsumexp(logits_i) - logits_i[target_i])`` and its
gradient ``(softmax(logits) - one_hot(target)) / N``. torch spends seven
operations on it (log-softmax, NLL, exp, index arithmetic, a scatter, a scale,
a column sum), each a pass over the logits with its own thread start-up. Here
the forward is one pass that turns the logits into probabilities in place and
returns the summed loss, and the backward one pass that turns the
probabilities into the gradient in place and sums its columns (the output
bias's gradient).

``exp`` is a polynomial evaluated in float64 (numba calls libm one scalar at a
time, which blocks vectorisation): ``exp(x) = exp(x/128)**128`` with a Taylor
series for ``exp(x/128)``, relative error below ``4e-9`` at ``x = -104`` and
below ``1e-13`` for ``x >= -20``, far below float32 rounding where it matters
(below ``exp(-104)`` a float32 probability is zero anyway). Row sums, the log
and the loss are float64, so the loss is at least as accurate as torch's
float32 one.
"""

from __future__ import annotations

import torch

from core import scan_numba

_ERROR = scan_numba.unavailable_reason()


def available() -> bool:
    return scan_numba.available()


if _ERROR is None:
    import numpy as np
    from numba import float32, float64, njit, prange

    from core.scan_numba import _JIT, _POLY, _add_parts
    _E2, _E3, _E4, _E5, _E6 = 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720
    _E7, _E8, _E9, _E10 = 1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800
    _E11, _E12 = 1.0 / 39916800, 1.0 / 479001600

    @njit(**_POLY)
    def _exp_nonpositive(x):
        """``exp(x)`` in float64 for ``x <= 0`` (arguments below -104 are treated as -104; NaN stays NaN)."""
        y = (-104.0 if x < -104.0 else x) * (1.0 / 128.0)
        e = 1.0 + y * (1.0 + y * (_E2 + y * (_E3 + y * (_E4 + y * (_E5 + y * (_E6 + y * (_E7 + y * (_E8
            + y * (_E9 + y * (_E10 + y * (_E11 + y * _E12)))))))))))
        e = e * e
        e = e * e
        e = e * e
        e = e * e
        e = e * e
        e = e * e
        return e * e

    @njit(**_JIT)
    def _row_max(row):
        """The largest entry (float64), four running maxima apart: one would wait on each comparison."""
        m0 = m1 = m2 = m3 = row[0]
        n = row.shape[0]
        v = 0
        while v + 4 <= n:
            m0 = max(m0, row[v])
            m1 = max(m1, row[v + 1])
            m2 = max(m2, row[v + 2])
            m3 = max(m3, row[v + 3])
            v += 4
        while v < n:
            m0 = max(m0, row[v])
            v += 1
        return float64(max(max(m0, m1), max(m2, m3)))

    # The float64 sums may be reordered (vectorised): their rounding is far below float32's.
    @njit(**dict(_JIT, fastmath={"reassoc", "contract"}), parallel=True)
    def _forward_kernel(logits, targets, loss_parts):
        """Rows of ``logits`` become their softmax in place; returns the summed loss
        (``loss_parts[p]`` holds part p's)."""
        rows, vocab = logits.shape
        parts = loss_parts.shape[0]
        for part in prange(parts):
            total = 0.0
            weights = np.empty(vocab, dtype=np.float64)
            for i in range(part * rows // parts, (part + 1) * rows // parts):
                row = logits[i]
                top = _row_max(row)
                for v in range(vocab):
                    weights[v] = _exp_nonpositive(float64(row[v]) - top)
                s = 0.0
                for v in range(vocab):
                    s += weights[v]
                total += np.log(s) + top - float64(row[targets[i]])
                inv = 1.0 / s
                for v in range(vocab):
                    row[v] = float32(weights[v] * inv)
            loss_parts[part] = total
        return loss_parts.sum()

    @njit(**_JIT, parallel=True)
    def _backward_kernel(probs, targets, scale, column_parts, columns):
        """``probs`` becomes ``(probs - one_hot) * scale`` in place; ``columns`` (float32) gets
        its column sums (``column_parts[p]`` holds part p's, in float64)."""
        rows, vocab = probs.shape
        parts = column_parts.shape[0]
        s = float32(scale)
        for part in prange(parts):
            col = np.zeros(vocab, dtype=np.float64)  # private: a shared row would block vectorisation
            for i in range(part * rows // parts, (part + 1) * rows // parts):
                row = probs[i]
                row[targets[i]] -= float32(1.0)
                for v in range(vocab):
                    g = row[v] * s
                    row[v] = g
                    col[v] += float64(g)
            column_parts[part] += col
        _add_parts(column_parts, columns)


def softmax_loss_(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Turn ``logits (N,V)`` into their softmax in place; returns the summed cross-entropy (float64).

    ``logits`` float32 and contiguous on CPU, ``targets (N,)`` int64.
    """
    parts = np.zeros(scan_numba.thread_parts(logits.size(0)), dtype=np.float64)
    with scan_numba.KERNEL_LOCK:
        return float(_forward_kernel(logits.detach().numpy(), targets.numpy(), parts))


def softmax_grad_(probs: torch.Tensor, targets: torch.Tensor, scale: float) -> torch.Tensor:
    """Turn ``probs`` into the loss gradient ``(probs - one_hot) * scale`` in place; returns its column sums."""
    parts = np.zeros((scan_numba.thread_parts(probs.size(0)), probs.size(1)), dtype=np.float64)
    columns = torch.empty(probs.size(1))
    with scan_numba.KERNEL_LOCK:
        _backward_kernel(probs.detach().numpy(), targets.numpy(), float(scale), parts, columns.numpy())
    return columns
