"""Side-by-side speed of the fast paths against the per-step formulations.

Each comparison runs both contenders in one process, on the same data and
weights' shapes, interleaved round by round, and reports the median of the
per-round ratios: on a shared, noisy machine absolute times drift, ratios
measured side by side much less so.

    python benchmarks/bench_speed.py                 # default + benchmark config, generation
    python benchmarks/bench_speed.py --quick         # fewer rounds
    python benchmarks/bench_speed.py --data PATH     # another corpus
    python benchmarks/bench_speed.py --sections analysis   # some of: training, generation, analysis, corpus-load
    python benchmarks/bench_speed.py --corpus-load   # only: load a generated 200 MB corpus

Training: tokens/s of one optimisation step (forward, loss, backward, clip,
Adam) as the trainer runs it (fused loss, numba kernels on CPU, compiled clip and
Adam) vs the published step (per-step forward, the loss by plain autograd,
``clip_grad_norm_``, default Adam). Each round also times the fast step's
matrix products alone: the published step's time over theirs is the ratio no
scan could pass on this CPU (printed as the ceiling).
Generation: chars/s of ``TextGenerator.stream`` vs the published loop
(:func:`core.sampling.original_generate`): one per-step model call per character
on the newest token with the carried state (linear time), softmax,
``torch.multinomial`` and a ``torch.cat`` copy of the token tensor per character.
Analysis: seconds to analyse the validation split (the last 10% of the corpus)
with the default model (:func:`core.analysis.analyse_text`), without and with
every layer's states kept, and to render its HTML report.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from published_step import published_losses  # noqa: E402

from core import scan_numba  # noqa: E402
from core.allocator import keep_freed_memory  # noqa: E402
from core.analysis import analyse_text  # noqa: E402
from core.data import TRAIN_FRACTION, get_batch, load_corpus  # noqa: E402
from core.device import describe  # noqa: E402
from core.fused_loss import fused_losses  # noqa: E402
from core.hparams import SamplingConfig, TrainConfig  # noqa: E402
from core.model import LandauerLLM  # noqa: E402
from core.optimizer import ClippedAdam, make_optimizer  # noqa: E402
from core.report import render_html  # noqa: E402
from core.sampling import TextGenerator, original_generate  # noqa: E402
from core.train_step import backward_step  # noqa: E402

CONFIGS = {
    # published defaults
    "default": TrainConfig(),
    # the benchmark table's reference command (rows 5-6 sizes, 4 layers)
    "benchmark": TrainConfig(seq_len=256, hidden_dim=512, num_layers=4, phase_scaling=1.618,
                             energy_weight=0.01, lr=1e-3),
}


def default_corpus() -> Path:
    canonical = REPO.parent / "shared" / "data" / "tiny_shakespeare.txt"
    return canonical if canonical.exists() else REPO / "tiny_shakespeare.txt"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_training(name: str, cfg: TrainConfig, corpus, rounds: int) -> dict:
    """Fast step (as the trainer runs it) against the published step, on the same batches.

    Fast: :func:`core.fused_loss.fused_losses` (numba scans and cross-entropy on
    CPU), then clipping and Adam in two compiled passes (:class:`core.optimizer.ClippedAdam`).
    Published: :func:`published_losses`, ``clip_grad_norm_`` and ``torch.optim.Adam``
    with its defaults (on CPU the per-parameter loop). Each keeps its own
    optimiser state over the one model.
    """
    torch.manual_seed(cfg.seed)
    model = LandauerLLM.from_config(cfg.model_kwargs(corpus.vocab_size))
    params = list(model.parameters())
    optimizers = {"fast": ClippedAdam(make_optimizer(params, cfg.lr), cfg.grad_clip),
                  "per-step": ClippedAdam(torch.optim.Adam(params, lr=cfg.lr), cfg.grad_clip)}
    assert optimizers["fast"].compiled == scan_numba.available() and not optimizers["per-step"].compiled
    loss_fns = {"fast": None, "per-step": lambda x, y, t, w: published_losses(model, x, y, t, w)}
    gen = torch.Generator().manual_seed(cfg.seed)
    batches = [get_batch(corpus.train_data, cfg.batch_size, cfg.seq_len, gen) for _ in range(4)]

    def step(path, i):
        x, y = batches[i % len(batches)]
        backward_step(model, optimizers[path], x, y, cfg, loss_fn=loss_fns[path])
        optimizers[path].step()

    with torch.no_grad():  # both contenders compute the same losses
        x, y = batches[0]
        fast = fused_losses(model, x, y, cfg.temperature, cfg.energy_weight)
        published = published_losses(model, x, y, cfg.temperature, cfg.energy_weight)
        for a, b in zip((fast.total, fast.content, fast.energy), (published.total, published.content,
                                                                   published.energy), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for path in optimizers:  # warm-up: JIT compilation, allocator, caches
        step(path, 0)
    products = step_products(cfg, corpus.vocab_size)
    products()
    # a round: one untimed and five timed fast steps (as the trainer runs them, back to back),
    # then one per-step step, then the fast step's matrix products alone
    fast_per_round = 5
    times = {"fast": [], "per-step": [], "products": []}
    ratios, ceilings = [], []
    for r in range(rounds):
        step("fast", r)  # untimed: the first fast step after a per-step one pays for its leftovers
        t_fast = _timed(lambda r=r: [step("fast", r * fast_per_round + k) for k in range(fast_per_round)])
        t_fast /= fast_per_round
        t_ref = _timed(lambda r=r: step("per-step", r))
        t_products = _timed(products)
        times["fast"].append(t_fast)
        times["per-step"].append(t_ref)
        times["products"].append(t_products)
        ratios.append(t_ref / t_fast)
        ceilings.append(t_ref / t_products)
    tokens = cfg.batch_size * cfg.seq_len
    return {
        "name": name,
        "shape": f"B{cfg.batch_size} x T{cfg.seq_len}, E{cfg.embed_dim}, H{cfg.hidden_dim}, L{cfg.num_layers}",
        "fast_tok_s": tokens / statistics.median(times["fast"]),
        "ref_tok_s": tokens / statistics.median(times["per-step"]),
        "fast_ms": 1000 * statistics.median(times["fast"]),
        "ref_ms": 1000 * statistics.median(times["per-step"]),
        "ratio": statistics.median(ratios),
        "ratio_range": (min(ratios), max(ratios)),
        "products_ms": 1000 * statistics.median(times["products"]),
        "ceiling": statistics.median(ceilings),
    }


def step_products(cfg: TrainConfig, vocab: int):
    """A function that runs the fast step's matrix products alone, on random data of their shapes.

    They are the step's floor on a CPU whose products already run at the BLAS's
    peak: the per-step time over theirs bounds the ratio any scan could reach.
    The list mirrors :class:`core.fused_loss._Step` (first layer as a projected
    vocabulary table, the other layers' biases added by the scan).
    """
    rows, hidden, embed, layers = cfg.batch_size * cfg.seq_len, cfg.hidden_dim, cfg.embed_dim, cfg.num_layers
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    emb, w0, b0 = rand(vocab, embed), rand(hidden, embed), rand(hidden)
    ws = [rand(hidden, hidden) for _ in range(layers - 1)]
    head_w, head_b = rand(vocab, hidden), rand(vocab)
    x, grad_rows, g_logits, g_table = rand(rows, hidden), rand(rows, hidden), rand(rows, vocab), rand(vocab, hidden)

    def run():
        torch.addmm(b0, emb, w0.t())
        for w in ws:
            torch.nn.functional.linear(x, w)
        torch.addmm(head_b, x, head_w.t())
        g_logits.t().mm(x)
        g_logits.mm(head_w)
        for w in ws:
            grad_rows.t().mm(x)
            grad_rows.mm(w)
        g_table.t().mm(emb)
        g_table.mm(w0)
    return run


def bench_generation(corpus, rounds: int, n_chars: int) -> dict:
    """The default-size model (random init: sampling costs the same whatever the weights).

    Both run with one torch thread: the original loop's operations are far too small
    to share across threads, and on a busy machine a second thread makes it wait for
    a descheduled partner (measured here: 15-70 chars/s instead of about 2,000), which
    would flatter the ratio. One thread is the original's best case.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _bench_generation(corpus, rounds, n_chars)
    finally:
        torch.set_num_threads(threads)


def _bench_generation(corpus, rounds: int, n_chars: int) -> dict:
    cfg = CONFIGS["default"]
    torch.manual_seed(0)
    model = LandauerLLM.from_config(cfg.model_kwargs(corpus.vocab_size)).eval()
    generator = TextGenerator(model, corpus.itos)
    prompt = "To be, or not to be"
    sampling = SamplingConfig(max_new_tokens=n_chars, seed=1)  # temperature 1, no top-k: as published

    def streaming():
        assert len("".join(generator.stream(prompt, sampling))) == n_chars

    def original():
        assert len(original_generate(model, corpus.itos, corpus.stoi, prompt, n_chars, seed=1)) == n_chars

    streaming(), original()  # warm-up: kernel loading, allocator
    t_stream, t_orig, ratios = [], [], []
    for _ in range(rounds):
        a, b = _timed(streaming), _timed(original)
        t_stream.append(a)
        t_orig.append(b)
        ratios.append(b / a)
    return {
        "engine": "numba kernel" if generator.uses_kernel() else "torch loop",
        "stream_chars_s": n_chars / statistics.median(t_stream),
        "original_chars_s": n_chars / statistics.median(t_orig),
        "ratio": statistics.median(ratios),
        "ratio_range": (min(ratios), max(ratios)),
    }


CORPUS_LOAD_CHILD = """
import resource, sys, time
from core.data import load_corpus
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
corpus = load_corpus(sys.argv[1])
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(seconds, peak, base * (1 if sys.platform == "darwin" else 1024), corpus.characters, corpus.vocab_size)
"""


def bench_corpus_load(megabytes: int) -> dict:
    """Load time and peak RSS of ``load_corpus`` on a generated text, in a fresh process.

    The peak is the process's whole peak (``getrusage``), the interpreter's and
    torch's own memory included; the base is the peak before loading.
    """
    words = ("thermodynamic inertia of the golden angle rotates every hidden unit a little "
             "further; Landauer's bound prices each erased bit. ").split()
    rng = torch.Generator().manual_seed(0)
    picks = torch.randint(len(words), (200_000,), generator=rng).tolist()
    block = " ".join(words[i] for i in picks)
    block = "\n".join(block[i:i + 79] for i in range(0, len(block), 80)) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        size = megabytes * 1_000_000
        with open(path, "w", encoding="utf-8") as f:
            written = 0
            while written < size:
                piece = block[: size - written]
                f.write(piece)
                written += len(piece)
        out = subprocess.run([sys.executable, "-c", CORPUS_LOAD_CHILD, str(path)], cwd=REPO, check=True,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds, peak, base, chars, vocab = out.stdout.split()
    return {"bytes": size, "seconds": float(seconds), "peak": int(peak), "base": int(base),
            "chars": int(chars), "vocab": int(vocab)}


def print_corpus_load(megabytes: int) -> None:
    r = bench_corpus_load(megabytes)
    mb = 1 << 20
    print(f"corpus load ({r['bytes'] / 1e6:.0f} MB text, {r['chars']:,} chars, vocabulary {r['vocab']}): "
          f"{r['seconds']:.1f} s, peak RSS {r['peak'] / mb:,.0f} MiB = {r['peak'] / r['bytes']:.2f}x the file "
          f"({(r['peak'] - r['base']) / r['bytes']:.2f}x above the {r['base'] / mb:,.0f} MiB before loading)")


def bench_analysis(corpus, rounds: int) -> dict:
    """Median seconds to analyse the validation split (the text a run is evaluated on)."""
    cfg = CONFIGS["default"]
    torch.manual_seed(0)
    model = LandauerLLM.from_config(cfg.model_kwargs(corpus.vocab_size)).eval()
    text = corpus.text[int(TRAIN_FRACTION * len(corpus.text)):]
    analyse_text(model, corpus.itos, text[:1000])  # warm-up: loads the compiled scan
    plain, hidden, html = [], [], []
    result = None
    for _ in range(rounds):
        plain.append(_timed(lambda: analyse_text(model, corpus.itos, text)))
        hidden.append(_timed(lambda: analyse_text(model, corpus.itos, text, keep_hidden=True)))
        result = analyse_text(model, corpus.itos, text)
        html.append(_timed(lambda r=result: render_html(r)))
    return {
        "chars": len(text),
        "shape": f"E{cfg.embed_dim}, H{cfg.hidden_dim}, L{cfg.num_layers}, V{corpus.vocab_size}",
        "plain_s": statistics.median(plain),
        "plain_range": (min(plain), max(plain)),
        "hidden_s": statistics.median(hidden),
        "html_s": statistics.median(html),
    }


SECTIONS = ("training", "generation", "analysis", "corpus-load")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_corpus())
    ap.add_argument("--configs", default="default,benchmark", help="comma-separated: " + ", ".join(CONFIGS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--gen-chars", type=int, default=4000)
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    ap.add_argument("--corpus-mb", type=int, default=200, help="size of the generated corpus to load")
    ap.add_argument("--corpus-load", action="store_true", help="only the corpus load benchmark")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help="comma-separated: " + ", ".join(SECTIONS))
    args = ap.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    if args.corpus_load:
        print_corpus_load(args.corpus_mb)
        return 0
    sections = set(args.sections.split(","))
    unknown = sections - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s): {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")

    corpus = load_corpus(args.data)
    keep_freed_memory()  # as the trainer does
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__} | {describe(torch.device('cpu'))} | python {platform.python_version()}")
    print(f"numba scan: {'on' if scan_numba.available() else 'off (' + str(scan_numba.unavailable_reason()) + ')'}"
          f" | corpus {args.data.name} ({corpus.characters:,} chars) | load average {load:.2f} | {rounds} rounds")
    print()
    if "training" in sections:
        _print_training(args, corpus, rounds)
    if "generation" in sections:
        _print_generation(args, corpus, rounds)
    if "analysis" in sections:
        a = bench_analysis(corpus, rounds)
        print(f"analysis (validation split, {a['chars']:,} chars, {a['shape']}): "
              f"{a['plain_s']:.2f} s ({a['plain_range'][0]:.2f}-{a['plain_range'][1]:.2f}), "
              f"{a['chars'] / a['plain_s']:,.0f} chars/s; keeping every layer's states "
              f"{a['hidden_s']:.2f} s; HTML report {a['html_s']:.2f} s")
    if "corpus-load" in sections:
        print_corpus_load(args.corpus_mb)
    return 0


def _print_training(args, corpus, rounds: int) -> None:
    print(f"{'training':<10} {'shape':<34} {'fast tok/s':>11} {'per-step tok/s':>15} {'ratio':>7}  (min-max)")
    results = {}
    for name in args.configs.split(","):
        r = results[name] = bench_training(name, CONFIGS[name], corpus, rounds)
        print(f"{r['name']:<10} {r['shape']:<34} {r['fast_tok_s']:>11,.0f} {r['ref_tok_s']:>15,.0f} "
              f"{r['ratio']:>6.2f}x  ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f})  "
              f"[{r['fast_ms']:.1f} ms vs {r['ref_ms']:.1f} ms per step]")
    for name in args.configs.split(","):
        r = results[name]
        print(f"  {name}: the fast step's matrix products alone take {r['products_ms']:.1f} ms: "
              f"no scan could take the ratio past {r['ceiling']:.2f}x on this CPU")
    print()


def _print_generation(args, corpus, rounds: int) -> None:
    g = bench_generation(corpus, rounds, args.gen_chars)
    print(f"generation ({args.gen_chars} chars, default model): stream ({g['engine']}) "
          f"{g['stream_chars_s']:,.0f} chars/s, original loop {g['original_chars_s']:,.0f} chars/s, "
          f"ratio {g['ratio']:.2f}x ({g['ratio_range'][0]:.2f}-{g['ratio_range'][1]:.2f})")


if __name__ == "__main__":
    raise SystemExit(main())
