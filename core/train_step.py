"""One optimisation step of the published loop: the batch's losses, their gradients, the clip.

The trainer runs it every step; the speed benchmark times it against the
published step on the same batches, and distributed training passes its loss
through DDP. Adam's update itself is left to the caller (``update.step()``),
so the trainer can check the losses for NaN before any weight changes.
"""

from __future__ import annotations

import torch

from core.fused_loss import fused_grads
from core.hparams import TrainConfig
from core.model import LandauerLLM, compute_losses
from core.optimizer import ClippedAdam


def backward_step(model: LandauerLLM, update: ClippedAdam, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                  forward=None, *, loss_fn=None, average=None) -> tuple[float, float, float, float]:
    """Loss and gradients of one batch, clipped as published; the caller then calls ``update.step()``.

    Returns ``(total, content, energy, grad_norm)`` as floats (one device sync).
    ``forward`` defaults to the fast path (:func:`~core.fused_loss.fused_grads`);
    the benchmark passes the per-step reference to time both on identical work.
    Distributed training passes ``loss_fn`` (the fused loss through DDP) and
    ``average`` (turns this rank's losses into the global batch's, in place).
    """
    update.zero_grad()
    if loss_fn is None and forward is None:
        losses = fused_grads(model, x, y, cfg.temperature, cfg.energy_weight)  # no autograd needed
    else:
        if loss_fn is not None:
            losses = loss_fn(x, y, cfg.temperature, cfg.energy_weight)
        else:
            logits, trace, _ = forward(x)
            losses = compute_losses(logits, y, trace, cfg.temperature, cfg.energy_weight)
        losses.total.backward()
    norm = update.clip()  # the norm is already global: DDP averaged the gradients
    values = torch.stack([losses.total.detach(), losses.content.detach(), losses.energy.detach()])
    if average is not None:
        average(values)
    total, content, energy = values.tolist()
    return total, content, energy, norm
