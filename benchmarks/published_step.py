"""The published training step, as a yardstick for the fast one.

:func:`published_losses` is the loss the original ``train.py`` differentiated:
the per-step forward (:meth:`LandauerLLM.forward_reference`), cross-entropy over
the ``(B*T, V)`` logits and ``mean((h_t - h_{t-1})**2)`` written as an
expression, all through plain autograd. Run as a script, this module is the
published loop as a whole program (Adam with its defaults, ``clip_grad_norm_``,
a zero state and a random batch every step, a log line every 100 steps), so
whole-process timings of ``python -m core.train`` have a like-for-like baseline:

    python benchmarks/published_step.py --data-path tiny_shakespeare.txt --steps 240
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data import get_batch, load_corpus  # noqa: E402
from core.hparams import TrainConfig  # noqa: E402
from core.model import LandauerLLM, Losses, ln_phi  # noqa: E402


def published_losses(model: LandauerLLM, x: torch.Tensor, y: torch.Tensor, temperature: float,
                     energy_weight: float) -> Losses:
    """The published loss over the per-step model; none of the project's shortcuts."""
    logits, trace, _ = model.forward_reference(x)
    content = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    if trace.size(0) < 2:
        energy = content.new_zeros(())
    else:
        energy = temperature * ln_phi(trace) * ((trace[1:] - trace[:-1]) ** 2).mean()
    return Losses(content + energy_weight * energy, content, energy)


def main(argv=None) -> int:
    defaults = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", default=defaults.data_path)
    ap.add_argument("--steps", type=int, default=defaults.steps)
    ap.add_argument("--seed", type=int, default=defaults.seed)
    args = ap.parse_args(argv)
    cfg = TrainConfig(data_path=args.data_path, steps=args.steps, seed=args.seed)
    corpus = load_corpus(cfg.data_path)
    torch.manual_seed(cfg.seed)
    model = LandauerLLM.from_config(cfg.model_kwargs(corpus.vocab_size))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    for step in range(1, cfg.steps + 1):
        x, y = get_batch(corpus.train_data, cfg.batch_size, cfg.seq_len, gen)
        losses = published_losses(model, x, y, cfg.temperature, cfg.energy_weight)
        optimizer.zero_grad()
        losses.total.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step:05d} | loss={losses.total.item():.4f} (content={losses.content.item():.4f}, "
                  f"energy={losses.energy.item():.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
