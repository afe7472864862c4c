"""A numba kernel that generates text on the CPU without a torch call per character.

Each character of the torch loop costs a dozen small torch operations (embedding,
two cells, the head, softmax, sampling), each with microseconds of dispatch for
nanoseconds of arithmetic. Here one compiled call advances the state and samples a
whole chunk of characters over float32 numpy views of the weights; the caller
yields them one by one and asks for the next chunk, so text still streams and a
stop request is seen between chunks (a chunk of 256 characters takes about a
millisecond for the default model).

Numerics follow :meth:`core.model.LandauerLLM.step`: the products and sums of one
cell (``phase*j + h``, ``h * r * scale``, ``u + ...``) are float32 in the published
order, ``cos``/``tanh`` are the scan kernels' polynomials (within one float32 ulp of
torch's), and the matrix-vector products accumulate in float32 in their own order,
so logits agree with the torch path within float32 rounding, not bit for bit.

Sampling draws from the same distribution as :func:`core.sampling.sample_token`
(temperature, top-k with ties kept, greedy at temperature 0), but with its own
random stream (splitmix64): one seed always gives the same text here, a different
text than the torch path gives for that seed.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import torch

from core import scan_numba

_ERROR = scan_numba.unavailable_reason()

FIRST_CHUNK = 16  # the first characters come quickly ...
MAX_CHUNK = 256  # ... then chunks grow to this, about a millisecond of work for the default model


def available() -> bool:
    """Whether the kernel can run (numba imported and not disabled)."""
    return scan_numba.available()


if _ERROR is None:
    import numpy as np
    from numba import float32, float64, njit

    # _JIT: strict float32 arithmetic (no fastmath) so each cell rounds as the published code.
    from core.scan_numba import _JIT, _cos, _tanh

    # Matrix-vector products may reorder their sums (like any BLAS): still float32, and
    # closer to the exact sums than a sequential loop.
    _MATVEC = dict(_JIT, fastmath={"reassoc", "contract"})

    _GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
    _MIX1 = np.uint64(0xBF58476D1CE4E5B9)
    _MIX2 = np.uint64(0x94D049BB133111EB)
    _S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)

    @njit(**_JIT)
    def _uniform(rng):
        """splitmix64: a uniform double in [0, 1) from the 64-bit state ``rng[0]``."""
        z = rng[0] + _GOLDEN_GAMMA
        rng[0] = z
        z = (z ^ (z >> _S30)) * _MIX1
        z = (z ^ (z >> _S27)) * _MIX2
        z = z ^ (z >> _S31)
        return float64(z >> _S11) * (1.0 / 9007199254740992.0)

    @njit(**_MATVEC)
    def _matvec(w, b, x, out):
        """``out = w @ x + b`` in float32; each dot product is summed in vector lanes."""
        for j in range(w.shape[0]):
            row = w[j]
            s = float32(0.0)
            for k in range(x.shape[0]):
                s += row[k] * x[k]
            out[j] = s + b[j]

    @njit(**_JIT)
    def _advance(tok, table0, w, bias, scale, angles, head_w, head_b, h, logits, u):
        """Feed token ``tok``: update the state ``h (L,H)`` in place and write the next ``logits``."""
        layers, hidden = h.shape
        for layer in range(layers):
            hl = h[layer]
            if layer == 0:
                u[:] = table0[tok]  # W_0 e(tok) + b_0, projected once per vocabulary row
            else:
                _matvec(w[layer - 1], bias[layer - 1], h[layer - 1], u)
            sl = scale[layer]
            al = angles[layer]
            for j in range(hidden):
                hp = hl[j]
                r = float32(_cos(al[j] + hp))
                hl[j] = float32(_tanh(u[j] + hp * r * sl[j]))
        _matvec(head_w, head_b, h[layers - 1], logits)

    @njit(**_JIT)
    def _draw(logits, temperature, top_k, rng, weights):
        """One token id from ``logits`` and the model's probability of it at temperature 1."""
        vocab = logits.shape[0]
        best = 0
        for v in range(1, vocab):
            if logits[v] > logits[best]:  # the first maximum, as torch.argmax
                best = v
        top = float64(logits[best])
        total = 0.0
        for v in range(vocab):
            weights[v] = np.exp(float64(logits[v]) - top)
            total += weights[v]
        if temperature <= 0.0:
            tok = best
        else:
            if temperature != 1.0 or 0 < top_k < vocab:
                t = float32(temperature)
                scaled = np.empty(vocab, dtype=np.float32)
                for v in range(vocab):
                    scaled[v] = logits[v] / t  # float32, as torch divides
                kth = -np.inf
                if 0 < top_k < vocab:
                    kth = float64(np.sort(scaled)[vocab - top_k])  # ties with the k-th are kept
                top_scaled = float64(scaled[best])
                total = 0.0
                for v in range(vocab):
                    weights[v] = np.exp(float64(scaled[v]) - top_scaled) if scaled[v] >= kth else 0.0
                    total += weights[v]
            target = _uniform(rng) * total
            tok = -1
            acc = 0.0
            for v in range(vocab):
                if weights[v] > 0.0:
                    acc += weights[v]
                    tok = v
                    if target < acc:
                        break
            # (rounding can leave target >= acc after the last term: `tok` is then the last kept id)
            # restore the temperature-1 weights for the probability below
            if temperature != 1.0 or 0 < top_k < vocab:
                total = 0.0
                for v in range(vocab):
                    weights[v] = np.exp(float64(logits[v]) - top)
                    total += weights[v]
        return tok, weights[tok] / total

    @njit(**_JIT)
    def _sample_chunk(table0, w, bias, scale, angles, head_w, head_b, h, logits, rng,
                      temperature, top_k, out_tok, out_prob, step_after_last):
        """Sample ``len(out_tok)`` tokens, advancing ``h``, ``logits`` and ``rng`` in place."""
        n = out_tok.shape[0]
        weights = np.empty(logits.shape[0], dtype=np.float64)
        u = np.empty(h.shape[1], dtype=np.float32)
        for i in range(n):
            tok, p = _draw(logits, temperature, top_k, rng, weights)
            out_tok[i] = tok
            out_prob[i] = p
            if i + 1 < n or step_after_last:
                _advance(tok, table0, w, bias, scale, angles, head_w, head_b, h, logits, u)

    @njit(**_JIT)
    def _feed(table0, w, bias, scale, angles, head_w, head_b, h, tokens, out_logits):
        """Feed ``tokens`` in turn; ``out_logits`` gets the logits after each one, or
        with a single row, after the last one only (priming a prompt)."""
        u = np.empty(h.shape[1], dtype=np.float32)
        every = out_logits.shape[0] > 1
        for i in range(tokens.shape[0]):
            row = out_logits[i] if every else out_logits[0]
            _advance(tokens[i], table0, w, bias, scale, angles, head_w, head_b, h, row, u)


def _np32(t: torch.Tensor):
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


class KernelWeights:
    """A model's weights as float32 numpy arrays, as the kernel reads them.

    Layer 0's input ``W_0 e + b_0`` is projected once for every vocabulary row (the
    same dot products as the torch path), so feeding a token is a row lookup.
    """

    def __init__(self, model):
        rnn = model.rnn
        with torch.no_grad():
            first = rnn.input_linears[0]
            self.table0 = _np32(torch.nn.functional.linear(model.token_embedding.weight, first.weight,
                                                           first.bias))
            hidden = model.config.hidden_dim
            rest = list(rnn.input_linears)[1:]
            if rest:
                self.w = _np32(torch.stack([lin.weight for lin in rest]))
                self.bias = _np32(torch.stack([lin.bias for lin in rest]))
            else:
                self.w = np.zeros((0, hidden, hidden), dtype=np.float32)
                self.bias = np.zeros((0, hidden), dtype=np.float32)
            self.scale = _np32(rnn.hidden_scale)
            cpu = torch.device("cpu")
            self.angles = _np32(torch.stack([rnn.angles(layer, torch.float32, cpu)
                                             for layer in range(model.config.num_layers)]))
            self.head_w = _np32(model.output_head.weight)
            self.head_b = _np32(model.output_head.bias)

    def arrays(self) -> tuple:
        return self.table0, self.w, self.bias, self.scale, self.angles, self.head_w, self.head_b


def _state_arrays(logits: torch.Tensor, state: torch.Tensor):
    """Private, writable float32 copies: the kernel advances them in place."""
    h = state.detach().to("cpu", torch.float32)[:, 0, :].numpy().copy()
    return h, logits.detach().to("cpu", torch.float32).reshape(-1).numpy().copy()


def seed_state(seed: int):
    """The random stream's state: ``seed >= 0`` reproduces, ``-1`` draws a fresh one."""
    value = seed if seed >= 0 else secrets.randbits(64)
    return np.array([value], dtype=np.uint64)


def sample(weights: KernelWeights, logits: torch.Tensor, state: torch.Tensor, n: int,
           temperature: float, top_k: int, seed: int,
           stop: threading.Event | None = None) -> Iterator[tuple[int, float]]:
    """``(token id, probability at temperature 1)`` for ``n`` tokens, starting from the
    next-token ``logits (V,)`` and ``state (L,1,H)`` left by the prompt.

    Checks ``stop`` before every token it yields.
    """
    h, cur = _state_arrays(logits, state)
    rng = seed_state(seed)
    arrays = weights.arrays()
    chunk = FIRST_CHUNK
    left = n
    while left > 0:
        if stop is not None and stop.is_set():
            return
        size = min(chunk, left)
        toks = np.empty(size, dtype=np.int64)
        probs = np.empty(size, dtype=np.float64)
        left -= size
        _sample_chunk(*arrays, h, cur, rng, float(temperature), int(top_k), toks, probs, left > 0)
        for tok, p in zip(toks.tolist(), probs.tolist(), strict=True):
            if stop is not None and stop.is_set():
                return
            yield tok, p
        chunk = min(2 * chunk, MAX_CHUNK)


def _feed_tokens(weights: KernelWeights, h, tokens, rows: int) -> torch.Tensor:
    toks = np.asarray(tokens, dtype=np.int64)
    out = np.zeros((rows, weights.head_b.shape[0]), dtype=np.float32)
    _feed(*weights.arrays(), h, toks, out)
    return torch.from_numpy(out)


def prime(weights: KernelWeights, tokens, num_layers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``tokens`` from a zero state: next-token logits ``(V,)`` and state ``(L,1,H)``.

    One serial call: for a prompt of a few thousand characters this beats the batched
    forward, whose threads cost more to start than the work takes (and on a busy machine
    can wait milliseconds for a descheduled thread).
    """
    h = np.zeros((num_layers, weights.scale.shape[1]), dtype=np.float32)
    logits = _feed_tokens(weights, h, tokens, 1)[0]
    return logits, torch.from_numpy(h)[:, None, :]


def teacher_forced_logits(weights: KernelWeights, state: torch.Tensor, tokens) -> torch.Tensor:
    """Logits ``(n, V)`` after feeding each of ``tokens`` in turn from ``state (L,1,H)``.

    The kernel's own step, exposed so that it can be checked against the torch path.
    """
    h = state.detach().to("cpu", torch.float32)[:, 0, :].numpy().copy()
    return _feed_tokens(weights, h, tokens, max(len(tokens), 2))[: len(tokens)]
