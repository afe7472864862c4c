"""Text analysis (core.analysis), its reports (core.report) and ``landauer-analyse``.

Tolerances against the per-step reference: the analysis uses the fast path
(all positions' projections in one matrix product, the numba scan on CPU),
whose last-bit differences the recurrence can amplify to about 3e-5 over the
64 steps of a golden row (1.2e-4 over 256 steps; see tests/test_parity.py),
so one row is compared with atol 1e-4 on states and 1e-5 on probabilities,
still far below any change of the math. Against the model's own fast
forward the analysis agrees to 1e-6 over the whole 256-character text.
"""

from __future__ import annotations

import csv
import io
import math
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analyse_cli import main as analyse_main
from core.analysis import (
    analyse_checkpoint,
    analyse_text,
    compare,
    phase_angles,
    rank_units,
)
from core.checkpoint import build_payload, save_checkpoint
from core.model import LandauerLLM, compute_losses
from core.sampling import PromptError

REPO = Path(__file__).resolve().parents[1]
VOCAB = sorted(set("abc <>&\"'\n\t"))
TEXT = "a <b> & \"c\"\n\t'ab' c\n\ncab<&>" * 3


def _tiny(seed: int = 0, vocab=VOCAB) -> tuple[LandauerLLM, dict[int, str]]:
    torch.manual_seed(seed)
    model = LandauerLLM(len(vocab), embed_dim=8, hidden_dim=16, num_layers=2).eval()
    return model, dict(enumerate(vocab))


def _ids(text: str, itos: dict[int, str]) -> torch.Tensor:
    stoi = {ch: i for i, ch in itos.items()}
    return torch.tensor([[stoi[ch] for ch in text]])


@pytest.fixture(scope="module")
def golden_case(golden_dir):
    """The golden default weights on a text made of the golden token rows."""
    golden = torch.load(golden_dir / "parity_default.pt", weights_only=True)
    model = LandauerLLM.from_config(golden["config"])
    model.load_state_dict(golden["state_dict"])
    model.eval()
    itos = {i: chr(0x3B1 + i) for i in range(golden["config"]["vocab_size"])}
    idx = golden["idx"].reshape(1, -1)  # the four rows read as one 256-character text
    text = "".join(itos[int(i)] for i in idx[0])
    return model, itos, idx, text, golden["config"]


def test_is_the_models_fast_forward(golden_case):
    """Same projections and scan as LandauerLLM.forward, so the same numbers."""
    model, itos, idx, text, _ = golden_case
    a = analyse_text(model, itos, text, keep_hidden=True)
    with torch.no_grad():
        logits, trace, _ = model(idx)
    np.testing.assert_allclose(a.hidden[-1], trace[:, 0].numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(a.probs, torch.softmax(logits[0, :-1], -1).numpy(), atol=1e-6, rtol=0)


def test_matches_the_per_step_reference(golden_case):
    model, itos, idx, text, _ = golden_case
    idx, text = idx[:, :64], text[:64]  # one golden row, as tests/test_parity.py checks it
    a = analyse_text(model, itos, text, keep_hidden=True)
    n = len(text)
    with torch.no_grad():
        logits, trace, _ = model.forward_reference(idx)
        # every layer's state through the published cell, one character at a time
        state = model.init_state(1)
        layers = []
        for t in range(n):
            _, state = model.step(idx[:, t], state)
            layers.append(state[:, 0])
    ref_hidden = torch.stack(layers, dim=1).numpy()  # (L, n, H)
    ref_probs = torch.softmax(logits[0, :-1], dim=-1).numpy()
    top = trace[:, 0].numpy()
    ref_motion = ((top[1:] - top[:-1]) ** 2).mean(axis=1)

    assert a.probs.shape == (n - 1, len(itos)) and a.probs.dtype == np.float32
    assert a.hidden.shape == (model.config.num_layers, n, model.config.hidden_dim)
    assert a.hidden.dtype == np.float32
    np.testing.assert_allclose(a.hidden, ref_hidden, atol=1e-4, rtol=0)
    np.testing.assert_allclose(a.hidden[-1], top, atol=1e-4, rtol=0)
    np.testing.assert_allclose(a.probs, ref_probs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(a.motion, ref_motion, atol=1e-5, rtol=1e-4)


def test_mean_surprise_is_the_content_loss_and_energy_the_energy_term(golden_case):
    model, itos, idx, text, cfg = golden_case
    a = analyse_text(model, itos, text, temperature=cfg["temperature"])
    with torch.no_grad():
        logits, trace, _ = model(idx)
        losses = compute_losses(logits[:, :-1], idx[:, 1:], trace, cfg["temperature"], 0.0)
    s = a.summary()
    assert s.mean_surprise == pytest.approx(float(losses.content), abs=2e-6)
    assert s.bits_per_char == pytest.approx(s.mean_surprise / math.log(2))
    assert s.energy == pytest.approx(float(losses.energy), rel=1e-5)
    assert s.n_chars == len(text) and s.n_predicted == len(text) - 1


def test_probabilities_ranks_and_surprise_agree():
    model, itos = _tiny()
    a = analyse_text(model, itos, TEXT)
    n = len(TEXT)
    assert a.surprise.shape == a.rank.shape == a.motion.shape == (n - 1,)
    assert a.ids.shape == (n,) and a.ids.dtype == np.int64 and a.rank.dtype == np.int64
    np.testing.assert_allclose(a.probs.sum(axis=1), 1.0, atol=1e-5)
    target = a.ids[1:]
    actual = a.probs[np.arange(n - 1), target]
    np.testing.assert_allclose(np.exp(-a.surprise), actual, rtol=1e-5)
    order = np.argsort(-a.probs, axis=1, kind="stable")
    expected_rank = 1 + np.nonzero(order == target[:, None])[1]
    np.testing.assert_array_equal(a.rank, expected_rank)
    top_ids, top_probs = a.top_k(5)
    assert top_ids.shape == top_probs.shape == (n - 1, 5)
    np.testing.assert_array_equal(top_ids[:, 0], order[:, 0])
    assert (np.diff(top_probs, axis=1) <= 0).all()
    assert a.summary().top1_accuracy == pytest.approx(float((a.rank == 1).mean()))


@pytest.mark.parametrize("chunk", [1, 7, len(TEXT) - 1])
def test_chunked_equals_unchunked(chunk):
    model, itos = _tiny(1)
    whole = analyse_text(model, itos, TEXT, keep_hidden=True, chunk_size=10_000)
    part = analyse_text(model, itos, TEXT, keep_hidden=True, chunk_size=chunk)
    for name in ("probs", "surprise", "motion", "hidden"):
        np.testing.assert_allclose(getattr(part, name), getattr(whole, name), atol=1e-6, rtol=0,
                                   err_msg=name)
    np.testing.assert_array_equal(part.rank, whole.rank)


def test_unknown_characters_and_short_texts_are_refused():
    model, itos = _tiny()
    with pytest.raises(PromptError, match="'z'.*'Q'") as info:
        analyse_text(model, itos, "abzcQz")
    assert info.value.missing == ("z", "Q")
    for text in ("", "a"):
        with pytest.raises(ValueError, match="at least 2"):
            analyse_text(model, itos, text)


def test_phase_angles_are_the_cells_rotation():
    model, itos = _tiny(2)
    a = analyse_text(model, itos, TEXT, keep_hidden=True)
    for position in (0, 5, len(TEXT) - 1):
        ph = phase_angles(model, a.hidden, position)
        assert ph.shape == (2, 16) and ph.dtype == np.float32
        assert (ph >= 0).all() and (ph < 2 * np.pi + 1e-6).all()
        for layer in range(2):
            angles = model.rnn.angles(layer, torch.float32, torch.device("cpu"))
            h_prev = torch.from_numpy(a.hidden[layer, position - 1]) if position else torch.zeros(16)
            r = torch.cos(angles + h_prev).numpy()  # what the cell multiplies the state by
            np.testing.assert_allclose(np.cos(ph[layer]), r, atol=2e-4)
    with pytest.raises(IndexError):
        phase_angles(model, a.hidden, len(TEXT))


def test_rank_units_finds_a_planted_unit():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(400, 32)).astype(np.float32)
    hidden[100:150, 17] += 3.0  # fires inside the span
    hidden[100:150, 4] -= 2.0  # silent inside the span
    units, scores = rank_units(hidden, 100, 150)
    assert units.shape == scores.shape == (32,) and units.dtype == np.int64
    assert list(units[:2]) == [17, 4]
    assert scores[0] > 2.5 and scores[1] < -1.5
    assert sorted(units.tolist()) == list(range(32))
    assert (np.diff(np.abs(scores)) <= 0).all()
    with pytest.raises(ValueError):
        rank_units(hidden, 0, 400)
    with pytest.raises(ValueError):
        rank_units(hidden, 50, 50)


def test_compare_two_checkpoints_on_one_text():
    (m1, itos), (m2, _) = _tiny(0), _tiny(3)
    a, b = analyse_text(m1, itos, TEXT), analyse_text(m2, itos, TEXT)
    diff = compare(a, b)
    assert diff.shape == (len(TEXT) - 1,) and diff.dtype == np.float32
    np.testing.assert_allclose(diff, b.surprise - a.surprise)
    with pytest.raises(ValueError, match="different texts"):
        compare(a, analyse_text(m2, itos, TEXT[:-1]))


# --------------------------------------------------------------------------- checkpoint + CLI


@pytest.fixture
def checkpoint(tmp_path):
    model, itos = _tiny()
    path = tmp_path / "tiny.pth"
    save_checkpoint(path, build_payload(model, itos, {"temperature": 0.5},
                                        {"train_config": {"temperature": 0.25}}))
    return path


def test_analyse_checkpoint_takes_the_runs_temperature(checkpoint):
    a = analyse_checkpoint(checkpoint, TEXT)
    assert a.temperature == 0.25
    s = a.summary()
    assert s.energy == pytest.approx(0.25 * math.log((1 + math.sqrt(5)) / 2) * s.mean_motion, rel=1e-6)
    assert analyse_checkpoint(checkpoint, TEXT, temperature=1.0).temperature == 1.0


class _Spans(HTMLParser):
    """The characters of the page's text, one per span, with their tooltips."""

    def __init__(self):
        super().__init__()
        self.spans: list[tuple[str, str]] = []
        self._in_text = self._title = None
        self._chars: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and attrs.get("class") == "text":
            self._in_text = True
        elif self._in_text and tag == "span":
            self._title, self._chars = attrs["title"], []

    def handle_data(self, data):
        if self._title is not None:
            self._chars.append(data)

    def handle_endtag(self, tag):
        if tag == "span" and self._title is not None:
            self.spans.append(("".join(self._chars), self._title))
            self._title = None
        elif tag == "div":
            self._in_text = False


def test_cli_writes_an_escaped_html_page(checkpoint, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert analyse_main(["--checkpoint", str(checkpoint), "--text", TEXT, "--out", str(out)]) == 0
    assert "bits per character" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    parser = _Spans()
    parser.feed(page)
    assert len(parser.spans) == len(TEXT)
    shown = "".join("\n" if ch == "\u21b5" else ch for ch, _ in parser.spans)
    assert shown == TEXT  # every character, in order, unescaped by the parser
    assert page.count("<br>") == TEXT.count("\n")
    assert "<b>" not in page and "&lt;b&gt;" not in page  # '<' and 'b' are separate spans
    assert '<span class="s' in page and "&lt;" in page and "&amp;" in page and "&quot;" in page
    a = analyse_checkpoint(checkpoint, TEXT)
    ch, title = parser.spans[3]  # 'b' after "a <"
    assert ch == "b"
    assert f"surprise {a.surprise[2]:.3f} nats" in title and f"rank {a.rank[2]}" in title
    assert "top 5:" in title and "motion" in title
    assert "mean surprise (content loss)" in page and "energy" in page


def test_cli_writes_a_csv_row_per_character(checkpoint, tmp_path):
    out = tmp_path / "report.csv"
    assert analyse_main(["--checkpoint", str(checkpoint), "--text", TEXT, "--out", str(out)]) == 0
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(TEXT) - 1
    assert [r["char"] for r in rows] == list(TEXT[1:])
    assert [int(r["position"]) for r in rows] == list(range(1, len(TEXT)))
    a = analyse_checkpoint(checkpoint, TEXT)
    np.testing.assert_allclose([float(r["surprise_nats"]) for r in rows], a.surprise, rtol=1e-5)
    np.testing.assert_array_equal([int(r["rank"]) for r in rows], a.rank)
    for r in rows:
        assert float(r["prob"]) == pytest.approx(math.exp(-float(r["surprise_nats"])), rel=1e-4)
        tops = [float(r[f"top{j}_prob"]) for j in range(1, 6)]
        assert tops == sorted(tops, reverse=True) and tops[0] >= float(r["prob"]) - 1e-6
        if r["rank"] == "1":
            assert r["top1_char"] == r["char"]


def test_cli_reads_a_text_file(checkpoint, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "r.csv"
    assert analyse_main(["--checkpoint", str(checkpoint), "--text-file", str(src), "--out", str(out)]) == 0
    assert len(list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))) == len(TEXT)


def _bad_inputs(tmp_path: Path, checkpoint: Path) -> dict[str, list[str]]:
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(checkpoint.read_bytes()[:300])
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    ok = ["--text", TEXT]
    return {
        "missing checkpoint": ["--checkpoint", str(tmp_path / "nope.pth"), *ok, "--out", str(tmp_path / "r.html")],
        "damaged checkpoint": ["--checkpoint", str(damaged), *ok, "--out", str(tmp_path / "r.html")],
        "unknown characters": ["--checkpoint", str(checkpoint), "--text", "abXc", "--out", str(tmp_path / "r.html")],
        "one character": ["--checkpoint", str(checkpoint), "--text", "a", "--out", str(tmp_path / "r.csv")],
        "missing text file": ["--checkpoint", str(checkpoint), "--text-file", str(tmp_path / "none.txt"),
                              "--out", str(tmp_path / "r.csv")],
        "unwritable out": ["--checkpoint", str(checkpoint), *ok, "--out", str(blocker / "r.html")],
        "out is a folder": ["--checkpoint", str(checkpoint), *ok, "--out", str(tmp_path / "dir.html")],
        "unknown extension": ["--checkpoint", str(checkpoint), *ok, "--out", str(tmp_path / "r.pdf")],
    }


@pytest.mark.parametrize("case", ["missing checkpoint", "damaged checkpoint", "unknown characters",
                                  "one character", "missing text file", "unwritable out",
                                  "out is a folder", "unknown extension"])
def test_cli_refuses_bad_input_in_one_line(case, checkpoint, tmp_path, capsys):
    (tmp_path / "dir.html").mkdir()
    argv = _bad_inputs(tmp_path, checkpoint)[case]
    assert analyse_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("landauer-analyse: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    if case == "unknown characters":
        assert "'X'" in err
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.csv").exists()


def test_module_launcher():
    """``python -m core.analyse`` is the same command (help needs no torch, so this is quick)."""
    proc = subprocess.run([sys.executable, "-m", "core.analyse", "--help"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: landauer-analyse") and "--text-file" in proc.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu():
    model, itos = _tiny(4)
    cpu = analyse_text(model, itos, TEXT, keep_hidden=True, chunk_size=13)
    gpu = analyse_text(model.to("cuda"), itos, TEXT, keep_hidden=True, chunk_size=13)
    np.testing.assert_allclose(gpu.probs, cpu.probs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(gpu.hidden, cpu.hidden, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(gpu.rank, cpu.rank)
