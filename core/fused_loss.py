"""The training loss of the whole network with a hand-written backward: one autograd node, or none.

:meth:`LandauerLLM.forward` plus :func:`compute_losses` is the readable fast
path; autograd then runs some thirty small nodes per step, allocates a fresh
gradient for each and copies between layouts. A training step needs only the
three losses and the parameters' gradients, from a zero initial state, so
this module computes exactly that: the same products, scans and reductions,
with every gradient written once, in the layout it is used in.

The math is unchanged (the tests compare these losses and gradients with the
per-step reference path on random shapes and with the published golden
tensors); only the bookkeeping is gone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core import loss_numba
from core.model import LandauerLLM, Losses, energy_from_mean, ln_phi
from core.scan import scan_backward, scan_forward, use_numba_for


class _Step:
    """One batch: :meth:`forward` computes the losses and keeps what :meth:`backward` needs.

    Plain Python over tensors, so that the trainer can run it without autograd
    (:func:`fused_grads`) and DDP with it (:func:`fused_losses`, one autograd node).
    """

    def __init__(self, model: LandauerLLM, params: list[torch.Tensor], idx: torch.Tensor, targets: torch.Tensor,
                 temperature: float, energy_weight: float, use_numba: bool):
        self.model, self.params = model, [p.detach() for p in params]
        self.idx, self.targets = idx, targets
        self.temperature, self.energy_weight, self.use_numba = temperature, energy_weight, use_numba

    def forward(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        emb_w, hidden_scale, head_w, head_b, *linear_params = self.params
        idx, use_numba = self.idx, self.use_numba
        steps = idx.size(1)
        tokens = idx.t().contiguous()  # (T, B): time-major, as the scans run
        weights, biases = linear_params[0::2], linear_params[1::2]
        zero = head_w.new_zeros(idx.size(0), hidden_scale.size(1))
        gathered = emb_w.size(0) < tokens.numel()
        embedded = table = None
        if gathered:  # few symbols: project the V rows once, the scan reads them (LandauerLLM._first_projection)
            table = torch.addmm(biases[0], emb_w, weights[0].t())
            x = None
        else:
            embedded = F.embedding(tokens, emb_w)
            x = F.linear(embedded, weights[0], biases[0])
        layers = []
        top = len(weights) - 1
        for layer in range(len(weights)):
            # the numba scan adds the bias as it reads u (a pass over u fewer)
            u = x if layer == 0 else F.linear(x, weights[layer], None if use_numba else biases[layer])
            angles = self.model.rnn.angles(layer, zero.dtype, zero.device)
            gather = gathered and layer == 0
            if gather and not use_numba:
                u = F.embedding(tokens, table)  # the torch scan's backward needs the input itself
                gather = False
            trace, cos_a, sin_a, msq = scan_forward(
                None if gather else u.contiguous(), zero, hidden_scale[layer], angles, use_numba=use_numba,
                keep=True, inertia=layer == top, bias=biases[layer] if use_numba and layer > 0 else None,
                table=table if gather else None, tokens=tokens if gather else None)
            layers.append((u if not use_numba else None, trace, cos_a, sin_a))
            x = trace
        flat = x.view(-1, x.size(-1))
        logits = torch.addmm(head_b, flat, head_w.t())  # (T*B, V), time-major rows
        flat_targets = self.targets.t().reshape(-1)
        if use_numba:  # logits become probabilities in place
            content = torch.tensor(loss_numba.softmax_loss_(logits, flat_targets) / logits.size(0),
                                   dtype=logits.dtype)
            probs = logits
        else:
            probs = torch.log_softmax(logits, dim=1)  # log-probabilities until the backward
            content = F.nll_loss(probs, flat_targets)
        energy = energy_from_mean(msq, self.temperature) if steps > 1 else content.new_zeros(())
        total = content + self.energy_weight * energy
        self.saved = (tokens, gathered, embedded, layers, probs, flat_targets, steps)
        return total, content, energy

    def backward(self, grad_total, grad_content, grad_energy) -> list[torch.Tensor]:
        """The parameters' gradients, in the order of ``params``; frees what forward kept."""
        emb_w, hidden_scale, head_w, head_b, *linear_params = self.params
        weights = linear_params[0::2]
        tokens, gathered, embedded, layers, probs, flat_targets, steps = self.saved
        del self.saved  # free the saved activations as soon as possible
        use_numba, temperature = self.use_numba, self.temperature
        g_content = _sum_grads(grad_total, grad_content)
        g_energy = _sum_grads(None if grad_total is None else grad_total * self.energy_weight, grad_energy)

        # cross-entropy: (softmax - one_hot) / N, written over the probabilities in place
        scale = 0.0 if g_content is None else g_content / probs.size(0)
        g_logits = probs
        if use_numba:
            grad_head_b = loss_numba.softmax_grad_(g_logits, flat_targets, float(scale))
        else:
            g_logits.exp_()
            classes = g_logits.size(1)
            hits = torch.arange(0, g_logits.numel(), classes, device=g_logits.device) + flat_targets
            g_logits.view(-1).index_add_(0, hits, g_logits.new_full(hits.shape, -1.0))
            g_logits.mul_(scale)
            grad_head_b = g_logits.sum(0)
        top_trace = layers[-1][1]
        hidden = top_trace.size(-1)
        grad_head_w = g_logits.t().mm(top_trace.view(-1, hidden))
        grad_trace = g_logits.mm(head_w).view_as(top_trace)

        inertia_grad = None
        if g_energy is not None and steps > 1:
            inertia_grad = g_energy * (temperature * ln_phi(top_trace))
        zero = top_trace.new_zeros(top_trace.size(1), hidden)
        grad_scale = torch.empty_like(hidden_scale)
        grad_linear = [None] * len(linear_params)
        for layer in range(len(weights) - 1, -1, -1):
            u, trace, cos_a, sin_a = layers[layer]
            angles = self.model.rnn.angles(layer, trace.dtype, trace.device)
            gather = gathered and layer == 0
            grads = scan_backward(
                grad_trace, u, zero, hidden_scale[layer], angles, trace, cos_a, sin_a, use_numba=use_numba,
                inertia_grad=inertia_grad if layer == len(weights) - 1 else None,
                tokens=tokens if gather else None, vocab=emb_w.size(0))
            grad_scale[layer] = grads.scale
            grad_linear[2 * layer + 1] = grads.bias
            if layer > 0:
                rows = grads.u.view(-1, hidden)
                below = layers[layer - 1][1].view(-1, hidden)
                grad_linear[2 * layer] = rows.t().mm(below)
                grad_trace = rows.mm(weights[layer]).view_as(trace)
            elif gather:  # the rows were summed per symbol: on through the table's projection
                grad_linear[0] = grads.table.t().mm(emb_w)
                grad_emb = grads.table.mm(weights[0])
            else:
                rows = grads.u.view(-1, hidden)
                flat_emb = embedded.view(-1, emb_w.size(1))
                grad_linear[0] = rows.t().mm(flat_emb)
                grad_emb = torch.zeros_like(emb_w).index_add_(0, tokens.reshape(-1), rows.mm(weights[0]))
        return [grad_emb, grad_scale, grad_head_w, grad_head_b, *grad_linear]


class _FusedLosses(torch.autograd.Function):
    """``(total, content, energy)`` of a batch as one autograd node; inputs after the step are the parameters."""

    @staticmethod
    def forward(ctx, step: _Step, *params):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*params)  # (autograd then notices parameters changed in place before the backward)
        ctx.step = step
        return step.forward()

    @staticmethod
    def backward(ctx, grad_total, grad_content, grad_energy):
        step = ctx.step
        del ctx.step
        return (None, *step.backward(grad_total, grad_content, grad_energy))


def _sum_grads(a, b):
    if a is None:
        return b
    return a if b is None else a + b


def _params(model: LandauerLLM) -> list[torch.Tensor]:
    params = [model.token_embedding.weight, model.rnn.hidden_scale, model.output_head.weight,
              model.output_head.bias]
    for linear in model.rnn.input_linears:
        params += [linear.weight, linear.bias]
    return params


def _step(model, params, idx, targets, temperature, energy_weight, backend) -> _Step:
    use_numba = use_numba_for(params[0], backend)  # the loss kernels need what the scan kernels need
    return _Step(model, params, idx, targets, float(temperature), float(energy_weight), use_numba)


def fused_losses(model: LandauerLLM, idx: torch.Tensor, targets: torch.Tensor,
                 temperature: float, energy_weight: float, *, backend: str = "auto") -> Losses:
    """The losses of ``forward`` + :func:`compute_losses` from a zero state, as one autograd node."""
    params = _params(model)
    total, content, energy = _FusedLosses.apply(
        _step(model, params, idx, targets, temperature, energy_weight, backend), *params)
    return Losses(total, content, energy)


def fused_grads(model: LandauerLLM, idx: torch.Tensor, targets: torch.Tensor,
                temperature: float, energy_weight: float, *, backend: str = "auto") -> Losses:
    """:func:`fused_losses` and ``total.backward()`` in one call, without autograd.

    The gradients are added to the parameters' ``.grad`` as ``backward`` would
    (set when None); the returned losses are plain tensors. Spares the trainer
    the autograd engine's per-step bookkeeping; distributed training needs the
    autograd node (DDP reduces gradients from its hooks) and uses :func:`fused_losses`.
    """
    params = _params(model)
    step = _step(model, params, idx, targets, temperature, energy_weight, backend)
    with torch.no_grad():
        total, content, energy = step.forward()
        for p, grad in zip(params, step.backward(1.0, None, None), strict=True):
            if p.grad is None:
                p.grad = grad
            else:
                p.grad += grad
    return Losses(total, content, energy)
