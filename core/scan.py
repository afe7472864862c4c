"""The elementwise recurrence over time, with a hand-derived backward.

For one layer, with ``u_t = W x_t + b`` precomputed for every step::

    a_t = angles + h_{t-1};  r_t = cos(a_t)
    h_t = tanh(u_t + h_{t-1} * r_t * scale)

Backward, with ``g_t`` the gradient arriving at ``h_t`` (from above and from
``h_{t+1}``)::

    gz_t      = g_t * (1 - h_t**2)                     -> grad of u_t
    grad_s   += sum_b gz_t * h_{t-1} * r_t
    g_{t-1}  += gz_t * scale * (r_t - h_{t-1} * sin(a_t))

Autograd over a per-step loop spends its time on per-op overhead (about a
dozen tiny ops per step and layer). The custom function below does the same
math in one pass each way: on CPU through the numba kernels in
:mod:`core.scan_numba` when numba is available, elsewhere (CUDA, MPS, or no
numba) through a plain torch loop without autograd bookkeeping.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from core import scan_numba


def _forward_torch(u: torch.Tensor, h0: torch.Tensor, scale: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    trace = torch.empty_like(u)
    h = h0
    for t in range(u.size(0)):
        r = torch.cos(angles + h)
        h = torch.tanh(u[t] + h * r * scale)
        trace[t] = h
    return trace


def _backward_torch(grad_trace, u, h0, scale, angles, trace):
    grad_u = torch.empty_like(u)
    grad_s = torch.zeros_like(scale)
    carry = torch.zeros_like(h0)
    for t in range(u.size(0) - 1, -1, -1):
        h_prev = trace[t - 1] if t > 0 else h0
        a = angles + h_prev
        r = torch.cos(a)
        h = trace[t]
        gz = (grad_trace[t] + carry) * (1 - h * h)
        grad_u[t] = gz
        grad_s += (gz * h_prev * r).sum(0)
        carry = gz * scale * (r - h_prev * torch.sin(a))
    return grad_u, carry, grad_s


def _inertia_grad(diff: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Gradient of ``coef/2 * sum_t d_t**2`` with respect to the trace, given ``d = h[1:] - h[:-1]``."""
    g = diff * coef
    out = torch.empty((diff.size(0) + 1, *diff.shape[1:]), dtype=diff.dtype, device=diff.device)
    out[0] = -g[0]
    torch.sub(g[:-1], g[1:], out=out[1:-1])
    out[-1] = g[-1]
    return out


class MeanSquaredStep(torch.autograd.Function):
    """``mean((h[1:] - h[:-1])**2)`` over a trace ``(T, ...)`` with a fused backward.

    The forward is the published expression. Autograd's backward for it would
    allocate and zero two full-size gradients (one per slice) and add them;
    here the gradient ``2/N * (d[t-1] - d[t])`` is written once.
    """

    @staticmethod
    def forward(ctx, trace):
        diff = trace[1:] - trace[:-1]
        ctx.save_for_backward(diff)
        return (diff**2).mean()

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved_tensors
        return _inertia_grad(diff, grad * 2.0 / diff.numel())


class LayerGrads(NamedTuple):
    """One layer's gradients from :func:`scan_backward`."""

    u: torch.Tensor | None  # (T,B,H); None when the input was gathered from a table
    h0: torch.Tensor  # (B,H)
    scale: torch.Tensor  # (H,)
    bias: torch.Tensor  # (H,): u's gradient summed over time and batch (the input bias's gradient)
    table: torch.Tensor | None  # (V,H) when the input was gathered: u's gradient summed per table row


def scan_forward(u, h0, scale, angles, *, use_numba: bool, keep: bool, inertia: bool, bias=None, table=None,
                 tokens=None):
    """One layer's forward: ``(trace, cos, sin, inertia mean)``.

    The input is ``u (T,B,H)`` plus ``bias (H,)`` if given, or ``table[tokens]``
    when ``tokens (T,B)`` is given (``u`` None): the first layer reads its
    projection of each symbol, so the numba kernel never writes the (T,B,H) input out. ``cos``/``sin`` are kept for
    the backward when ``keep`` (numba only; the torch loop recomputes them). The
    inertia mean, ``mean((h_t - h_{t-1})**2)`` over ``t >= 1``, is a 0-dim tensor
    when ``inertia`` (zero when ``T < 2``), else None.
    """
    steps = tokens.size(0) if tokens is not None else u.size(0)
    cos_a = sin_a = sq_sum = None
    if use_numba:
        trace, cos_a, sin_a, sq_sum = scan_numba.forward(u, h0, scale, angles, keep=keep, inertia=inertia and steps > 1,
                                                         bias=bias, table=table, tokens=tokens)
    else:
        if tokens is not None:
            u = F.embedding(tokens, table)
        if bias is not None:
            u = u + bias
        trace = _forward_torch(u, h0, scale, angles)
    msq = None
    if inertia:
        if steps < 2:
            msq = trace.new_zeros(())
        elif sq_sum is not None:
            msq = torch.tensor(sq_sum / trace[1:].numel(), dtype=trace.dtype)
        else:
            msq = ((trace[1:] - trace[:-1]) ** 2).mean()  # the published expression
    return trace, cos_a, sin_a, msq


def scan_backward(grad_trace, u, h0, scale, angles, trace, cos_a, sin_a, *, use_numba: bool,
                  inertia_grad=None, tokens=None, vocab: int = 0) -> LayerGrads:
    """Gradients of one layer (:class:`LayerGrads`).

    ``grad_trace`` must be contiguous. ``inertia_grad``, when given, is the
    gradient arriving at the inertia mean from :func:`scan_forward`. With
    ``tokens``, the forward gathered its input from a ``(vocab, H)`` table: the
    table's gradient replaces the input's (and ``u`` may be None on the numba path).
    """
    steps = trace.size(0)
    coef = None
    if inertia_grad is not None and steps > 1:
        coef = inertia_grad * 2.0 / trace[1:].numel()
    if use_numba:
        return LayerGrads(*scan_numba.backward(grad_trace, h0, scale, trace, cos_a, sin_a,
                                               0.0 if coef is None else float(coef), tokens=tokens, vocab=vocab))
    if coef is not None:
        grad_trace = grad_trace + _inertia_grad(trace[1:] - trace[:-1], coef)
    if tokens is not None and u is None:
        raise ValueError("the torch scan needs the gathered input u")
    grad_u, grad_h0, grad_s = _backward_torch(grad_trace, u, h0, scale, angles, trace)
    rows = grad_u.view(-1, grad_u.size(-1))
    table = None
    if tokens is not None:
        table = rows.new_zeros(vocab, rows.size(1)).index_add_(0, tokens.reshape(-1), rows)
        grad_u = None
    return LayerGrads(grad_u, grad_h0, grad_s, rows.sum(0), table)


class _ElementwiseScan(torch.autograd.Function):
    """Returns ``(trace, last state)``; the last state is its own output so that an
    unused final state costs nothing in the backward (indexing ``trace[-1]``
    would make autograd allocate and zero a full-size gradient for it)."""

    @staticmethod
    def forward(ctx, u, h0, scale, angles, use_numba):
        needs_grad = any(ctx.needs_input_grad[:3])
        trace, cos_a, sin_a, _ = scan_forward(u, h0, scale, angles, use_numba=use_numba, keep=needs_grad,
                                              inertia=False)
        ctx.use_numba = use_numba
        ctx.set_materialize_grads(False)
        if needs_grad:
            ctx.save_for_backward(u, h0, scale, angles, trace, cos_a, sin_a)
        return trace, trace[-1].clone()

    @staticmethod
    def backward(ctx, grad_trace, grad_last):
        u, h0, scale, angles, trace, cos_a, sin_a = ctx.saved_tensors
        if grad_trace is None:
            grad_trace = torch.zeros_like(trace)
        else:
            grad_trace = grad_trace.contiguous()
        if grad_last is not None:
            grad_trace = grad_trace.clone()
            grad_trace[-1] += grad_last
        grads = scan_backward(grad_trace, u, h0, scale, angles, trace, cos_a, sin_a, use_numba=ctx.use_numba)
        return grads.u, grads.h0, grads.scale, None, None


def numba_usable(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype == torch.float32 and scan_numba.available()


def use_numba_for(u: torch.Tensor, backend: str = "auto") -> bool:
    """Whether ``backend`` ("auto", "numba" or "torch") means the numba kernels for ``u``."""
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"unknown scan backend {backend!r}")
    if backend == "numba" and not numba_usable(u):
        raise RuntimeError("the numba scan needs float32 CPU tensors and the numba package")
    return backend == "numba" or (backend == "auto" and numba_usable(u))


def elementwise_scan(u: torch.Tensor, h0: torch.Tensor, scale: torch.Tensor, angles: torch.Tensor,
                     *, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Run the recurrence for one layer: ``u (T,B,H)``, ``h0 (B,H)`` -> ``(trace (T,B,H), last (B,H))``.

    ``backend``: "auto" (numba on float32 CPU tensors when available, else torch),
    "numba" or "torch".
    """
    use_numba = use_numba_for(u, backend)
    return _ElementwiseScan.apply(u.contiguous(), h0.contiguous(), scale, angles, use_numba)
