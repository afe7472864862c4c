"""The Landauer LLM: a gate-free character RNN with golden-angle phase rotation.

Parameter names match the published code (``token_embedding``, ``rnn.hidden_scale``,
``rnn.input_linears.{l}``, ``output_head``) so state dicts move both ways.

One time step of layer ``l`` (``j = arange(H)``)::

    r     = cos(phase_l * j + h_prev)
    h_new = tanh(W_l x + b_l + h_prev * r * hidden_scale[l])

There is no hidden-to-hidden matrix, so :meth:`LandauerLLM.forward` projects
every time step of a layer in one matrix product and leaves only the
elementwise scan over time to :mod:`core.scan`. :meth:`LandauerLLM.forward_reference`
keeps the published per-step formulation as the readable reference.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.hparams import ModelConfig
from core.scan import MeanSquaredStep, elementwise_scan

PHI0 = 2.39996322972865332  # the golden angle in radians
PHI = (1.0 + math.sqrt(5.0)) / 2.0
_DEFAULT = ModelConfig(vocab_size=0)  # the constructor's defaults, declared in ModelConfig


class AperiodicStack(nn.Module):
    """The recurrent layers: input projections plus a per-unit scale of the rotated state."""

    def __init__(self, embed_dim: int, hidden_dim: int, num_layers: int, phase_scaling: float):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.phase_scaling = phase_scaling
        self.hidden_scale = nn.Parameter(torch.ones(num_layers, hidden_dim))
        self.input_linears = nn.ModuleList(
            nn.Linear(embed_dim if layer == 0 else hidden_dim, hidden_dim) for layer in range(num_layers)
        )
        self._angle_cache: dict[tuple, torch.Tensor] = {}  # constants, rebuilt per dtype/device

    def angles(self, layer: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``phase_l * j`` for ``j = 0..H-1``, rounded exactly as the published code did.

        Cached: generation calls this for every character of every layer.
        """
        key = (layer, dtype, device)
        cached = self._angle_cache.get(key)
        if cached is None:
            phi0 = torch.tensor(PHI0, dtype=torch.float32).to(dtype=dtype, device=device)
            phase = phi0 / (self.phase_scaling**layer)
            cached = phase * torch.arange(self.hidden_dim, dtype=dtype, device=device)
            self._angle_cache[key] = cached
        return cached

    def cell(self, layer: int, x: torch.Tensor, h_prev: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """One time step of one layer, written as published."""
        r = torch.cos(angles + h_prev)
        return torch.tanh(self.input_linears[layer](x) + h_prev * r * self.hidden_scale[layer])


class LandauerLLM(nn.Module):
    """The published model; its settings are a :class:`~core.hparams.ModelConfig` (``self.config``)."""

    def __init__(self, vocab_size: int, embed_dim: int = _DEFAULT.embed_dim,
                 hidden_dim: int = _DEFAULT.hidden_dim, num_layers: int = _DEFAULT.num_layers,
                 phase_scaling: float = _DEFAULT.phase_scaling):
        super().__init__()
        cfg = ModelConfig(vocab_size, embed_dim, hidden_dim, num_layers, phase_scaling)
        self.config = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.rnn = AperiodicStack(cfg.embed_dim, cfg.hidden_dim, cfg.num_layers, cfg.phase_scaling)
        self.output_head = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    @classmethod
    def from_config(cls, config: ModelConfig | dict) -> LandauerLLM:
        values = config.to_dict() if isinstance(config, ModelConfig) else dict(config)
        return cls(**{k: values[k] for k in ModelConfig.keys()})

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        p = self.output_head.weight
        return torch.zeros(self.config.num_layers, batch_size, self.config.hidden_dim,
                           dtype=p.dtype, device=device or p.device)

    def _initial_state(self, h0: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        return self.init_state(batch_size) if h0 is None else h0

    def forward(self, idx: torch.Tensor, h0: torch.Tensor | None = None, *, backend: str = "auto"):
        """Fast path: returns ``(logits (B,T,V), top_trace (T,B,H), h_last (L,B,H))``.

        Each layer's input projection runs for all time steps in one matrix
        product; the recurrence itself is an elementwise scan (:mod:`core.scan`).
        Training uses :func:`core.fused_loss.fused_losses`, the same math with
        the whole backward written out.
        """
        batch, _ = idx.shape
        h0 = self._initial_state(h0, batch)
        tokens = idx.t()  # (T, B): time-major for the scan
        finals = []
        x = None
        for layer, linear in enumerate(self.rnn.input_linears):
            if layer == 0:
                u = self._first_projection(tokens)
            else:
                u = F.linear(x, linear.weight, linear.bias)  # (T, B, H), all steps at once
            angles = self.rnn.angles(layer, u.dtype, u.device)
            x, last = elementwise_scan(u, h0[layer], self.rnn.hidden_scale[layer], angles, backend=backend)
            finals.append(last)
        logits = self.output_head(x).transpose(0, 1)
        return logits, x, torch.stack(finals)

    def _first_projection(self, tokens: torch.Tensor) -> torch.Tensor:
        """Layer 0's input ``W_0 e(token) + b_0`` for every position.

        A character model has few symbols, so projecting the V embedding rows
        once and gathering is cheaper than projecting all B*T positions; both
        compute the same dot products.
        """
        emb, linear = self.token_embedding, self.rnn.input_linears[0]
        if emb.num_embeddings < tokens.numel():
            return F.embedding(tokens, F.linear(emb.weight, linear.weight, linear.bias))
        return F.linear(emb(tokens), linear.weight, linear.bias)

    def forward_reference(self, idx: torch.Tensor, h0: torch.Tensor | None = None):
        """Per-time-step path mirroring the published formulation; same outputs as :meth:`forward`."""
        batch, steps = idx.shape
        state = list(self._initial_state(h0, batch).unbind(0))
        emb = self.token_embedding(idx)
        dtype, device = emb.dtype, emb.device
        angles = [self.rnn.angles(layer, dtype, device) for layer in range(self.config.num_layers)]
        top = []
        for t in range(steps):
            x = emb[:, t]
            for layer in range(self.config.num_layers):
                state[layer] = self.rnn.cell(layer, x, state[layer], angles[layer])
                x = state[layer]
            top.append(x)
        trace = torch.stack(top)  # (T, B, H)
        logits = self.output_head(trace).transpose(0, 1)
        return logits, trace, torch.stack(state)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one character for a batch: ``tokens (B,)``, ``state (L,B,H)`` -> ``(logits (B,V), state)``.

        Generation uses this, so it needs constant memory however long it runs.
        """
        x = self.token_embedding(tokens)
        new = []
        for layer in range(self.config.num_layers):
            x = self.rnn.cell(layer, x, state[layer], self.rnn.angles(layer, x.dtype, x.device))
            new.append(x)
        return self.output_head(x), torch.stack(new)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass
class Losses:
    total: torch.Tensor
    content: torch.Tensor
    energy: torch.Tensor  # unweighted


def ln_phi(like: torch.Tensor) -> torch.Tensor:
    """``ln(phi)`` computed as a float32 tensor (as published), in ``like``'s dtype and device."""
    return _ln_phi(like.device, like.dtype)


@functools.lru_cache(maxsize=16)
def _ln_phi(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # a constant, made once per device and dtype: three tensor operations a call add up in a training step
    return torch.log(torch.tensor(PHI, dtype=torch.float32)).to(device, dtype)


def energy_from_mean(mean_sq_step: torch.Tensor, temperature: float) -> torch.Tensor:
    """``temperature * ln(phi) * mean((h_t - h_{t-1})**2)``, the unweighted energy."""
    return temperature * ln_phi(mean_sq_step) * mean_sq_step


def compute_losses(logits: torch.Tensor, targets: torch.Tensor, top_trace: torch.Tensor,
                   temperature: float, energy_weight: float) -> Losses:
    """Content cross-entropy plus the weighted thermodynamic-inertia energy.

    ``energy = temperature * ln(phi) * mean((h_t - h_{t-1})**2)`` over the top
    layer's trace ``(T, B, H)``, excluding the initial state; zero when ``T < 2``.
    """
    if logits.dim() == 3 and not logits.is_contiguous() and logits.transpose(0, 1).is_contiguous():
        # Both forward paths return a (B,T,V) view of time-major logits. The loss is a
        # mean over positions, so visiting them as they lie in memory spares two copies.
        logits, targets = logits.transpose(0, 1), targets.t()
    content = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    if top_trace.size(0) < 2:
        energy = torch.zeros((), dtype=content.dtype, device=content.device)
    else:
        energy = energy_from_mean(MeanSquaredStep.apply(top_trace), temperature)
    return Losses(content + energy_weight * energy, content, energy)
