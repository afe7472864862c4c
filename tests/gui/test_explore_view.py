"""The Explore view end to end: analyse, hover, branch, rank units, compare, export."""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from core.checkpoint import build_payload, save_checkpoint
from core.model import LandauerLLM
from landauer_gui.explore.view import ExploreView

TIMEOUT_MS = 60_000  # the first analysis of a session compiles the CPU kernels
TEXT = "the cat sat on the mat. ZZZZ the dog sat on the log.\nthe end."
PLANTED = 5  # the layer-0 unit that fires on 'Z' only


def _checkpoint(path: Path, seed: int = 0, plant: bool = False, hidden: int = 16, layers: int = 2) -> Path:
    torch.manual_seed(seed)
    itos = dict(enumerate(sorted(set(TEXT))))
    model = LandauerLLM(len(itos), embed_dim=8, hidden_dim=hidden, num_layers=layers)
    if plant:  # unit PLANTED of layer 0 reads only embedding dim 0, which only 'Z' has
        z = {ch: i for i, ch in itos.items()}["Z"]
        with torch.no_grad():
            emb = model.token_embedding.weight
            emb[:, 0] = 0.0
            emb[z, 0] = 1.0
            lin = model.rnn.input_linears[0]
            lin.weight[PLANTED] = 0.0
            lin.weight[PLANTED, 0] = 4.0
            lin.bias[PLANTED] = -1.0
            model.rnn.hidden_scale[0, PLANTED] = 0.0
    payload = build_payload(model, itos, {"seq_len": 8, "temperature": 0.05}, {"step": 100 * (seed + 1)})
    return save_checkpoint(path, payload)


@pytest.fixture
def view(qtbot):
    v = ExploreView()
    qtbot.addWidget(v)
    v.resize(1280, 800)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.shutdown()


def _analyse(qtbot, view: ExploreView, ckpt: Path, text: str = TEXT) -> None:
    view.checkpoints.add(ckpt, select=True)
    view.source.set_typed_text(text)
    with qtbot.waitSignal(view.analysis_finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(view.source.analyse_button, Qt.MouseButton.LeftButton)
    assert view.error_text() == ""


def test_analyse_colours_the_text_and_fills_the_summary(qtbot, view, tmp_path):
    _analyse(qtbot, view, _checkpoint(tmp_path / "a.pth"))
    prep = view.prepared()
    assert view.pane.text() == TEXT
    assert prep.per_char["surprise"].shape == (len(TEXT),) and np.isnan(prep.per_char["surprise"][0])
    assert prep.hidden.shape == (2, len(TEXT), 16)
    assert "bits/char" in view.summary_label.text()
    assert view.colours.legend.entries() and view.pane.scale() is prep.scales["surprise"]
    view.set_colour_mode("rank")
    assert view.colours.legend.entries() == ["top 1", "top 5", "top 20", "beyond"]
    view.set_colour_mode("motion")
    assert view.pane.scale() is prep.scales["motion"]


def test_hovering_a_character_shows_its_whole_distribution_with_the_actual_char_marked(qtbot, view, tmp_path):
    _analyse(qtbot, view, _checkpoint(tmp_path / "a.pth"))
    i = TEXT.index("dog") + 1  # 'o'
    qtbot.mouseMove(view.pane.viewport(), view.pane.cell_rect(i).center())
    qtbot.waitUntil(lambda: view.position() == i, timeout=5000)
    analysis = view.prepared().analysis
    assert view.branching.chart.bar_count() == len(analysis.itos)
    np.testing.assert_allclose(view.branching.chart.heights(), analysis.probs[i - 1])
    o = analysis.ids[i]
    assert view.branching.chart.actual() == o and view.branching.chart.marked_slots() == [view.branching.chart.slot_of(o)]
    assert view.tracks.hover_lines[0].value() == i
    view.form.set_values(view.form.values().replace(top_k=3))
    assert np.count_nonzero(view.branching.chart.shaped_heights()) == 3
    view.select_position(7)  # as a click on the plots does
    assert view.pane.cursor() == 7 and view.tracks.cursor_position() == 7


def test_clicking_a_bar_branches_the_text_with_that_character(qtbot, view, tmp_path):
    _analyse(qtbot, view, _checkpoint(tmp_path / "a.pth"))
    i = TEXT.index("cat")
    view.select_position(i)
    view.form.set_values(view.form.values().replace(max_new_tokens=30, seed=1))
    itos = view.prepared().analysis.itos
    chosen = next(k for k, ch in itos.items() if ch == "d")
    vb = view.branching.chart.plot.getPlotItem().vb
    at = view.branching.chart.plot.mapFromScene(vb.mapViewToScene(QPointF(view.branching.chart.slot_of(chosen), 0.0)))
    with qtbot.waitSignal(view.branch_finished, timeout=TIMEOUT_MS) as blocker:
        qtbot.mouseClick(view.branching.chart.plot.viewport(), Qt.MouseButton.LeftButton, pos=at)
    branch = blocker.args[0]
    assert branch.startswith(TEXT[:i] + "d") and len(branch) == i + 1 + 30
    assert view.branching.branch_output.toPlainText().endswith(branch[-30:])
    assert view.pane.text() == TEXT
    with qtbot.waitSignal(view.analysis_finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(view.branching.branch_explore, Qt.MouseButton.LeftButton)
    assert view.pane.text() == branch


def test_selecting_a_span_ranks_the_planted_unit_first_and_colours_by_it(qtbot, view, tmp_path):
    _analyse(qtbot, view, _checkpoint(tmp_path / "p.pth", plant=True))
    start = TEXT.index("ZZZZ")
    with qtbot.waitSignal(view.ranking_finished, timeout=TIMEOUT_MS):
        view.pane.set_selection(start, start + 4)
    assert view.heatmap.ranked_units()[0] == PLANTED
    view.heatmap.select_unit(PLANTED)
    assert view.colour_mode() == "unit"
    assert "unit 5" in view.colours.legend.toolTip()
    acts = view.prepared().hidden[0, :, PLANTED]
    assert acts[start:start + 4].min() > 0.9 > acts[:start].max()


def test_phase_circles_put_each_unit_at_its_rotation_angle(qtbot, view, tmp_path):
    _analyse(qtbot, view, _checkpoint(tmp_path / "a.pth"))
    view.lower_tabs.setCurrentWidget(view.phase)  # the circles draw while on screen
    view.phase.spread.setChecked(False)
    view.select_position(10)
    from core.analysis import phase_angles

    model = view.analyser.model()
    angles = phase_angles(model, view.prepared().hidden, 10)
    pts = view.phase.points(1)
    np.testing.assert_allclose(np.arctan2(pts[:, 1], pts[:, 0]) % (2 * np.pi), angles[1], atol=1e-4)


def test_compare_colours_by_the_difference_in_surprise(qtbot, view, tmp_path):
    a = _checkpoint(tmp_path / "a.pth", seed=0)
    b = _checkpoint(tmp_path / "b.pth", seed=1)
    _analyse(qtbot, view, a)
    view.set_compare_checkpoint(b)
    with qtbot.waitSignal(view.compare_finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(view.comparison.compare_button, Qt.MouseButton.LeftButton)
    from core.analysis import analyse_checkpoint

    other = analyse_checkpoint(b, TEXT)
    want = (other.surprise - view.prepared().analysis.surprise) / np.log(2)
    np.testing.assert_allclose(view.compared().delta_bits[1:], want, atol=1e-5)
    assert view.colour_mode() == "compare" and "surprise of b.pth" in view.colours.legend.toolTip()


def test_export_writes_html_csv_and_the_heatmap(qtbot, view, tmp_path):
    _analyse(qtbot, view, _checkpoint(tmp_path / "a.pth"))
    for name in ("out.html", "out.csv"):
        with qtbot.waitSignal(view.export_finished, timeout=TIMEOUT_MS):
            assert view.exports.export(tmp_path / name)
    page = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert TEXT.replace("\n", "↵") in html.unescape(re.sub(r"<[^>]*>", "", page))  # the writer marks newlines
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert "".join(r[1] for r in rows[1:]) == TEXT[1:]  # one row per predicted character
    with qtbot.waitSignal(view.export_finished, timeout=TIMEOUT_MS):
        assert view.exports.export(tmp_path / "heat.png")
    assert (tmp_path / "heat.png").stat().st_size > 1000
    assert not view.exports.export(tmp_path / "out.txt")
    assert "unknown report type" in view.error_text()


def test_unknown_characters_and_files_are_refused_with_a_message(qtbot, view, tmp_path):
    ckpt = _checkpoint(tmp_path / "a.pth")
    _analyse(qtbot, view, ckpt)
    view.source.set_typed_text("the cat Q")
    with qtbot.waitSignal(view.analysis_finished, timeout=TIMEOUT_MS):
        view.analyse()
    assert "'Q'" in view.error_text()
    assert view.pane.text() == TEXT  # the last good analysis stays
    with qtbot.waitSignal(view.source.read_slot.finished, timeout=TIMEOUT_MS):
        view.source.open_file(tmp_path / "missing.txt")
    assert "Cannot read" in view.error_text()


def test_a_file_and_a_corpus_slice_are_read_and_analysed(qtbot, view, tmp_path):
    ckpt = _checkpoint(tmp_path / "a.pth")
    view.checkpoints.add(ckpt, select=True)
    (tmp_path / "t.txt").write_text("the log sat on the cat.", encoding="utf-8")
    with qtbot.waitSignal(view.analysis_finished, timeout=TIMEOUT_MS):
        view.source.open_file(tmp_path / "t.txt")
    assert view.pane.text() == "the log sat on the cat."
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 20, encoding="utf-8")
    view.source.set_corpus_slice(corpus, 10, 25)
    with qtbot.waitSignal(view.analysis_finished, timeout=TIMEOUT_MS):
        view.source.take_corpus_slice()
    n = int(0.9 * len(TEXT * 20))
    assert view.pane.text() == (TEXT * 20)[n + 10:n + 35]


def test_explore_this_sample_sends_the_generate_views_text_to_the_explore_tab(qtbot, tmp_path):
    from landauer_gui.main_window import EXPLORE_TAB, MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    ckpt = _checkpoint(tmp_path / "a.pth")
    gv = w.generate_view
    gv.add_checkpoint(ckpt)
    gv.set_prompt("the ")
    gv.set_sampling(max_new_tokens=40, seed=3)
    assert not gv.explore_button.isEnabled()
    with qtbot.waitSignal(gv.generation_finished, timeout=TIMEOUT_MS):
        gv.generate()
    with qtbot.waitSignal(w.explore_view.analysis_finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(gv.explore_button, Qt.MouseButton.LeftButton)
    assert w.tabs.currentIndex() == EXPLORE_TAB
    assert w.explore_view.pane.text() == gv.output_text() and len(gv.output_text()) == 44
    assert w.explore_view.checkpoints.selected_path() == ckpt.resolve()
    w.explore_view.shutdown()
    gv.shutdown()


def test_generate_view_colours_characters_by_probability_as_they_stream(qtbot, tmp_path):
    from core.checkpoint import load_model
    from core.hparams import SamplingConfig
    from core.sampling import TextGenerator
    from landauer_gui.explore.colours import runs_by_surprise
    from landauer_gui.generate_view import GenerateView

    gv = GenerateView()
    qtbot.addWidget(gv)
    ckpt = _checkpoint(tmp_path / "a.pth")
    gv.add_checkpoint(ckpt)
    gv.set_prompt("the ")
    gv.set_sampling(max_new_tokens=60, seed=5, temperature=1.0)
    gv.colour_check.setChecked(True)
    with qtbot.waitSignal(gv.generation_finished, timeout=TIMEOUT_MS):
        gv.generate()
    model, itos, _ = load_model(ckpt)
    scored = list(TextGenerator(model, itos).stream_scored("the ", SamplingConfig(max_new_tokens=60, seed=5)))
    text = "".join(c for c, _ in scored)
    assert gv.generated_text() == text
    want = [colour for run, colour in runs_by_surprise(text, [p for _, p in scored]) for _ in run]
    assert len(set(want)) > 1  # the test means something only if the colours vary
    doc = gv.output.document()
    got = []  # (char, background) of every character shown; newlines are block breaks, not fragments
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            c = fragment.charFormat().background().color()
            got += [(ch, (c.red(), c.green(), c.blue())) for ch in fragment.text()]
            it += 1
        block = block.next()
    got = [colour for _, colour in got[4:]]  # after the prompt
    want = [colour for ch, colour in zip(text, want, strict=True) if ch != "\n"]
    assert got == want
    gv.colour_check.setChecked(False)
    with qtbot.waitSignal(gv.generation_finished, timeout=TIMEOUT_MS):
        gv.generate()
    assert gv.generated_text() == text  # the same seed draws the same characters, uncoloured
    assert doc.begin().begin().fragment().charFormat().background().style() == Qt.BrushStyle.NoBrush
    last = doc.lastBlock().begin().fragment()
    assert last.text() and last.charFormat().background().style() == Qt.BrushStyle.NoBrush
    gv.shutdown()
