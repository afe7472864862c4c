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
from core.model import LandauerLLM
from core.optimizer import ClippedAdam


def backward_step(model: LandauerLLM, update: ClippedAdam, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                  *, loss_fn=None, average=None) -> tuple[float, float, float, float]:
    """Loss and gradients of one batch, clipped as published; the caller then calls ``update.step()``.

    Returns ``(total, content, energy, grad_norm)`` as floats (one device sync).
    The losses come from the fast path (:func:`~core.fused_loss.fused_grads`) unless
    ``loss_fn(x, y, temperature, energy_weight)`` gives them, differentiated by
    autograd: the benchmark passes the published step's loss to time both on
    identical work, distributed training the fused loss through DDP (and
    ``average``, which turns this rank's losses into the global batch's, in place).
    """
    update.zero_grad()
    if loss_fn is None:
        losses = fused_grads(model, x, y, cfg.temperature, cfg.energy_weight)  # no autograd needed
    else:
        losses = loss_fn(x, y, cfg.temperature, cfg.energy_weight)
        losses.total.backward()
    norm = update.clip()  # the norm is already global: DDP averaged the gradients
    values = torch.stack([losses.total.detach(), losses.content.detach(), losses.energy.detach()])
    if average is not None:
        average(values)
    total, content, energy = values.tolist()
    return total, content, energy, norm
