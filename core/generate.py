"""Sampling text from a trained model, one character at a time.

The published ``generate.py`` fed only the last prompt character from a zero
state and re-ran the whole growing sequence at every step. Here the whole
prompt conditions the state (one fast :meth:`LandauerLLM.forward` pass), and
each new character advances that state with :meth:`LandauerLLM.step`, so
memory stays constant however much text is produced.

:func:`naive_generate` keeps the published, quadratic method as the baseline
for benchmarks; nothing else should use it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import torch

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


class TextGenerator:
    """Streams characters from ``model`` given its ``itos`` vocabulary."""

    def __init__(self, model, itos: Mapping):
        self.model = model
        self.itos = _normalise_itos(itos)
        self.stoi = {ch: i for i, ch in self.itos.items()}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(prompt, self.stoi)

    def stream(self, prompt: str, sampling: SamplingConfig | None = None,
               stop: threading.Event | None = None) -> Iterator[str]:
        """Yield up to ``sampling.max_new_tokens`` characters following ``prompt``.

        The prompt is checked here, before any work, so a bad prompt raises
        :class:`PromptError` at the call rather than mid-stream. Setting ``stop``
        ends the stream before the next character.
        """
        sampling = sampling or SamplingConfig()
        problems = sampling.errors()
        if problems:
            raise ValueError("; ".join(problems))
        return self._stream(self.encode(prompt), sampling, stop)

    def prime(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the whole prompt from a zero state: next-character logits ``(V,)`` and state ``(L,1,H)``."""
        return self._prime(self.encode(prompt))

    @torch.no_grad()
    def _prime(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.tensor([ids], dtype=torch.long, device=self.device)
        logits, _, state = self.model.forward(idx)
        return logits[0, -1].clone(), state  # the last position predicts; the state carries the rest

    def _stream(self, ids: list[int], sampling: SamplingConfig,
                stop: threading.Event | None) -> Iterator[str]:
        # No ``with torch.no_grad()`` around the yields: grad mode is thread-wide and
        # would leak into the consumer between characters. Each call disables it itself.
        gen = make_generator(sampling.seed)
        logits, state = self._prime(ids)
        token = torch.empty(1, dtype=torch.long, device=self.device)
        for i in range(sampling.max_new_tokens):
            if stop is not None and stop.is_set():
                return
            tok = sample_token(logits, sampling.temperature, sampling.top_k, gen)
            yield self.itos[tok]
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


def naive_generate(model, itos: Mapping, stoi: Mapping[str, int], prompt: str, n: int, *,
                   temperature: float = 1.0, top_k: int = 0, seed: int = -1,
                   whole_prompt: bool = False) -> str:
    """BENCHMARK BASELINE ONLY: the published generation method, kept to measure against.

    Like the published ``generate.py`` it starts from the prompt's last
    character only (``whole_prompt=False``), grows the token tensor by
    concatenation and re-runs :meth:`LandauerLLM.forward_reference` over the
    whole sequence for every new character: quadratic time, linear memory.
    Sampling uses :func:`sample_token`, so with ``whole_prompt=True`` and the
    same seed it produces the same text as :meth:`TextGenerator.stream`.
    """
    itos = _normalise_itos(itos)
    ids = encode_prompt(prompt, stoi)
    if not whole_prompt:
        ids = ids[-1:]
    gen = make_generator(seed)
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits, _, _ = model.forward_reference(idx)
            tok = sample_token(logits[0, -1], temperature, top_k, gen)
            out.append(itos[tok])
            idx = torch.cat([idx, torch.tensor([[tok]], dtype=torch.long, device=device)], dim=1)
    return "".join(out)


if __name__ == "__main__":
    from core.cli import generate_main

    raise SystemExit(generate_main())
