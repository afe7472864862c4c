"""The published optimiser (Adam, clipping by the global gradient norm) and how a step runs it.

:class:`torch.optim.Adam` always owns the state (``exp_avg``, ``exp_avg_sq``,
``step``), so checkpoints, resume and ``state_dict`` are PyTorch's own. On CPU
with float32 parameters and numba, :class:`ClippedAdam` runs the clip and the
update in two compiled passes over all parameters instead: for the default
model's 100k numbers, ``clip_grad_norm_`` plus ``Optimizer.step`` spend about
0.4 ms per step on bookkeeping (grouping tensors, per-tensor norms, hooks)
around some 20 microseconds of arithmetic. The update is Adam's formula as
PyTorch writes it (``lerp`` of the first moment, bias corrections in float64),
in float32; it agrees with ``torch.optim.Adam`` to float32 rounding (tested).
Elsewhere (CUDA, MPS, no numba, other settings) it calls PyTorch.
"""

from __future__ import annotations

import math

import torch

from core import scan_numba

CLIP_EPS = 1e-6  # clip_grad_norm_'s: coefficient = max_norm / (norm + 1e-6), at most 1

_ERROR = scan_numba.unavailable_reason()

if _ERROR is None:
    import numpy as np
    from numba import float32, float64, njit

    from core.scan_numba import _JIT

    # A float64 sum of squares, reordered (vectorised): its rounding is far below float32's.
    @njit(**dict(_JIT, fastmath={"reassoc", "contract"}))
    def _sum_of_squares(grads):
        total = 0.0
        for k in range(len(grads)):
            g = grads[k]
            for i in range(g.shape[0]):
                total += float64(g[i]) * float64(g[i])
        return total

    @njit(**_JIT)
    def _clipped_adam(params, exp_avgs, exp_avg_sqs, steps, grads, coef, lr, beta1, beta2, eps):
        """Count the step, scale each gradient by ``coef`` (in place, as clipping leaves it), then
        Adam per element. ``steps[k]`` is parameter k's float32 step counter (one element)."""
        c = float32(coef)
        one_minus_b1 = float32(1.0 - beta1)
        b2 = float32(beta2)
        one_minus_b2 = float32(1.0 - beta2)
        e = float32(eps)
        for k in range(len(params)):
            p, g, m, v = params[k], grads[k], exp_avgs[k], exp_avg_sqs[k]
            steps[k][0] += float32(1.0)
            step = float64(steps[k][0])
            step_size = float32(lr / (1.0 - beta1**step))  # bias corrections in float64, as torch
            bc2_sqrt = float32(np.sqrt(1.0 - beta2**step))
            for i in range(p.shape[0]):
                gi = g[i] * c
                g[i] = gi
                mi = m[i] + one_minus_b1 * (gi - m[i])  # torch's lerp(exp_avg, grad, 1 - beta1)
                vi = b2 * v[i] + one_minus_b2 * gi * gi
                m[i] = mi
                v[i] = vi
                p[i] = p[i] - step_size * mi / (np.sqrt(vi) / bc2_sqrt + e)


def make_optimizer(params: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """The published optimiser: Adam with default betas.

    On CPU and CUDA, PyTorch's fused Adam: one kernel for all parameters, the
    same update rounded differently in the last bit (the tests hold it to the
    default implementation within float32 rounding). Elsewhere ``foreach``,
    which is bit-identical to the loop. On CPU, :class:`ClippedAdam` usually
    runs the update itself.
    """
    devices = {p.device.type for p in params}
    if devices <= {"cpu", "cuda"}:
        return torch.optim.Adam(params, lr=lr, fused=True)
    return torch.optim.Adam(params, lr=lr, foreach=True)


def with_implementation(state: dict, optimizer: torch.optim.Optimizer) -> dict:
    """A saved optimiser state that will run with ``optimizer``'s implementation.

    Loading a state also loads the flags it was saved with (``fused``,
    ``foreach``); a run saved by an older version or on another device resumes
    with the implementation chosen for this one instead.
    """
    flags = {k: optimizer.defaults.get(k) for k in ("fused", "foreach")}
    return {**state, "param_groups": [{**group, **flags} for group in state["param_groups"]]}


def _flat(t: torch.Tensor):
    return t.detach().view(-1).numpy()


class ClippedAdam:
    """Clip the gradients by their global norm, then take ``optimizer``'s step.

    ``clip()`` returns the norm before clipping (what ``clip_grad_norm_``
    returns; ``max_norm <= 0`` means no clipping); ``step()`` applies the update.
    The trainer checks the norm between the two, so a NaN never reaches the weights.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_norm: float):
        self.optimizer = optimizer
        self.max_norm = float(max_norm)
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.compiled = _compiled_ok(optimizer, self.params)
        self._coef = 1.0
        self._views = None  # see _state_views

    def zero_grad(self) -> None:
        """``optimizer.zero_grad(set_to_none=True)`` without its wrapper (about 80 microseconds a call)."""
        for p in self.params:
            p.grad = None

    def clip(self) -> float:
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.compiled and len(grads) == len(self.params):
            norm = math.sqrt(_sum_of_squares(tuple(_flat(g) for g in grads)))
            self._coef = 1.0
            if self.max_norm > 0:  # as clip_grad_norm_, in float32: never above 1
                coef = np.float32(self.max_norm) / (np.float32(norm) + np.float32(CLIP_EPS))
                self._coef = float(min(coef, np.float32(1.0)))
            return norm
        if self.max_norm > 0:
            return float(torch.nn.utils.clip_grad_norm_(self.params, self.max_norm))
        if not grads:
            return 0.0
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))

    def step(self) -> None:
        if not self.compiled or any(p.grad is None for p in self.params):
            self.optimizer.step()
            return
        group = self.optimizer.param_groups[0]
        (beta1, beta2) = group["betas"]
        _clipped_adam(*self._state_views(), tuple(_flat(p.grad) for p in self.params), self._coef,
                      float(group["lr"]), float(beta1), float(beta2), float(group["eps"]))
        self._coef = 1.0

    def _state_views(self) -> tuple:
        """numpy views of the parameters and their Adam state, made again only when the
        optimiser's state tensors change (its first step, ``load_state_dict``)."""
        tensors = []
        for p in self.params:
            state = self.optimizer.state[p]
            if not state:  # created as torch.optim.Adam creates it on its first step
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            tensors += (state["exp_avg"], state["exp_avg_sq"], state["step"])
        if self._views is None or any(a is not b for a, b in zip(tensors, self._views[0], strict=True)):
            self._views = (tensors, (
                tuple(_flat(p) for p in self.params), tuple(_flat(t) for t in tensors[0::3]),
                tuple(_flat(t) for t in tensors[1::3]), tuple(_flat(t) for t in tensors[2::3])))
        return self._views[1]


def _compiled_ok(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> bool:
    """Whether the compiled update may stand in for ``optimizer.step()``: a fused Adam (the
    choice of :func:`make_optimizer`; a default Adam keeps its own loop) on float32 CPU tensors."""
    if not scan_numba.available() or type(optimizer) is not torch.optim.Adam:
        return False
    if not optimizer.defaults.get("fused"):
        return False
    if len(optimizer.param_groups) != 1 or not params:
        return False
    group = optimizer.param_groups[0]
    if group["weight_decay"] or group["amsgrad"] or group["maximize"] or group.get("differentiable"):
        return False
    if isinstance(group["lr"], torch.Tensor) or isinstance(group["betas"][0], torch.Tensor):
        return False
    return all(p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous() for p in params)
