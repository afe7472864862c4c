"""Generation: whole-prompt conditioning, reproducible sampling, constant-memory streaming,
and the CPU sampling kernel held to the torch path.

Tolerances for kernel against torch: the kernel's cells round as the published code
and its cos/tanh are within one float32 ulp of torch's, but its matrix-vector
products sum in another order; over a few hundred steps that leaves logits about
5e-6 apart on the default golden weights (the fast forward and the per-step
reference differ by as much), so logits get atol 2e-5 and probabilities rtol 5e-5.
"""

from __future__ import annotations

import threading

import pytest
import torch

from core import sample_kernel, sampling
from core.hparams import SamplingConfig
from core.model import LandauerLLM
from core.sampling import (
    PromptError,
    TextGenerator,
    generate_text,
    original_generate,
    sample_token,
)

VOCAB = sorted(set("hello world, to be or not to be!\n"))
ITOS = dict(enumerate(VOCAB))
STOI = {c: i for i, c in ITOS.items()}

pytestmark = pytest.mark.usefixtures("one_torch_thread")

needs_kernel = pytest.mark.skipif(not sample_kernel.available(), reason="numba unavailable")


@pytest.fixture(scope="module")
def model() -> LandauerLLM:
    torch.manual_seed(0)
    m = LandauerLLM(len(VOCAB), embed_dim=8, hidden_dim=24, num_layers=2)
    with torch.no_grad():  # larger weights than the init so that the state matters visibly
        for p in m.parameters():
            p.mul_(3.0)
    return m.eval()


@pytest.fixture(scope="module")
def golden_model(golden_dir) -> LandauerLLM:
    golden = torch.load(golden_dir / "parity_default.pt", weights_only=True)
    m = LandauerLLM.from_config(golden["config"])
    m.load_state_dict(golden["state_dict"])
    return m.eval()


def golden_itos(m: LandauerLLM) -> dict[int, str]:
    return {i: chr(ord("!") + i) for i in range(m.config.vocab_size)}  # any distinct symbols


def gen(model, prompt, backend="auto", **kw) -> str:
    return TextGenerator(model, ITOS, backend=backend).generate(prompt, SamplingConfig(**kw))


@torch.no_grad()
def torch_step_logits(m: LandauerLLM, state: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    rows = []
    for tok in tokens:
        logits, state = m.step(tok.view(1), state)
        rows.append(logits[0])
    return torch.stack(rows)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_whole_prompt_conditions_the_state(model, backend):
    if backend == "kernel" and not sample_kernel.available():
        pytest.skip("numba unavailable")
    g = TextGenerator(model, ITOS)
    logits_a, state_a = g.prime("to be or not to be")
    logits_b, state_b = g.prime("hello world")
    logits_c, _ = g.prime("e")  # what the published code used: the last character only
    assert state_a.shape == (2, 1, 24)
    assert logits_a.shape == (len(VOCAB),)
    assert not torch.allclose(logits_a, logits_c, atol=1e-4)
    assert not torch.allclose(logits_a, logits_b, atol=1e-4)
    # Same last character, same seed, different prompts: different samples.
    assert gen(model, "to be or not to be", backend, max_new_tokens=60, seed=3) != gen(
        model, "e", backend, max_new_tokens=60, seed=3)


@needs_kernel
def test_kernel_is_chosen_on_cpu_float32_and_torch_otherwise(model, monkeypatch):
    assert TextGenerator(model, ITOS).uses_kernel()
    assert not TextGenerator(model, ITOS, backend="torch").uses_kernel()
    double = LandauerLLM(len(VOCAB), 8, 24, 2).double()
    assert not TextGenerator(double, ITOS).uses_kernel()
    with pytest.raises(RuntimeError, match="float32"):
        TextGenerator(double, ITOS, backend="kernel").uses_kernel()
    monkeypatch.setenv("LANDAUER_DISABLE_NUMBA", "1")
    assert not TextGenerator(model, ITOS).uses_kernel()
    assert len(gen(model, "to be", max_new_tokens=9, seed=1)) == 9  # the torch loop still streams
    with pytest.raises(ValueError, match="backend"):
        TextGenerator(model, ITOS, backend="gpu")


@needs_kernel
def test_kernel_probabilities_match_torch_on_golden_weights(golden_model):
    """A fixed token sequence, fed step by step: the kernel's next-character logits and
    probabilities equal the torch step's over 300 steps, from a primed state."""
    m = golden_model
    tokens = torch.randint(0, m.config.vocab_size, (320,), generator=torch.Generator().manual_seed(5))
    g = TextGenerator(m, golden_itos(m))
    _, state = g._prime(tokens[:20].tolist())
    weights = sample_kernel.KernelWeights(m)
    fast = sample_kernel.teacher_forced_logits(weights, state, tokens[20:])
    slow = torch_step_logits(m, state, tokens[20:])
    torch.testing.assert_close(fast, slow, atol=2e-5, rtol=0)
    torch.testing.assert_close(torch.softmax(fast, -1), torch.softmax(slow, -1), rtol=5e-5, atol=1e-9)


@needs_kernel
def test_kernel_priming_matches_the_forward_and_long_prompts_use_it(golden_model, monkeypatch):
    m = golden_model
    itos = golden_itos(m)
    ids = torch.randint(0, m.config.vocab_size, (200,), generator=torch.Generator().manual_seed(1))
    logits, state = sample_kernel.prime(sample_kernel.KernelWeights(m), ids, m.config.num_layers)
    ref_logits, ref_state = TextGenerator(m, itos).prime("".join(itos[int(i)] for i in ids))
    torch.testing.assert_close(logits, ref_logits, atol=2e-5, rtol=0)
    torch.testing.assert_close(state, ref_state, atol=2e-5, rtol=0)
    prompt = "".join(itos[int(i)] for i in ids[:50])
    greedy = SamplingConfig(max_new_tokens=100, temperature=0)
    short = TextGenerator(m, itos).generate(prompt, greedy)
    monkeypatch.setattr(sampling, "KERNEL_PRIME_MAX", 10)  # prompts above it use the forward
    assert TextGenerator(m, itos).generate(prompt, greedy) == short


@needs_kernel
@pytest.mark.parametrize("layers", [1, 3])
def test_kernel_matches_torch_for_other_depths(layers):
    torch.manual_seed(layers)
    m = LandauerLLM(len(VOCAB), embed_dim=8, hidden_dim=24, num_layers=layers).eval()
    state = 0.5 * torch.randn(layers, 1, 24)
    tokens = torch.randint(0, len(VOCAB), (100,))
    fast = sample_kernel.teacher_forced_logits(sample_kernel.KernelWeights(m), state, tokens)
    torch.testing.assert_close(fast, torch_step_logits(m, state, tokens), atol=2e-5, rtol=0)


@needs_kernel
def test_stream_scored_gives_the_models_probability_and_honours_top_k(golden_model):
    """Each scored probability is torch's softmax at temperature 1 of the logits before the
    character, whatever temperature and top-k drew it; no draw falls outside the top k."""
    m = golden_model
    itos = golden_itos(m)
    stoi = {c: i for i, c in itos.items()}
    prompt = "".join(itos[i] for i in range(0, 60, 3))
    g = TextGenerator(m, itos)
    scored = list(g.stream_scored(prompt, SamplingConfig(max_new_tokens=300, temperature=1.7,
                                                         top_k=4, seed=8)))
    ids = [stoi[c] for c, _ in scored]
    with torch.no_grad():
        logits = m.forward_reference(torch.tensor([g.encode(prompt) + ids]))[0][0]
    before = logits[len(prompt) - 1:-1]  # the logits each new character was drawn from
    probs = torch.softmax(before, -1)[torch.arange(len(ids)), torch.tensor(ids)]
    torch.testing.assert_close(torch.tensor([p for _, p in scored], dtype=torch.float32), probs,
                               rtol=5e-5, atol=1e-9)
    # top-k: judged on the kernel's own logits, so that no rounding sits between them
    weights = sample_kernel.KernelWeights(m)
    primed, state = sample_kernel.prime(weights, g.encode(prompt), m.config.num_layers)
    own = torch.cat([primed[None], sample_kernel.teacher_forced_logits(weights, state, ids[:-1])])
    rank = (own > own[torch.arange(len(ids)), torch.tensor(ids)][:, None]).sum(-1)
    assert int(rank.max()) < 4
    assert len(set(ids)) > 4  # the draws do vary


@needs_kernel
def test_torch_stream_scored_matches_softmax(model):
    g = TextGenerator(model, ITOS, backend="torch")
    scored = list(g.stream_scored("to be", SamplingConfig(max_new_tokens=30, seed=2)))
    ids = [STOI[c] for c, _ in scored]
    with torch.no_grad():
        logits = model.forward_reference(torch.tensor([g.encode("to be") + ids]))[0][0]
    probs = torch.softmax(logits[4:-1], -1)[torch.arange(30), torch.tensor(ids)]
    torch.testing.assert_close(torch.tensor([p for _, p in scored]), probs, rtol=1e-5, atol=1e-9)


@needs_kernel
@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, 0), (0.7, 0), (2.0, 3)])
def test_kernel_draws_follow_the_distribution(temperature, top_k):
    """With a state-blind head every step has the same distribution; the kernel's draw
    frequencies must match torch's softmax(logits / temperature) with top-k applied."""
    vocab = 6
    m = LandauerLLM(vocab, embed_dim=4, hidden_dim=8, num_layers=1).eval()
    fixed = torch.tensor([0.0, 1.0, -0.5, 0.8, 1.0, -2.0])
    with torch.no_grad():
        m.output_head.weight.zero_()
        m.output_head.bias.copy_(fixed)
    n = 40_000
    text = TextGenerator(m, {i: str(i) for i in range(vocab)}, backend="kernel").generate(
        "0", SamplingConfig(max_new_tokens=n, temperature=temperature, top_k=top_k, seed=21))
    counts = torch.bincount(torch.tensor([int(c) for c in text]), minlength=vocab).double()
    scaled = fixed / temperature
    if top_k:
        scaled = scaled.masked_fill(scaled < torch.topk(scaled, top_k).values[-1], float("-inf"))
    expected = torch.softmax(scaled.double(), -1) * n
    assert torch.all(counts[expected == 0] == 0)  # 1.0 appears twice: ties with the k-th are kept
    kept = expected > 0
    chi2 = float((((counts - expected) ** 2)[kept] / expected[kept]).sum())
    assert chi2 < 25.0  # at most 5 degrees of freedom: p < 1e-4 for a correct sampler


@needs_kernel
def test_kernel_greedy_follows_the_torch_argmax_path(golden_model):
    m = golden_model
    itos = golden_itos(m)
    prompt = "".join(itos[i] for i in range(10, 40))
    kernel = TextGenerator(m, itos, backend="kernel").generate(
        prompt, SamplingConfig(max_new_tokens=200, temperature=0))
    slow = TextGenerator(m, itos, backend="torch").generate(
        prompt, SamplingConfig(max_new_tokens=200, temperature=0))
    assert kernel == slow and len(set(kernel)) > 3


def test_torch_path_equals_the_original_loop_given_the_whole_prompt(model):
    """Same seed, whole prompt: the torch path draws what the published loop draws."""
    stream = gen(model, "not to be", "torch", max_new_tokens=60, seed=4)
    assert stream == original_generate(model, ITOS, STOI, "not to be", 60, seed=4, whole_prompt=True)


def test_original_loop_uses_only_the_last_character(model):
    a = original_generate(model, ITOS, STOI, "hello world", 40, seed=6)
    b = original_generate(model, ITOS, STOI, "d", 40, seed=6)
    assert a == b and len(a) == 40
    assert a != original_generate(model, ITOS, STOI, "hello world", 40, seed=6, whole_prompt=True)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_seed_reproducible_and_random_when_negative(model, backend):
    a = gen(model, "to be", backend, max_new_tokens=80, seed=11)
    assert a == gen(model, "to be", backend, max_new_tokens=80, seed=11)
    assert a != gen(model, "to be", backend, max_new_tokens=80, seed=12)
    assert gen(model, "to be", backend, max_new_tokens=200, seed=-1) != gen(
        model, "to be", backend, max_new_tokens=200, seed=-1)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_top_k_one_is_greedy(model, backend):
    greedy = gen(model, "or not", backend, max_new_tokens=50, temperature=0)
    assert gen(model, "or not", backend, max_new_tokens=50, top_k=1, seed=1) == greedy
    assert gen(model, "or not", backend, max_new_tokens=50, top_k=1, seed=2, temperature=2.0) == greedy


def test_sample_token_respects_top_k():
    logits = torch.tensor([0.0, 5.0, 4.0, -1.0, 4.5])
    g = torch.Generator().manual_seed(0)
    drawn = {sample_token(logits, 5.0, 2, g) for _ in range(300)}
    assert drawn == {1, 4}
    assert sample_token(logits, 0.0, 0, g) == 1


def test_out_of_vocabulary_prompt_names_characters(model):
    g = TextGenerator(model, ITOS)
    with pytest.raises(PromptError) as info:
        g.stream("to be? Zq", SamplingConfig())  # raised at the call, before any output
    assert isinstance(info.value, ValueError)
    assert set(info.value.missing) == {"?", "Z", "q"}
    for ch in "?Zq":
        assert repr(ch) in str(info.value)


def test_empty_prompt_starts_from_a_space(model):
    assert gen(model, "", max_new_tokens=30, seed=4) == gen(model, " ", max_new_tokens=30, seed=4)
    no_space = {i: c for i, c in enumerate("ab")}
    with pytest.raises(PromptError, match="empty"):
        TextGenerator(LandauerLLM(2, 4, 8, 1), no_space).stream("", SamplingConfig())


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_stream_length_and_stop_event(model, backend):
    g = TextGenerator(model, ITOS, backend=backend)
    chars = list(g.stream("hello", SamplingConfig(max_new_tokens=37, seed=0)))
    assert len(chars) == 37 and all(len(c) == 1 and c in STOI for c in chars)

    stop = threading.Event()
    out = []
    for ch in g.stream("hello", SamplingConfig(max_new_tokens=1000, seed=0), stop):
        out.append(ch)
        if len(out) == 5:
            stop.set()
    assert len(out) == 5


@needs_kernel
def test_stop_leaves_the_kernel_at_most_one_chunk_ahead(model, monkeypatch):
    """The kernel works in bounded chunks, so a stop takes effect after at most one."""
    computed = []
    real = sample_kernel._sample_chunk

    def counting(*args):
        computed.append(len(args[-3]))  # out_tok
        return real(*args)

    monkeypatch.setattr(sample_kernel, "_sample_chunk", counting)
    stop = threading.Event()
    stream = TextGenerator(model, ITOS).stream("hello", SamplingConfig(max_new_tokens=1_000_000), stop)
    for i, _ in enumerate(stream):
        if i == 1000:
            stop.set()
    assert i == 1000
    assert sum(computed) <= 1001 + sample_kernel.MAX_CHUNK
    assert max(computed) <= sample_kernel.MAX_CHUNK


def test_invalid_sampling_settings_raise(model):
    with pytest.raises(ValueError, match="temperature"):
        TextGenerator(model, ITOS).stream("to", SamplingConfig(temperature=-1.0))


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_stream_does_not_leak_no_grad_into_the_caller(model, backend):
    it = TextGenerator(model, ITOS, backend=backend).stream("to", SamplingConfig(max_new_tokens=3, seed=0))
    next(it)
    assert torch.is_grad_enabled()


def test_generate_text_convenience(model):
    text = generate_text(model, {str(k): v for k, v in ITOS.items()}, "be", SamplingConfig(max_new_tokens=12, seed=9))
    assert len(text) == 12
