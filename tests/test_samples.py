"""Evaluation samples: written at each evaluation, kept and dropped on resume, no effect on training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import train_main
from core.data import Corpus
from core.events import (
    EvalMetrics,
    Failed,
    Finished,
    SampleText,
    Started,
    StepMetrics,
    format_sample,
)
from core.hparams import TrainConfig, unescape
from core.runs import SAMPLES_FILE, read_samples, samples_from_records
from core.trainer import Trainer
from tests.test_cli import VAL_LINE, tiny_args
from tests.test_trainer import of
from tests.test_trainer import tiny as trainer_tiny

TEXT = "the cat sat on the mat.\nthe dog sat on the log.\n" * 30

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.from_text(TEXT, "tiny.txt")


def tiny(tmp_path: Path, **kw) -> TrainConfig:
    """The trainer tests' tiny run, evaluated (and sampled) every 4 of 12 steps."""
    return trainer_tiny(tmp_path, **{"steps": 12, "eval_every": 4, "sample_length": 30, **kw})


def test_a_sample_follows_each_evaluation_and_is_written(tmp_path, corpus):
    trainer = Trainer(tiny(tmp_path), corpus)
    events = list(trainer.run())
    samples = of(events, SampleText)
    assert [s.step for s in samples] == [4, 8, 12]
    for s in samples:  # right after its evaluation
        i = events.index(s)
        assert isinstance(events[i - 1], EvalMetrics) and events[i - 1].step == s.step
        assert s.prompt == "\n" and len(s.text) == 30 and set(s.text) <= set(TEXT)
    assert read_samples(tmp_path / "run") == samples
    assert trainer.model.training  # sampling put it back in train mode


def test_samples_leave_training_untouched(tmp_path, corpus):
    def losses(**kw):
        events = list(Trainer(tiny(tmp_path, save_dir=str(tmp_path / str(kw)), **kw), corpus).run())
        return [(e.loss, e.content, e.energy) for e in events if isinstance(e, StepMetrics | EvalMetrics)]

    assert losses(sample_length=0) == losses(sample_length=50)


def test_length_zero_disables_samples(tmp_path, corpus):
    events = list(Trainer(tiny(tmp_path, sample_length=0), corpus).run())
    assert not of(events, SampleText) and isinstance(events[-1], Finished)
    assert read_samples(tmp_path / "run") == []


def test_same_seed_same_sample_other_seed_other_sample(tmp_path, corpus):
    def texts(seed, name):
        events = Trainer(tiny(tmp_path, steps=4, sample_seed=seed, save_dir=str(tmp_path / name)), corpus).run()
        return [s.text for s in of(list(events), SampleText)]

    assert texts(3, "a") == texts(3, "b") != texts(4, "c")


def test_resume_keeps_earlier_samples_drops_later_and_stays_bit_exact(tmp_path, corpus):
    full = list(Trainer(tiny(tmp_path, save_every=4), corpus).run())
    run_dir = tmp_path / "run"
    before = read_samples(run_dir)
    assert [s.step for s in before] == [4, 8, 12]

    resumed = Trainer(tiny(tmp_path, save_every=4, resume=str(run_dir / "landauer_llm_step8.pth")), corpus)
    stream = resumed.run()
    assert isinstance(next(stream), Started)
    assert read_samples(run_dir) == before[:2]  # the sample past the checkpoint is gone at once
    lines = (run_dir / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["step"] for x in lines] == [4, 8]
    rest = list(stream)
    assert isinstance(rest[-1], Finished)
    # Bit-exact: the redone steps, evaluation and sample equal the uninterrupted run's.
    def exact(events):
        return [(e.step, e.loss, e.content, e.energy) if not isinstance(e, SampleText) else e
                for e in events if isinstance(e, StepMetrics | EvalMetrics | SampleText) and e.step > 8]

    assert exact(rest) == exact(full) and len(exact(rest)) == 6
    assert read_samples(run_dir) == before


def test_a_chosen_prompt_the_corpus_cannot_spell_fails_cleanly(tmp_path, corpus):
    events = list(Trainer(tiny(tmp_path, sample_prompt="Zebra"), corpus).run())
    assert isinstance(events[-1], Failed) and events[-1].kind == "config"
    assert "sample prompt" in events[-1].message and "'Z'" in events[-1].message
    assert not (tmp_path / "run").exists()


def test_default_prompt_falls_back_when_the_corpus_has_no_new_line(tmp_path):
    flat = Corpus.from_text("abcabcabd " * 60, "flat.txt")
    samples = of(list(Trainer(tiny(tmp_path, steps=4), flat).run()), SampleText)
    assert len(samples) == 1 and samples[0].prompt == flat.itos[0]


def test_escaped_prompt():
    assert unescape(r"ROMEO:\n\tWhat\\n") == "ROMEO:\n\tWhat\\n"
    assert unescape("a\\qb\\") == "a\\qb\\"
    assert TrainConfig(sample_prompt=r"A\nB").sample_prompt_text() == "A\nB"


def test_reader_is_tolerant():
    good = {"type": "sample", "step": 4, "prompt": "\n", "text": "abc"}
    records = [good, {"step": 8, "text": 3}, {"step": "x", "text": "t"}, {"step": 2, "text": "first"},
               {**good, "text": "again"}, {"step": True, "text": "bool"}]
    assert samples_from_records(records) == [SampleText(2, "", "first"), SampleText(4, "\n", "again")]


def test_reader_skips_a_cut_last_line(tmp_path):
    (tmp_path / SAMPLES_FILE).write_text(
        json.dumps({"type": "sample", "step": 5, "prompt": "a", "text": "b"}) + '\n{"type": "sam',
        encoding="utf-8")
    assert read_samples(tmp_path) == [SampleText(5, "a", "b")]
    assert read_samples(tmp_path / "missing") == []


def test_cli_prints_samples_indented_under_val_lines_only_when_asked(tmp_path, capsys):
    args = tiny_args(tmp_path, "--steps", "20", "--log-every", "10", "--eval-every", "10",
                     "--eval-batches", "2", "--save-every", "0", "--sample-length", "40",
                     "--sample-prompt", "to be")
    assert train_main(args) == 0
    plain = capsys.readouterr().out.splitlines()
    assert not [x for x in plain if x.startswith(" ")]  # the published lines, nothing else
    assert train_main([*args, "--print-samples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    samples = read_samples(tmp_path / "run")
    assert [s.step for s in samples] == [10, 20]
    for s in samples:
        i = next(i for i, x in enumerate(lines) if VAL_LINE.match(x) and f"step {s.step:05d}" in x)
        block = format_sample(s).splitlines()
        assert lines[i + 1:i + 1 + len(block)] == block
        assert block[0].startswith("    to be") and all(x.startswith("    ") for x in block)
    published = [x for x in lines if not x.startswith(" ")]
    assert published[:-1] == plain[:-1] and published[-1].startswith("Finished at step 20 after ")
