"""The training loop: events, fixed validation, control from other threads, failures, exact resume."""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from pathlib import Path

import pytest
import torch

import core.train_step as train_step_mod
import core.trainer as trainer_mod
from core.checkpoint import CheckpointError, load_checkpoint, load_model
from core.data import Corpus
from core.events import (
    CheckpointSaved,
    EvalMetrics,
    Failed,
    Finished,
    Paused,
    Resumed,
    Started,
    StepMetrics,
)
from core.hparams import TrainConfig
from core.runs import checkpoint_name
from core.trainer import Trainer

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.from_text(TEXT, "tiny.txt")


def tiny(tmp_path: Path, **kw) -> TrainConfig:
    values = dict(data_path=str(tmp_path / "tiny.txt"), batch_size=4, seq_len=8, embed_dim=6,
                  hidden_dim=12, num_layers=2, steps=8, save_every=0, eval_every=0, eval_batches=2,
                  log_every=0, save_dir=str(tmp_path / "run"), device="cpu")
    values.update(kw)
    return TrainConfig(**values)


def run_all(trainer: Trainer) -> list:
    return list(trainer.run())


def of(events, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


def test_loss_falls_on_a_repetitive_corpus(tmp_path, corpus):
    events = run_all(Trainer(tiny(tmp_path, steps=40, lr=3e-2, hidden_dim=16), corpus))
    losses = [e.loss for e in of(events, StepMetrics)]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    for e in of(events, StepMetrics):
        assert abs(e.loss - (e.content + 0.1 * e.energy)) < 1e-5
        assert e.tokens_per_s > 0 and e.elapsed_s > 0


def test_event_order_and_checkpoints(tmp_path, corpus):
    cfg = tiny(tmp_path, steps=7, save_every=3, eval_every=2)
    events = run_all(Trainer(cfg, corpus))
    kinds = []
    for e in events:
        if isinstance(e, StepMetrics):
            kinds.append(f"s{e.step}")
        elif isinstance(e, EvalMetrics):
            kinds.append(f"e{e.step}")
        elif isinstance(e, CheckpointSaved):
            kinds.append(f"c{e.step}{e.reason[0]}")
        else:
            kinds.append(type(e).__name__)
    assert kinds == ["Started", "s1", "s2", "e2", "SampleText", "s3", "c3p", "s4", "e4", "SampleText",
                     "s5", "s6", "e6", "SampleText", "c6p", "s7", "c7f", "Finished"]
    started, finished = events[0], events[-1]
    assert started.start_step == 0 and started.total_steps == 7 and started.device == "cpu"
    assert started.vocab_size == corpus.vocab_size and started.num_parameters > 0
    assert not finished.stopped and finished.step == 7
    assert finished.last_checkpoint == str(Path(cfg.save_dir) / checkpoint_name(7))
    for e in of(events, CheckpointSaved):
        assert Path(e.path).name == f"landauer_llm_step{e.step}.pth"
        payload = load_checkpoint(e.path)
        extras = payload["landauer_studio"]
        assert extras["step"] == e.step
        assert set(extras) >= {"format_version", "step", "optimizer_state", "rng", "train_config",
                               "metrics", "corpus"}
        assert set(extras["rng"]) >= {"batch", "torch"}
        assert payload["args"]["data_path"] == cfg.data_path and payload["args"]["lr"] == cfg.lr
        assert extras["corpus"]["sha256"] == corpus.sha256
    model, itos, info = load_model(finished.last_checkpoint, "cpu")
    assert info.step == 7 and itos == corpus.itos and info.val_loss == of(events, EvalMetrics)[-1].loss


def test_eval_uses_fixed_batches(tmp_path, corpus):
    cfg = tiny(tmp_path, steps=3, eval_every=3, eval_batches=3)
    trainer = Trainer(cfg, corpus)
    events = run_all(trainer)
    (ev,) = of(events, EvalMetrics)
    assert ev.batches == 3
    again, third = trainer.evaluate(), trainer.evaluate()
    assert (again.loss, again.content, again.energy) == (ev.loss, ev.content, ev.energy)
    assert third == again
    assert trainer.model.training  # evaluation restores training mode


def test_run_files_config_and_metrics(tmp_path, corpus):
    cfg = tiny(tmp_path, steps=5, eval_every=2, log_every=2)
    run_all(Trainer(cfg, corpus))
    run = Path(cfg.save_dir)
    info = json.loads((run / "config.json").read_text())
    assert info["train_config"] == cfg.to_dict()
    assert info["model_config"]["vocab_size"] == corpus.vocab_size
    assert info["corpus"]["sha256"] == corpus.sha256 and info["device"] == "cpu"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["type"] == "train"] == [1, 2, 3, 4, 5]
    assert [r["step"] for r in lines if r["type"] == "val"] == [2, 4]


class Driver:
    """Consumes a trainer's events on a worker thread, as the studio does."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.events: list = []
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for e in self.trainer.run():
            self.events.append(e)
            self.queue.put(e)

    def wait_for(self, cls, timeout=30.0):
        while True:
            e = self.queue.get(timeout=timeout)
            if isinstance(e, cls):
                return e

    def join(self):
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def test_pause_resume_stop_from_another_thread(tmp_path, corpus):
    trainer = Trainer(tiny(tmp_path, steps=1_000_000), corpus)
    d = Driver(trainer)
    d.wait_for(StepMetrics)
    trainer.pause()
    paused = d.wait_for(Paused)
    n = len(d.events)
    d.thread.join(timeout=0.3)  # while paused, no step is taken
    assert len(d.events) == n and d.thread.is_alive()
    trainer.resume()
    assert d.wait_for(Resumed).step == paused.step
    assert d.wait_for(StepMetrics).step == paused.step + 1
    trainer.stop()
    d.join()
    saved, finished = d.events[-2], d.events[-1]
    assert isinstance(saved, CheckpointSaved) and saved.reason == "stop"
    assert isinstance(finished, Finished) and finished.stopped
    assert saved.step == finished.step == of(d.events, StepMetrics)[-1].step
    assert finished.last_checkpoint == saved.path
    assert load_checkpoint(saved.path)["landauer_studio"]["step"] == saved.step


def test_stop_while_paused(tmp_path, corpus):
    trainer = Trainer(tiny(tmp_path, steps=1_000_000), corpus)
    d = Driver(trainer)
    d.wait_for(StepMetrics)
    trainer.pause()
    d.wait_for(Paused)
    trainer.stop()
    d.join()
    assert not of(d.events, Resumed)
    assert d.events[-2].reason == "stop" and d.events[-1].stopped
    assert Path(d.events[-1].last_checkpoint).is_file()


def test_stop_before_first_step_saves_nothing(tmp_path, corpus):
    trainer = Trainer(tiny(tmp_path), corpus)
    trainer.stop()
    events = run_all(trainer)
    assert [type(e) for e in events] == [Started, Finished]
    assert events[-1].stopped and events[-1].last_checkpoint is None


def test_nan_loss_fails_and_keeps_the_last_good_checkpoint(tmp_path, corpus, monkeypatch):
    real = train_step_mod.fused_grads
    calls = {"n": 0}

    def poisoned(*args, **kw):
        calls["n"] += 1
        losses = real(*args, **kw)
        if calls["n"] >= 5:
            losses.total = losses.total * float("nan")
        return losses

    monkeypatch.setattr(train_step_mod, "fused_grads", poisoned)
    trainer = Trainer(tiny(tmp_path, steps=10, save_every=2), corpus)
    digests = {}
    events = []
    for e in trainer.run():
        events.append(e)
        if isinstance(e, CheckpointSaved):
            digests[e.path] = hashlib.sha256(Path(e.path).read_bytes()).hexdigest()
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == "nan"
    assert failed.step == 5 and "nan" in failed.message.lower()
    good = str(Path(trainer.config.save_dir) / checkpoint_name(4))
    assert failed.last_checkpoint == good and good in failed.message
    assert sorted(p.name for p in Path(trainer.config.save_dir).glob("*.pth")) == [
        "landauer_llm_step2.pth", "landauer_llm_step4.pth"]
    assert hashlib.sha256(Path(good).read_bytes()).hexdigest() == digests[good]
    model, _, info = load_model(good, "cpu")
    assert info.step == 4 and all(torch.isfinite(p).all() for p in model.parameters())


def test_huge_learning_rate_never_raises(tmp_path, corpus):
    events = run_all(Trainer(tiny(tmp_path, steps=10, lr=1.0, grad_clip=0.0), corpus))
    assert isinstance(events[-1], (Finished, Failed))


def test_resume_reproduces_an_uninterrupted_run(tmp_path, corpus):
    steps = 12
    full_cfg = tiny(tmp_path, steps=steps, eval_every=4, save_dir=str(tmp_path / "full"))
    full = run_all(Trainer(full_cfg, corpus))

    part_cfg = full_cfg.replace(save_dir=str(tmp_path / "part"))
    first = Trainer(part_cfg, corpus)
    part = []
    for e in first.run():
        part.append(e)
        if isinstance(e, StepMetrics) and e.step == steps // 2:
            first.stop()
    assert part[-1].stopped and part[-2].reason == "stop"
    resumed = run_all(Trainer(part_cfg.replace(resume=part[-1].last_checkpoint), corpus))
    assert resumed[0].start_step == steps // 2

    def losses(events, cls=StepMetrics):
        return torch.tensor([[e.loss, e.content, e.energy] for e in of(events, cls)], dtype=torch.float64)

    assert torch.equal(losses(full), torch.cat([losses(part), losses(resumed)]))
    assert torch.equal(losses(full, EvalMetrics), torch.cat([losses(part, EvalMetrics),
                                                             losses(resumed, EvalMetrics)]))
    a = load_checkpoint(full[-1].last_checkpoint)
    b = load_checkpoint(resumed[-1].last_checkpoint)
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    # The resumed run's metrics file has each step once.
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if '"train"' in x] == list(range(1, steps + 1))


def test_resume_uses_this_devices_adam_implementation(tmp_path, corpus):
    """A checkpoint from before fused Adam (or from another device) resumes with this one's choice."""
    cfg = tiny(tmp_path, steps=2)
    done = run_all(Trainer(cfg, corpus))
    path = done[-1].last_checkpoint
    payload = load_checkpoint(path)
    for group in payload["landauer_studio"]["optimizer_state"]["param_groups"]:
        group.update(fused=None, foreach=True)  # as the previous version saved it
    torch.save(payload, path)
    trainer = Trainer(cfg.replace(steps=4, resume=path), corpus)
    events = run_all(trainer)
    assert isinstance(events[-1], Finished) and events[-1].step == 4
    assert all(g["fused"] and not g["foreach"] for g in trainer.optimizer.param_groups)


@pytest.mark.parametrize("change, kind", [
    (dict(batch_size=0), "config"),
    (dict(lr=float("nan")), "config"),
    (dict(device="warp-drive"), "config"),
    (dict(seq_len=5000), "corpus"),
    (dict(resume="missing.pth"), "checkpoint"),
])
def test_bad_settings_fail_without_raising(tmp_path, corpus, change, kind):
    events = run_all(Trainer(tiny(tmp_path, **change), corpus))
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert events[0].kind == kind and events[0].message


def test_missing_corpus_file_fails_cleanly(tmp_path):
    (failed,) = run_all(Trainer(tiny(tmp_path, data_path=str(tmp_path / "nope.txt"))))
    assert failed.kind == "corpus" and "nope.txt" in failed.message


def test_resume_with_other_model_settings_is_refused(tmp_path, corpus):
    events = run_all(Trainer(tiny(tmp_path, steps=2), corpus))
    (failed,) = run_all(Trainer(tiny(tmp_path, steps=4, hidden_dim=16, resume=events[-1].last_checkpoint), corpus))
    assert failed.kind == "config" and "hidden_dim" in failed.message


def test_disk_full_while_saving_is_reported(tmp_path, corpus, monkeypatch):
    def full_disk(path, payload):
        raise CheckpointError(f"Disk full while saving checkpoint {path}")

    monkeypatch.setattr(trainer_mod, "save_checkpoint", full_disk)
    events = run_all(Trainer(tiny(tmp_path, steps=4, save_every=2), corpus))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == "disk" and "Disk full" in failed.message
    assert failed.step == 2 and failed.last_checkpoint is None


def test_a_trainer_runs_once(tmp_path, corpus):
    trainer = Trainer(tiny(tmp_path, steps=1), corpus)
    run_all(trainer)
    with pytest.raises(RuntimeError):
        run_all(trainer)


def test_optimizer_updates_equal_the_published_default_adam():
    """make_optimizer's fused Adam follows plain Adam to within float32 rounding."""
    import copy

    from core.model import LandauerLLM
    from core.optimizer import make_optimizer

    torch.manual_seed(0)
    ours = LandauerLLM(11, 4, 8, 2, 2.0)
    plain = copy.deepcopy(ours)
    start = copy.deepcopy(ours)
    opt_ours = make_optimizer(list(ours.parameters()), 3e-3)
    opt_plain = torch.optim.Adam(plain.parameters(), lr=3e-3)
    assert opt_ours.defaults["fused"]
    for _ in range(20):
        for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        opt_ours.step()
        opt_plain.step()
    for a, b, s in zip(ours.parameters(), plain.parameters(), start.parameters(), strict=True):
        assert (a - s).abs().max() > 1e-2  # the weights moved: 20 updates of about lr = 3e-3
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
