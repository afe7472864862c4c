"""Reproducing the published table: protocol, engine, resume, stop, outputs, command line."""

from __future__ import annotations

import json
import re
import runpy
import signal
import sys
import threading
import warnings
from pathlib import Path

import pytest
import torch

import core.train_step as train_step_mod
from core.data import Corpus, load_corpus
from core.events import EvalMetrics, StepMetrics
from core.hparams import TrainConfig
from core.published import (
    CANONICAL_CORPUS_CHARS,
    CANONICAL_CORPUS_SHA256,
    PUBLISHED_ROWS,
    parse_rows,
    rows_of_setting,
    setting_key,
)
from core.reproduce import (
    Planned,
    ReproduceConfig,
    Reproduction,
    ReproductionFinished,
    RowSummary,
    SeedFailed,
    SeedFinished,
    SeedProgress,
    SeedStarted,
)
from core.reproduce_cli import main
from core.reproduce_report import SeedResult, corpus_facts, corpus_warning, summarize
from core.trainer import Trainer
from tests.test_trainer import tiny as trainer_tiny

REPO = Path(__file__).resolve().parents[1]
TEXT = "Now is the winter of our discontent made glorious summer by this sun of York. " * 40

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def cli_args(tmp_path: Path, corpus: Path, *extra: str) -> list[str]:
    """Row 1's real model, a handful of steps, two validation batches: a few seconds per seed."""
    return ["--rows", "1", "--seeds", "2", "--steps", "4", "--eval-every", "2",
            "--eval-batches", "2", "--device", "cpu", "--data-path", str(corpus),
            "--runs-dir", str(tmp_path / "runs"), "--log-every", "0", *extra]


def of(events, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


def table_rows(markdown: str) -> dict[int, list[str]]:
    """The Markdown table's data rows, by run number, as lists of cell texts."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows[int(cells[0])] = cells
    return rows


# -- the published table --------------------------------------------------------------


def test_published_rows_and_their_settings():
    assert [PUBLISHED_ROWS[n].val_loss for n in (1, 2, 3)] == [1.71, 1.785, 1.8248]
    assert {setting_key(n) for n in (1, 2, 3)} == {"row1"} and rows_of_setting("row1") == [1, 2, 3]
    assert [setting_key(n) for n in (4, 5, 6)] == ["row4", "row5", "row6"]
    row6 = TrainConfig().replace(**PUBLISHED_ROWS[6].overrides)
    assert (row6.seq_len, row6.hidden_dim, row6.num_layers, row6.lr, row6.phase_scaling,
            row6.energy_weight) == (256, 512, 4, 1e-3, 1.618, 0.01)
    assert parse_rows("1,4") == [1, 4] and parse_rows("1-4") == [1, 2, 3, 4]
    assert parse_rows("all") == [1, 2, 3, 4, 5, 6]
    for bad, says in (("7", "no published row 7"), ("x", "rows must be numbers")):
        with pytest.raises(ValueError, match=says):
            parse_rows(bad)


def test_bundled_presets_hold_the_same_settings():
    """The studio's benchmark presets and this table describe the same runs."""
    presets = {p.name[:2]: json.loads(p.read_text())["config"]
               for p in (REPO / "resources" / "presets").glob("0[1-4]-benchmark-*.json")}
    for preset, row in (("01", 1), ("02", 4), ("03", 5), ("04", 6)):
        expected = TrainConfig().replace(**PUBLISHED_ROWS[row].overrides).to_dict()
        for name, value in presets[preset].items():
            if name not in ("save_every", "eval_batches", "seed"):
                assert value == expected[name], (preset, name)


# -- the published validation protocol in the trainer -----------------------------------


def tiny(tmp_path: Path, **kw) -> TrainConfig:
    """The trainer tests' tiny run, 6 steps, evaluated every 2 on 3 batches."""
    return trainer_tiny(tmp_path, **{"data_path": "tiny.txt", "steps": 6, "eval_every": 2, "eval_batches": 3, **kw})


def test_published_protocol_draws_a_new_batch_each_evaluation(tmp_path):
    corpus = Corpus.from_text(TEXT, "tiny.txt")
    published = Trainer(tiny(tmp_path, eval_protocol="published"), corpus)
    events = list(published.run())
    evals = of(events, EvalMetrics)
    assert [e.batches for e in evals] == [1, 1, 1]
    # Same weights, two evaluations: a fresh batch each time, so different losses.
    again, third = published.evaluate(), published.evaluate()
    assert again.loss != third.loss and again.batches == 1
    # The training batches do not depend on the protocol.
    fixed = list(Trainer(tiny(tmp_path, save_dir=str(tmp_path / "fixed")), corpus).run())
    assert [e.loss for e in of(events, StepMetrics)] == [e.loss for e in of(fixed, StepMetrics)]
    assert [e.batches for e in of(fixed, EvalMetrics)] == [3, 3, 3]
    # Deterministic per seed.
    twin = list(Trainer(tiny(tmp_path, eval_protocol="published", save_dir=str(tmp_path / "t")),
                        corpus).run())
    assert [e.loss for e in of(twin, EvalMetrics)] == [e.loss for e in evals]


def test_published_protocol_resumes_with_the_same_validation_batches(tmp_path):
    corpus = Corpus.from_text(TEXT, "tiny.txt")
    cfg = tiny(tmp_path, steps=8, eval_protocol="published", save_dir=str(tmp_path / "full"))
    full = of(list(Trainer(cfg, corpus).run()), EvalMetrics)
    part_cfg = cfg.replace(save_dir=str(tmp_path / "part"))
    first = Trainer(part_cfg, corpus)
    part = []
    for e in first.run():
        part.append(e)
        if isinstance(e, EvalMetrics) and e.step == 4:
            first.stop()
    rest = list(Trainer(part_cfg.replace(resume=part[-1].last_checkpoint), corpus).run())
    losses = [e.loss for e in of(part, EvalMetrics) + of(rest, EvalMetrics)]
    assert losses == [e.loss for e in full]


# -- results ---------------------------------------------------------------------------


def result(setting: str, seed: int, val: float) -> SeedResult:
    return SeedResult(setting=setting, seed=seed, steps=10, eval_protocol="fixed",
                      eval_batches=2, eval_every=5, corpus_sha256="x", device="cpu",
                      device_description="CPU", torch_version=torch.__version__, val_loss=val,
                      val_content=val, val_energy=0.0, wall_s=2.0, train_s=1.5, run_dir="d")


def test_summary_statistics():
    (one,) = summarize([4], [result("row4", 0, 1.8)])
    assert one.n == 1 and one.sd is None and one.diff_sd is None
    rows = summarize([1, 2, 3], [result("row1", s, v) for s, v in ((0, 1.75), (1, 1.77), (2, 1.79))])
    assert [s.published for s in rows] == [1.71, 1.785, 1.8248]
    assert all(s.n == 3 and s.mean == pytest.approx(1.77) and s.sd == pytest.approx(0.02)
               for s in rows)
    assert [round(s.diff_sd, 3) for s in rows] == [3.0, -0.75, -2.74]
    assert rows[0].shared_with == (2, 3)


def test_corpus_warning_only_for_another_file(canonical_corpus):
    corpus = load_corpus(canonical_corpus)
    facts = corpus_facts(str(canonical_corpus), len(corpus.text), corpus.sha256)
    assert facts["canonical"] and facts["characters"] == CANONICAL_CORPUS_CHARS
    assert corpus.sha256 == CANONICAL_CORPUS_SHA256 and corpus_warning(facts) is None
    other = corpus_facts("mine.txt", 1000, "ab" * 32)
    assert "not the canonical tiny_shakespeare.txt" in corpus_warning(other)
    assert "only indicative" in corpus_warning(other)


# -- the command line and the engine ------------------------------------------------------


def test_smoke_table_markdown_json_and_warning(tmp_path, small_corpus, capsys):
    out = tmp_path / "results.md"
    code = main(cli_args(tmp_path, small_corpus, "--out", str(out)))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "only indicative" in captured.err and "Traceback" not in captured.err

    state = json.loads((tmp_path / "results.md.json").read_text())
    results = state["results"]
    assert sorted(r["seed"] for r in results) == [0, 1]
    assert all(r["steps"] == 4 and r["setting"] == "row1" for r in results)
    for r in results:
        assert f"reproduce-row1-seed{r['seed']}" in Path(r["run_dir"]).name
    for r in results:
        metrics = (Path(r["run_dir"]) / "metrics.jsonl").read_text().splitlines()
        last_val = [json.loads(x) for x in metrics if '"val"' in x][-1]
        assert last_val["step"] == 4 and last_val["loss"] == r["val_loss"]  # an ordinary run
    values = [r["val_loss"] for r in sorted(results, key=lambda r: r["seed"])]
    mean = sum(values) / 2
    sd = abs(values[0] - values[1]) / 2 ** 0.5
    table = {row["row"]: row for row in state["table"]}
    assert sorted(table) == [1, 2, 3]  # row 1 asked for: rows 2 and 3 are the same setting
    for n, published in ((1, 1.71), (2, 1.785), (3, 1.8248)):
        assert table[n]["n"] == 2 and table[n]["mean"] == pytest.approx(mean)
        assert table[n]["sd"] == pytest.approx(sd)
        assert table[n]["diff_sd"] == pytest.approx((mean - published) / sd)
    assert state["corpus"]["canonical"] is False and state["corpus"]["characters"] == len(TEXT)

    markdown = out.read_text()
    assert captured.out.endswith(markdown)
    rows = table_rows(markdown)
    assert sorted(rows) == [1, 2, 3]
    assert [rows[n][5] for n in (1, 2, 3)] == ["~ 1.7100", "1.7850", "1.8248"]
    ours = re.fullmatch(r"(\d+\.\d{4}) ± (\d+\.\d{4}) \(n=2\)", rows[1][6])
    assert ours and float(ours[1]) == pytest.approx(mean, abs=1e-4)
    assert float(ours[2]) == pytest.approx(sd, abs=1e-4)
    assert float(rows[2][7]) == pytest.approx((mean - 1.785) / sd, abs=0.06)
    assert rows[1][9].startswith("CPU") and rows[1][10] == torch.__version__
    assert "Not comparable as is" in markdown and "PyTorch " + torch.__version__ in markdown
    assert "--steps 4" in markdown and "landauer-reproduce --rows 1" in markdown


def test_running_again_skips_finished_seeds(tmp_path, small_corpus, capsys):
    args = cli_args(tmp_path, small_corpus, "--json", str(tmp_path / "r.json"))
    assert main(args) == 0
    before = json.loads((tmp_path / "r.json").read_text())["results"]
    folders = set((tmp_path / "runs").iterdir())
    capsys.readouterr()

    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("finished earlier") == 3  # the plan line and both seeds
    assert set((tmp_path / "runs").iterdir()) == folders
    assert json.loads((tmp_path / "r.json").read_text())["results"] == before

    # A third seed runs only that seed; another step count is another measurement.
    assert main([*args, "--seeds", "3"]) == 0
    assert len(set((tmp_path / "runs").iterdir()) - folders) == 1
    assert main([*args, "--steps", "5", "--seeds", "1"]) == 0
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert sorted((r["steps"], r["seed"]) for r in results) == [(4, 0), (4, 1), (4, 2), (5, 0)]


def test_stop_keeps_finished_seeds_and_continues_the_stopped_one(tmp_path, small_corpus):
    config = ReproduceConfig(rows=(4,), seeds=2, steps=6, eval_every=3, eval_batches=2,
                             device="cpu", data_path=str(small_corpus),
                             runs_root=str(tmp_path / "runs"), log_every=0)
    state = tmp_path / "state.json"
    engine = Reproduction(config, state_path=state)
    events = []
    for event in engine.run():
        events.append(event)
        if (isinstance(event, SeedProgress) and event.seed == 1
                and isinstance(event.event, StepMetrics) and event.event.step == 2):
            stopper = threading.Thread(target=engine.stop)  # as a dialog's Stop button would
            stopper.start()
            stopper.join()
    end = events[-1]
    assert isinstance(end, ReproductionFinished) and end.stopped and end.error is None
    assert [e.result.seed for e in of(events, SeedFinished)] == [0]
    saved = json.loads(state.read_text())
    assert [r["seed"] for r in saved["results"]] == [0]
    (partial,) = saved["partial"]
    assert partial["seed"] == 1 and Path(partial["checkpoint"]).name == "landauer_llm_step2.pth"
    assert "Stopped before every seed had finished" in end.markdown

    again = list(Reproduction(config, state_path=state).run())
    assert of(again, Planned)[0].done == 1
    assert [(e.result.seed, e.skipped) for e in of(again, SeedFinished)] == [(0, True), (1, False)]
    (started,) = of(again, SeedStarted)
    assert started.resumed_from == partial["checkpoint"] and started.run_dir == partial["run_dir"]
    steps = [e.event.step for e in of(again, SeedProgress) if isinstance(e.event, StepMetrics)]
    assert steps == [3, 4, 5, 6]
    (summary,) = of(again, RowSummary)
    assert summary.row == 4 and summary.n == 2 and not again[-1].stopped
    assert json.loads(state.read_text())["partial"] == []


@pytest.mark.parametrize("extra, says", [
    (["--rows", "9"], "no published row 9"),
    (["--seeds", "0"], "at least one seed"),
    (["--data-path", "missing.txt"], "not found"),
    (["--device", "tpu"], "tpu"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, small_corpus, capsys, extra, says):
    code = main([*cli_args(tmp_path, small_corpus), *extra])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_foreign_output_file_is_not_overwritten(tmp_path, small_corpus, capsys):
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}\n')
    assert main([*cli_args(tmp_path, small_corpus), "--json", str(other)]) == 2
    assert "not a reproduction results file" in capsys.readouterr().err
    assert other.read_text() == '{"mine": 1}\n'


def test_an_unwritable_output_is_refused_before_training(tmp_path, small_corpus, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main([*cli_args(tmp_path, small_corpus), "--out", str(blocker / "r.md")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_python_dash_m_launcher(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["core.reproduce_cli", "--help"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: module already imported
        with pytest.raises(SystemExit) as done:
            runpy.run_module("core.reproduce_cli", run_name="__main__")
    assert done.value.code == 0 and "--eval-protocol" in capsys.readouterr().out
    # The console script points at this entry point.
    script = re.search(r'^landauer-reproduce = "([\w.]+):(\w+)"$',
                       (REPO / "pyproject.toml").read_text(), re.M)
    assert script and (script[1], script[2]) == (main.__module__, main.__name__)


def test_ctrl_c_stops_and_keeps_finished_seeds(tmp_path, small_corpus, capsys, monkeypatch):
    real = train_step_mod.fused_grads
    calls = {"n": 0}

    def interrupt_in_the_second_seed(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 6:  # seed 1, step 2
            signal.raise_signal(signal.SIGINT)  # handled in the main thread, as a real Ctrl+C
        return real(*args, **kw)

    monkeypatch.setattr(train_step_mod, "fused_grads", interrupt_in_the_second_seed)
    before = signal.getsignal(signal.SIGINT)
    code = main(cli_args(tmp_path, small_corpus, "--json", str(tmp_path / "r.json")))
    err = capsys.readouterr().err
    assert code == 130 and "Stopping after this step" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) is before
    state = json.loads((tmp_path / "r.json").read_text())
    assert [r["seed"] for r in state["results"]] == [0]
    assert [(p["seed"], Path(p["checkpoint"]).name) for p in state["partial"]] == [
        (1, "landauer_llm_step2.pth")]


def test_a_damaged_checkpoint_of_a_stopped_seed_is_dropped(tmp_path, small_corpus):
    config = ReproduceConfig(rows=(4,), seeds=1, steps=4, eval_every=2, eval_batches=2,
                             device="cpu", data_path=str(small_corpus),
                             runs_root=str(tmp_path / "runs"), log_every=0)
    bad = tmp_path / "runs" / "old" / "landauer_llm_step2.pth"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    key = {"setting": "row4", "seed": 0, "steps": 4, "eval_protocol": "fixed", "eval_batches": 2,
           "eval_every": 2, "corpus_sha256": load_corpus(small_corpus).sha256, "device": "cpu"}
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"format": "landauer-reproduce", "format_version": 1, "results": [],
                                 "partial": [{**key, "run_dir": str(bad.parent),
                                              "checkpoint": str(bad), "wall_s": 1.0}]}))
    first = list(Reproduction(config, state_path=state).run())
    (failed,) = of(first, SeedFailed)
    assert failed.kind == "checkpoint" and first[-1].error is None
    assert json.loads(state.read_text())["partial"] == []
    again = list(Reproduction(config, state_path=state).run())
    assert [e.result.seed for e in of(again, SeedFinished)] == [0] and not of(again, SeedFailed)
