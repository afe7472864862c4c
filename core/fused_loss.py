"""The training loss of the whole network as one autograd node, with a hand-written backward.

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

from core.model import LandauerLLM, Losses, energy_from_mean, ln_phi
from core.scan import scan_backward, scan_forward, use_numba_for


class _FusedLosses(torch.autograd.Function):
    """``(total, content, energy)`` of a batch; inputs after the flags are the parameters."""

    @staticmethod
    def forward(ctx, idx, targets, temperature, energy_weight, use_numba, model,
                emb_w, hidden_scale, head_w, head_b, *linear_params):
        steps = idx.size(1)
        tokens = idx.t().contiguous()  # (T, B): time-major, as the scans run
        weights, biases = linear_params[0::2], linear_params[1::2]
        zero = head_w.new_zeros(idx.size(0), hidden_scale.size(1))
        gathered = emb_w.size(0) < tokens.numel()
        embedded = None
        if gathered:  # few symbols: project the V rows once, then gather (LandauerLLM._first_projection)
            x = F.embedding(tokens, torch.addmm(biases[0], emb_w, weights[0].t()))
        else:
            embedded = F.embedding(tokens, emb_w)
            x = F.linear(embedded, weights[0], biases[0])
        layers = []
        top = len(weights) - 1
        for layer in range(len(weights)):
            u = x if layer == 0 else F.linear(x, weights[layer], biases[layer])
            angles = model.rnn.angles(layer, u.dtype, u.device)
            trace, cos_a, sin_a, msq = scan_forward(u.contiguous(), zero, hidden_scale[layer], angles,
                                                    use_numba=use_numba, keep=True, inertia=layer == top)
            layers.append((u if not use_numba else None, trace, cos_a, sin_a))
            x = trace
        flat = x.view(-1, x.size(-1))
        logits = torch.addmm(head_b, flat, head_w.t())  # (T*B, V), time-major rows
        flat_targets = targets.t().reshape(-1)
        log_probs = torch.log_softmax(logits, dim=1)
        content = F.nll_loss(log_probs, flat_targets)
        energy = energy_from_mean(msq, temperature) if steps > 1 else content.new_zeros(())
        total = content + energy_weight * energy

        ctx.set_materialize_grads(False)
        ctx.save_for_backward(emb_w, hidden_scale, head_w, *linear_params)
        ctx.run = (tokens, gathered, embedded, layers, log_probs, flat_targets,
                   temperature, energy_weight, use_numba, model, steps)
        return total, content, energy

    @staticmethod
    def backward(ctx, grad_total, grad_content, grad_energy):
        emb_w, hidden_scale, head_w, *linear_params = ctx.saved_tensors
        weights = linear_params[0::2]
        (tokens, gathered, embedded, layers, log_probs, flat_targets,
         temperature, energy_weight, use_numba, model, steps) = ctx.run
        del ctx.run  # free the saved activations as soon as possible
        g_content = _sum_grads(grad_total, grad_content)
        g_energy = _sum_grads(None if grad_total is None else grad_total * energy_weight, grad_energy)

        # cross-entropy: (softmax - one_hot) / N, written over the log-probabilities in place
        g_logits = log_probs.exp_()
        classes = g_logits.size(1)
        hits = torch.arange(0, g_logits.numel(), classes, device=g_logits.device) + flat_targets
        g_logits.view(-1).index_add_(0, hits, g_logits.new_full(hits.shape, -1.0))
        if g_content is None:
            g_logits.zero_()
        else:
            g_logits.mul_(g_content / g_logits.size(0))
        top_trace = layers[-1][1]
        hidden = top_trace.size(-1)
        grad_head_w = g_logits.t().mm(top_trace.view(-1, hidden))
        grad_head_b = g_logits.sum(0)
        grad_trace = g_logits.mm(head_w).view_as(top_trace)

        inertia_grad = None
        if g_energy is not None and steps > 1:
            inertia_grad = g_energy * (temperature * ln_phi(top_trace))
        zero = top_trace.new_zeros(top_trace.size(1), hidden)
        grad_scale = torch.empty_like(hidden_scale)
        grad_linear = [None] * len(linear_params)
        for layer in range(len(weights) - 1, -1, -1):
            u, trace, cos_a, sin_a = layers[layer]
            angles = model.rnn.angles(layer, trace.dtype, trace.device)
            grad_u, _, grad_scale[layer] = scan_backward(
                grad_trace, u, zero, hidden_scale[layer], angles, trace, cos_a, sin_a, use_numba=use_numba,
                inertia_grad=inertia_grad if layer == len(weights) - 1 else None)
            rows = grad_u.view(-1, hidden)
            if layer > 0:
                below = layers[layer - 1][1].view(-1, hidden)
                grad_linear[2 * layer] = rows.t().mm(below)
                grad_linear[2 * layer + 1] = rows.sum(0)
                grad_trace = rows.mm(weights[layer]).view_as(trace)
            elif gathered:
                # sum the rows per symbol, then through the table's projection
                grad_table = rows.new_zeros(emb_w.size(0), hidden).index_add_(0, tokens.reshape(-1), rows)
                grad_linear[0] = grad_table.t().mm(emb_w)
                grad_linear[1] = grad_table.sum(0)
                grad_emb = grad_table.mm(weights[0])
            else:
                flat_emb = embedded.view(-1, emb_w.size(1))
                grad_linear[0] = rows.t().mm(flat_emb)
                grad_linear[1] = rows.sum(0)
                grad_emb = torch.zeros_like(emb_w).index_add_(0, tokens.reshape(-1), rows.mm(weights[0]))
        return (None, None, None, None, None, None,
                grad_emb, grad_scale, grad_head_w, grad_head_b, *grad_linear)


def _sum_grads(a, b):
    if a is None:
        return b
    return a if b is None else a + b


def fused_losses(model: LandauerLLM, idx: torch.Tensor, targets: torch.Tensor,
                 temperature: float, energy_weight: float, *, backend: str = "auto") -> Losses:
    """The losses of ``forward`` + :func:`compute_losses` from a zero state, as one autograd node."""
    params = [model.token_embedding.weight, model.rnn.hidden_scale, model.output_head.weight,
              model.output_head.bias]
    for linear in model.rnn.input_linears:
        params += [linear.weight, linear.bias]
    use_numba = use_numba_for(params[0], backend)
    total, content, energy = _FusedLosses.apply(idx, targets, float(temperature), float(energy_weight),
                                                use_numba, model, *params)
    return Losses(total, content, energy)
