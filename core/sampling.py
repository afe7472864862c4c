"""Sampling text from a trained model, streamed one character at a time.

The published ``generate.py`` feeds the newest token with the carried state (one
recurrent step per character, linear time), but it starts from the prompt's last
character alone, from a zero state, and grows its token tensor with ``torch.cat``,
a copy of the whole tensor per character. Here the whole prompt conditions the
state (one fast :meth:`LandauerLLM.forward` pass), and the characters that follow
advance that state in constant memory: on the CPU through the numba kernel of
:mod:`core.sample_kernel` (chunks of characters per call, no torch call per
character), elsewhere (CUDA, MPS, or without numba) with :meth:`LandauerLLM.step`.

:func:`original_generate` writes out the published loop as the baseline for
benchmarks; nothing else should use it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import torch

from core import sample_kernel
from core.hparams import SamplingConfig

EMPTY_PROMPT_FALLBACK = " "  # the published default prompt


class PromptError(ValueError):
    """The prompt cannot be encoded with the model's vocabulary."""

    def __init__(self, message: str, missing: tuple[str, ...] = ()):
        super().__init__(message)
        self.missing = missing


def _normalise_itos(itos: Mapping) -> dict[int, str]:
    return {int(k): v for k, v in itos.items()}


def encode_prompt(prompt: str, stoi: Mapping[str, int]) -> list[int]:
    """Token ids of ``prompt``; :class:`PromptError` lists every unknown character.

    An empty prompt becomes ``" "`` (the published default) when the vocabulary
    has a space, because the model needs at least one input to predict from.
    """
    if prompt == "":
        if EMPTY_PROMPT_FALLBACK in stoi:
            prompt = EMPTY_PROMPT_FALLBACK
        else:
            raise PromptError("the prompt is empty and this vocabulary has no space to start "
                              "from; give at least one character")
    missing = tuple(dict.fromkeys(ch for ch in prompt if ch not in stoi))
    if missing:
        shown = ", ".join(repr(ch) for ch in missing)
        raise PromptError(f"the prompt has characters the model does not know: {shown}", missing)
    return [stoi[ch] for ch in prompt]


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator: ``seed >= 0`` reproduces samples on any device, ``-1`` is random."""
    gen = torch.Generator()
    if seed >= 0:
        gen.manual_seed(int(seed))
    else:
        gen.seed()
    return gen


def sample_token(logits: torch.Tensor, temperature: float, top_k: int,
                 generator: torch.Generator) -> int:
    """Draw one token id from 1-D ``logits``: ``temperature == 0`` is greedy, ``top_k == 0`` keeps all.

    Sampling runs on the CPU in float32 so one seed gives the same text on every device.
    """
    logits = logits.detach().reshape(-1).to("cpu", torch.float32)
    if temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / temperature
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))



BACKENDS = ("auto", "kernel", "torch")
# Prompts up to this length are run through the sampling kernel itself (about 8 us a
# character for the default model); longer ones through the batched forward.
KERNEL_PRIME_MAX = 4096


class TextGenerator:
    """Streams characters from ``model`` given its ``itos`` vocabulary.

    ``backend``: ``"kernel"`` samples with :mod:`core.sample_kernel` (CPU, float32,
    numba), ``"torch"`` with :meth:`LandauerLLM.step` one character at a time, and
    ``"auto"`` picks the kernel wherever it can run. Both draw from the same
    distribution, but from different random streams: a seed reproduces its text on
    either backend, and the two backends give different texts for one seed.
    """

    def __init__(self, model, itos: Mapping, *, backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.model = model
        self.itos = _normalise_itos(itos)
        self.stoi = {ch: i for i, ch in self.itos.items()}
        self.backend = backend

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def uses_kernel(self) -> bool:
        """Whether :meth:`stream` runs the numba kernel (else the torch loop)."""
        if self.backend == "torch":
            return False
        p = next(self.model.parameters())
        usable = p.device.type == "cpu" and p.dtype == torch.float32 and sample_kernel.available()
        if self.backend == "kernel" and not usable:
            raise RuntimeError("the sampling kernel needs numba and a float32 model on the CPU")
        return usable

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(prompt, self.stoi)

    def stream(self, prompt: str, sampling: SamplingConfig | None = None,
               stop: threading.Event | None = None) -> Iterator[str]:
        """Yield up to ``sampling.max_new_tokens`` characters following ``prompt``.

        The prompt is checked here, before any work, so a bad prompt raises
        :class:`PromptError` at the call rather than mid-stream. Setting ``stop``
        ends the stream before the next character.
        """
        tokens = self._tokens(prompt, sampling, stop, scored=False)
        return (self.itos[tok] for tok, _ in tokens)

    def stream_scored(self, prompt: str, sampling: SamplingConfig | None = None,
                      stop: threading.Event | None = None) -> Iterator[tuple[str, float]]:
        """Like :meth:`stream`, with each character's probability under the model.

        The probability is the softmax of the logits at temperature 1, whatever
        temperature or top-k the character was drawn with: how expected the model
        found it.
        """
        tokens = self._tokens(prompt, sampling, stop, scored=True)
        return ((self.itos[tok], p) for tok, p in tokens)

    def prime(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the whole prompt from a zero state: next-character logits ``(V,)`` and state ``(L,1,H)``."""
        return self._prime(self.encode(prompt))

    @torch.no_grad()
    def _prime(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.tensor([ids], dtype=torch.long, device=self.device)
        logits, _, state = self.model.forward(idx)
        return logits[0, -1].clone(), state  # the last position predicts; the state carries the rest

    def _tokens(self, prompt: str, sampling: SamplingConfig | None, stop: threading.Event | None,
                scored: bool) -> Iterator[tuple[int, float]]:
        sampling = sampling or SamplingConfig()
        problems = sampling.errors()
        if problems:
            raise ValueError("; ".join(problems))
        ids = self.encode(prompt)
        if self.uses_kernel():
            return self._kernel_tokens(ids, sampling, stop)
        return self._torch_tokens(ids, sampling, stop, scored)

    def _kernel_tokens(self, ids: list[int], sampling: SamplingConfig,
                       stop: threading.Event | None) -> Iterator[tuple[int, float]]:
        weights = sample_kernel.KernelWeights(self.model)
        if len(ids) <= KERNEL_PRIME_MAX:
            logits, state = sample_kernel.prime(weights, ids, self.model.config.num_layers)
        else:
            logits, state = self._prime(ids)
        yield from sample_kernel.sample(weights, logits, state,
                                        sampling.max_new_tokens, sampling.temperature,
                                        sampling.top_k, sampling.seed, stop)

    def _torch_tokens(self, ids: list[int], sampling: SamplingConfig, stop: threading.Event | None,
                      scored: bool) -> Iterator[tuple[int, float]]:
        # No ``with torch.no_grad()`` around the yields: grad mode is thread-wide and
        # would leak into the consumer between characters. Each call disables it itself.
        gen = make_generator(sampling.seed)
        logits, state = self._prime(ids)
        token = torch.empty(1, dtype=torch.long, device=self.device)
        for i in range(sampling.max_new_tokens):
            if stop is not None and stop.is_set():
                return
            tok = sample_token(logits, sampling.temperature, sampling.top_k, gen)
            prob = float(torch.softmax(logits.float(), dim=-1)[tok]) if scored else float("nan")
            yield tok, prob
            if i + 1 < sampling.max_new_tokens:
                token.fill_(tok)
                step_logits, state = self.model.step(token, state)  # runs under no_grad
                logits = step_logits[0]

    def generate(self, prompt: str, sampling: SamplingConfig | None = None,
                 stop: threading.Event | None = None) -> str:
        """The whole continuation (without the prompt) as one string."""
        return "".join(self.stream(prompt, sampling, stop))


def generate_text(model, itos: Mapping, prompt: str, sampling: SamplingConfig | None = None,
                  stop: threading.Event | None = None) -> str:
    """Convenience wrapper: the continuation of ``prompt`` as one string."""
    return TextGenerator(model, itos).generate(prompt, sampling, stop)


@torch.no_grad()
def original_generate(model, itos: Mapping, stoi: Mapping[str, int], prompt: str, n: int, *,
                      seed: int = -1, whole_prompt: bool = False) -> str:
    """BENCHMARK BASELINE ONLY: the published generation loop, written out to measure against.

    As published: the prompt's token tensor ``idx``, a zero state, then per character
    one step of the per-step model on the newest token with the carried state
    (``model(idx[:, -1:], h)``), softmax at temperature 1, ``torch.multinomial``, and
    ``torch.cat`` to grow ``idx`` (a copy per character). Linear time, but only the
    prompt's last character reaches the model. ``whole_prompt=True`` first runs the
    rest of the prompt into the state, for like-for-like comparisons; ``seed >= 0``
    seeds the draws (the original could not). Returns the ``n`` new characters.
    """
    itos = _normalise_itos(itos)
    gen = make_generator(seed)
    device = next(model.parameters()).device
    idx = torch.tensor([encode_prompt(prompt, stoi)], dtype=torch.long, device=device)
    prompt_len = idx.size(1)
    h = None
    if whole_prompt and prompt_len > 1:
        _, _, h = model.forward_reference(idx[:, :-1])
    for _ in range(n):
        logits, _, h = model.forward_reference(idx[:, -1:], h)
        probs = torch.softmax(logits[:, -1, :], dim=-1)
        nxt = torch.multinomial(probs.cpu(), 1, generator=gen).to(device)
        idx = torch.cat([idx, nxt], dim=1)
    return "".join(itos[int(t)] for t in idx[0, prompt_len:].tolist())
