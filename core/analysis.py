"""What a trained model makes of a text: per-character surprise, rank, state motion, states.

:func:`analyse_text` reads a text once from a zero state with the fast path of
:meth:`core.model.LandauerLLM.forward` (each layer's input projection for all
positions in one matrix product, then the elementwise scan of :mod:`core.scan`)
and keeps, for every predicted character, what the model expected there. Long
texts are read in chunks of the time axis, carrying the state from one chunk
to the next, so only the per-character results grow with the text.

Everything returned is plain numpy, so reports, plots and the studio need no torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.model import LandauerLLM, ln_phi
from core.sampling import PromptError, encode_prompt  # the prompt's vocabulary check
from core.scan import elementwise_scan

DEFAULT_CHUNK = 16384  # time steps per pass: a few MB per layer at the default width
TOP_K = 5
TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class AnalysisSummary:
    """One text's totals; ``energy`` is None when the run's temperature is unknown."""

    n_chars: int
    n_predicted: int  # n_chars - 1: the first character has nothing before it
    bits_per_char: float
    mean_surprise: float  # nats per character: the content loss (cross-entropy) on this text
    mean_motion: float  # mean squared step of the top layer's state
    top1_accuracy: float  # share of characters the model ranked first
    temperature: float | None
    energy: float | None  # temperature * ln(phi) * mean_motion, the unweighted energy term


@dataclass
class TextAnalysis:
    """Per-character results for ``text`` (``n`` characters, ids ``ids``).

    Row ``i`` of ``probs``, ``surprise``, ``rank`` and ``motion`` belongs to
    character ``i + 1``: it is what the model expected after reading ``text[:i+1]``.
    """

    text: str
    ids: np.ndarray  # (n,) int64
    itos: dict[int, str]
    probs: np.ndarray  # (n-1, V) float32
    surprise: np.ndarray  # (n-1,) float32, nats
    rank: np.ndarray  # (n-1,) int64, 1 = the model's favourite
    motion: np.ndarray  # (n-1,) float32
    hidden: np.ndarray | None = None  # (L, n, H) float32 with keep_hidden, else None
    temperature: float | None = None

    def summary(self) -> AnalysisSummary:
        mean_surprise = float(self.surprise.mean(dtype=np.float64))
        mean_motion = float(self.motion.mean(dtype=np.float64))
        energy = None
        if self.temperature is not None:
            energy = float(self.temperature * float(ln_phi(torch.zeros(()))) * mean_motion)
        return AnalysisSummary(
            n_chars=len(self.text),
            n_predicted=len(self.surprise),
            bits_per_char=mean_surprise / math.log(2.0),
            mean_surprise=mean_surprise,
            mean_motion=mean_motion,
            top1_accuracy=float((self.rank == 1).mean()),
            temperature=self.temperature,
            energy=energy,
        )

    def top_k(self, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` likeliest characters at each position, best first: ids ``(n-1,k)`` int64, probs ``(n-1,k)`` float32."""
        k = max(1, min(int(k), self.probs.shape[1]))
        values, ids = torch.topk(torch.from_numpy(self.probs), k, dim=1)
        return ids.numpy(), values.numpy()


def _encode_text(text: str, itos: Mapping) -> list[int]:
    if not isinstance(text, str):
        raise TypeError(f"the text must be a str, got {type(text).__name__}")
    if len(text) < 2:
        raise ValueError(f"the text has {len(text)} character{'s' if len(text) != 1 else ''}; "
                         "analysis needs at least 2 (the first is only read, the rest are predicted)")
    stoi = {ch: int(i) for i, ch in itos.items()}
    try:
        return encode_prompt(text, stoi)
    except PromptError as exc:
        shown = ", ".join(repr(ch) for ch in exc.missing)
        raise PromptError(f"the text has characters the model does not know: {shown}",
                          exc.missing) from None


@torch.no_grad()
def layer_states(model: LandauerLLM, tokens: torch.Tensor, state: torch.Tensor,
                 *, backend: str = "auto") -> list[torch.Tensor]:
    """Every layer's state after each token: ``tokens (T,)``, ``state (L,H)`` -> ``L`` tensors ``(T,H)``.

    The same computation as :meth:`LandauerLLM.forward` for one sequence, but it
    returns all layers' traces (the model returns only the top one). The last
    row of each trace is that layer's state to carry into the next chunk.
    """
    rnn = model.rnn
    emb = model.token_embedding.weight
    traces = []
    x = None
    for layer, linear in enumerate(rnn.input_linears):
        weight, bias = linear.weight.detach(), linear.bias.detach()
        if layer == 0:  # project the V embedding rows once, then gather (as forward does)
            u = F.embedding(tokens, F.linear(emb.detach(), weight, bias))
        else:
            u = F.linear(x, weight, bias)
        angles = rnn.angles(layer, u.dtype, u.device)
        trace, _ = elementwise_scan(u.unsqueeze(1), state[layer].unsqueeze(0),
                                    rnn.hidden_scale[layer].detach(), angles, backend=backend)
        x = trace.squeeze(1)
        traces.append(x)
    return traces


@torch.no_grad()
def analyse_text(model: LandauerLLM, itos: Mapping, text: str, *, keep_hidden: bool = False,
                 temperature: float | None = None, chunk_size: int = DEFAULT_CHUNK,
                 backend: str = "auto") -> TextAnalysis:
    """Read ``text`` once from a zero state and record what the model expected at each character.

    ``itos`` maps token ids to characters (as a checkpoint stores it). A text
    with characters outside it raises :class:`core.sampling.PromptError`
    naming them; fewer than 2 characters raise ``ValueError``. ``temperature``
    (the run's energy temperature) only feeds :meth:`TextAnalysis.summary`.
    ``chunk_size`` bounds the time steps held at once; results do not depend on it.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    itos = {int(k): v for k, v in itos.items()}
    if len(itos) != model.config.vocab_size:
        raise ValueError(f"the vocabulary has {len(itos)} characters but the model "
                         f"predicts {model.config.vocab_size}")
    ids_list = _encode_text(text, itos)
    n = len(ids_list)
    cfg = model.config
    device = model.output_head.weight.device
    dtype = model.output_head.weight.dtype
    ids = torch.tensor(ids_list, dtype=torch.long)
    ids_dev = ids.to(device)
    head_w, head_b = model.output_head.weight.detach(), model.output_head.bias.detach()

    # Results live in CPU tensors that share memory with the returned numpy arrays.
    probs = torch.empty(n - 1, cfg.vocab_size, dtype=torch.float32)
    surprise = torch.empty(n - 1, dtype=torch.float32)
    rank = torch.empty(n - 1, dtype=torch.int64)
    motion = torch.empty(n - 1, dtype=torch.float32)
    hidden = torch.empty(cfg.num_layers, n, cfg.hidden_dim, dtype=torch.float32) if keep_hidden else None

    state = torch.zeros(cfg.num_layers, cfg.hidden_dim, dtype=dtype, device=device)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        traces = layer_states(model, ids_dev[start:stop], state, backend=backend)
        top = traces[-1]
        if hidden is not None:
            for layer, trace in enumerate(traces):
                hidden[layer, start:stop].copy_(trace)
        # Motion of reading char t needs the state before it: the previous chunk's last one.
        if start > 0:
            motion[start - 1] = ((top[0] - state[-1]) ** 2).mean()
        if stop - start > 1:
            step = top[1:] - top[:-1]
            motion[start:stop - 1].copy_(step.mul_(step).mean(dim=1))
        state = torch.stack([trace[-1] for trace in traces])
        # Position t predicts char t+1; the last character predicts nothing here.
        last = min(stop, n - 1)
        if last > start:
            logits = F.linear(top[:last - start], head_w, head_b).float()
            target = ids_dev[start + 1:last + 1].unsqueeze(1)
            rank[start:last].copy_(1 + torch.count_nonzero(logits > logits.gather(1, target), dim=1))
            logp = torch.log_softmax(logits, dim=1)
            surprise[start:last].copy_(logp.gather(1, target).squeeze(1).neg_())
            probs[start:last].copy_(logp.exp_())
    return TextAnalysis(text=text, ids=ids.numpy(), itos=itos, probs=probs.numpy(),
                        surprise=surprise.numpy(), rank=rank.numpy(), motion=motion.numpy(),
                        hidden=None if hidden is None else hidden.numpy(),
                        temperature=None if temperature is None else float(temperature))


def checkpoint_temperature(info) -> float | None:
    """The energy temperature a checkpoint's run trained with, when it records one."""
    for source in (info.train_config, info.args):
        value = (source or {}).get("temperature")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def analyse_checkpoint(path: str | os.PathLike, text: str, *, device: str | torch.device = "cpu",
                       keep_hidden: bool = False, temperature: float | None = None,
                       chunk_size: int = DEFAULT_CHUNK) -> TextAnalysis:
    """:func:`analyse_text` with the model of a checkpoint; the temperature defaults to the run's."""
    from core.checkpoint import load_model

    model, itos, info = load_model(path, device)
    if temperature is None:
        temperature = checkpoint_temperature(info)
    return analyse_text(model, itos, text, keep_hidden=keep_hidden, temperature=temperature,
                        chunk_size=chunk_size)


# --------------------------------------------------------------------------- interpretation


def phase_angles(model: LandauerLLM, hidden: np.ndarray, position: int) -> np.ndarray:
    """The rotation angles ``(phase_l * j + h_prev) mod 2pi`` each layer uses to read ``text[position]``.

    ``hidden (L, n, H)`` is :attr:`TextAnalysis.hidden`; ``h_prev`` is each layer's
    state before that character (zero for position 0). Returns ``(L, H)`` float32
    in ``[0, 2pi)``: where each unit sits on its phase circle.
    """
    layers, n, width = hidden.shape
    if layers != model.config.num_layers or width != model.config.hidden_dim:
        raise ValueError(f"hidden has shape {hidden.shape}, but the model has "
                         f"{model.config.num_layers} layers of {model.config.hidden_dim} units")
    if not 0 <= position < n:
        raise IndexError(f"position {position} is outside the text (0..{n - 1})")
    out = np.empty((layers, width), dtype=np.float32)
    for layer in range(layers):
        angles = model.rnn.angles(layer, torch.float32, torch.device("cpu")).numpy()
        h_prev = hidden[layer, position - 1] if position > 0 else np.zeros(width, np.float32)
        a = (angles + h_prev.astype(np.float32)).astype(np.float64)  # the cell's float32 sum
        out[layer] = np.mod(a, TWO_PI)
    return out


def rank_units(hidden_layer: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Units ordered by how differently they behave inside ``[start, end)`` than outside it.

    ``hidden_layer (n, H)`` is one layer's states (``hidden[l]``). The score is
    the standardised mean difference (Cohen's d, pooled standard deviation) of
    each unit's activation inside vs outside the span; positive means higher
    inside. Returns ``(unit ids (H,) int64, scores (H,) float64)`` sorted by
    ``|score|``, largest first.
    """
    h = np.asarray(hidden_layer, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"hidden_layer must be (n, H), got shape {h.shape}")
    n = h.shape[0]
    if not 0 <= start < end <= n:
        raise ValueError(f"the span [{start}, {end}) must be non-empty and inside 0..{n}")
    if end - start == n:
        raise ValueError("the span covers the whole text; there is nothing outside to compare with")
    inside = h[start:end]
    outside = np.concatenate([h[:start], h[end:]])
    n_in, n_out = len(inside), len(outside)
    ss = inside.var(axis=0) * n_in + outside.var(axis=0) * n_out  # sums of squared deviations
    dof = n_in + n_out - 2
    pooled = np.sqrt(ss / dof) if dof > 0 else np.zeros(h.shape[1])
    diff = inside.mean(axis=0) - outside.mean(axis=0)
    tiny = np.finfo(np.float64).eps * (1.0 + np.abs(h).max())
    scores = diff / np.maximum(pooled, tiny)  # a constant unit scores 0, not inf, unless it moves
    order = np.argsort(-np.abs(scores), kind="stable")
    return order.astype(np.int64), scores[order]


def compare(a: TextAnalysis, b: TextAnalysis) -> np.ndarray:
    """Per-character surprise of ``b`` minus that of ``a`` (nats, ``(n-1,)`` float32).

    Both must analyse the same text (e.g. two checkpoints of one run): negative
    values are characters ``b`` predicts better than ``a``.
    """
    if a.text != b.text:
        raise ValueError("the two analyses are of different texts; compare needs the same text")
    return (b.surprise - a.surprise).astype(np.float32)
