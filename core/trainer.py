"""The training loop as a generator of typed events.

The CLI prints the events and the studio plots them; neither has a loop of its
own, so both train exactly the same way. The math is the published one (Adam,
optional gradient clipping, a zero state every step, random offsets per step).

What we add, without changing that math:

* batches come from a dedicated ``torch.Generator`` whose state is saved, so a
  resumed run continues with bit-identical losses;
* validation averages a fixed set of batches drawn once (the published single
  random batch is too noisy to compare runs); ``eval_protocol="published"``
  draws one new random batch per evaluation instead, from its own seeded and
  saved generator, to reproduce the published numbers' spread;
* expected failures (bad config, unreadable corpus, full disk, a loss that
  becomes NaN) end the stream with a :class:`~core.events.Failed` event instead
  of an exception, and bad weights are never written over good ones;
* ``pause()``, ``resume()`` and ``stop()`` may be called from any thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from core.allocator import keep_freed_memory
from core.checkpoint import (
    EXTRAS_KEY,
    FORMAT_VERSION,
    CheckpointError,
    build_payload,
    load_checkpoint,
    save_checkpoint,
)
from core.data import Corpus, CorpusError, batch_at, draw_offsets, get_batch, load_corpus
from core.device import describe, resolve_device
from core.distributed import Group
from core.events import (
    CheckpointSaved,
    EvalMetrics,
    Event,
    Failed,
    Finished,
    Paused,
    Resumed,
    SampleText,
    Started,
    StepMetrics,
)
from core.hparams import ModelConfig, SamplingConfig, TrainConfig
from core.memory import check_memory, estimate_training_memory, is_out_of_memory
from core.model import LandauerLLM, compute_losses
from core.optimizer import ClippedAdam, make_optimizer, with_implementation
from core.runs import (
    MetricsWriter,
    RunFolderError,
    SamplesWriter,
    checkpoint_name,
    create_run_dir,
    record_every,
    write_config,
)
from core.sampling import PromptError, TextGenerator, encode_prompt
from core.train_step import backward_step

log = logging.getLogger(__name__)
TOKENS_PER_S_SMOOTHING = 0.9  # weight of the past in the step-time moving average
OUT_OF_MEMORY = (MemoryError, RuntimeError)  # RuntimeErrors only when is_out_of_memory() says so
MODEL_KEYS = ModelConfig.setting_names()  # must match a checkpoint's to resume from it


class _Abort(Exception):
    """An expected failure: becomes a :class:`Failed` event, never escapes :meth:`Trainer.run`."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class Trainer:
    """Trains one run described by ``config``; iterate :meth:`run` to drive it.

    ``corpus`` may be passed in when it is already loaded (the studio previews
    it); otherwise ``config.data_path`` is read when the run starts.
    """

    def __init__(self, config: TrainConfig, corpus: Corpus | None = None):
        self.config = config
        self.corpus = corpus
        self.model: LandauerLLM | None = None
        self.last_checkpoint: str | None = None
        self._cond = threading.Condition()
        self._paused = False
        self._stop_requested = False
        self._started = False
        self.dist = Group.from_env()  # under torchrun: this process's rank among the run's processes

    # -- control, from any thread -------------------------------------------------

    def pause(self) -> None:
        """Hold before the next step until :meth:`resume` or :meth:`stop`."""
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def stop(self) -> None:
        """Finish after the current step, saving a checkpoint first (also works while paused)."""
        with self._cond:
            self._stop_requested = True
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    # -- the loop -----------------------------------------------------------------

    def run(self) -> Iterator[Event]:
        """Yield events until the run ends with :class:`Finished` or :class:`Failed`."""
        if self._started:
            raise RuntimeError("a Trainer runs once; create a new one for another run")
        self._started = True
        self._step = 0
        self._metrics: MetricsWriter | None = None
        self._samples: SamplesWriter | None = None
        self._active_s = 0.0
        try:
            try:
                self._setup()
            except _Abort as exc:
                yield Failed(step=self._step, message=exc.message, kind=exc.kind,
                             last_checkpoint=self.last_checkpoint)
                return
            except OUT_OF_MEMORY as exc:
                if not is_out_of_memory(exc):
                    raise
                yield self._out_of_memory(exc)
                return
            yield from self._loop()
        finally:
            for writer in (self._metrics, self._samples):
                if writer is not None:
                    writer.close()  # silent: a write error was already a Failed event
            self._metrics = self._samples = None
            self.dist.close()

    def _out_of_memory(self, exc: BaseException) -> Failed:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Failed(step=self._step, kind="error", last_checkpoint=self.last_checkpoint,
                      message=f"out of memory on {getattr(self, 'device', 'the device')}: lower the "
                      f"batch size, sequence length or hidden size ({first})")

    def _setup(self) -> None:
        cfg = self.config
        problems = cfg.errors()
        if problems:
            raise _Abort("config", "invalid settings: " + "; ".join(problems))
        try:
            self.device = resolve_device(cfg.device)
        except (ValueError, RuntimeError) as exc:
            raise _Abort("config", str(exc)) from exc
        # -- distributed (torchrun): join the process group, one GPU per local rank
        try:
            self.device = self.dist.start(self.device, cfg.batch_size)
        except ValueError as exc:
            raise _Abort("config", str(exc)) from exc
        keep_freed_memory()  # a step's buffers are reused, not page-faulted in again

        corpus = self.corpus
        if corpus is None:
            try:
                corpus = load_corpus(cfg.data_path)
            except CorpusError as exc:
                raise _Abort("corpus", str(exc)) from exc
            self.corpus = corpus
        try:
            corpus.check_seq_len(cfg.seq_len, cfg.eval_every > 0)
        except CorpusError as exc:
            raise _Abort("corpus", str(exc)) from exc
        self.itos = {int(k): v for k, v in corpus.itos.items()}
        self.corpus_info = corpus.summary()
        self.sample_prompt = self._checked_sample_prompt()

        self._check_memory(corpus)
        resume_state = self._load_resume() if cfg.resume else None

        torch.manual_seed(cfg.seed)
        model = LandauerLLM(**cfg.model_kwargs(corpus.vocab_size))
        model.to(self.device)
        self.model = model
        self.params = list(model.parameters())
        self.optimizer = make_optimizer(self.params, cfg.lr)
        self.update = ClippedAdam(self.optimizer, cfg.grad_clip)
        self.batch_gen = torch.Generator().manual_seed(cfg.seed)
        # The published protocol draws one new batch per evaluation from its own stream (so the
        # training batches are the same under either protocol); ours averages fixed batches.
        self.val_gen = (torch.Generator().manual_seed(cfg.seed + 2)
                        if cfg.eval_protocol == "published" else None)
        per_eval = 1 if self.val_gen is not None else cfg.eval_batches
        self.eval_batches = per_eval if cfg.eval_every > 0 else 0
        self.last_train: dict[str, float] | None = None
        self.last_val: dict[str, float] | None = None

        if resume_state is not None:
            self._restore(resume_state)
        self.loss_fn = self.dist.loss_fn(model)  # distributed: the fused loss through DDP

        # Only now, with everything checked, does the run folder come into being.
        self.save_dir = Path(cfg.save_dir)
        if not self.dist.is_main:  # distributed: rank 0 alone writes the run folder
            self._metrics_every = 1  # (and records nothing here)
            return
        try:
            create_run_dir(self.save_dir)
            write_config(self.save_dir, train_config=cfg.to_dict(), model_config=model.config.to_dict(),
                         corpus=self.corpus_info, device=str(self.device),
                         device_description=describe(self.device), start_step=self._step,
                         num_parameters=model.num_parameters(), torch_version=torch.__version__)
            self._metrics = MetricsWriter(self.save_dir, start_step=self._step)
            self._samples = SamplesWriter(self.save_dir, start_step=self._step)
        except RunFolderError as exc:
            raise _Abort("disk", str(exc)) from exc
        except OSError as exc:
            raise _Abort("disk", f"cannot write to {self.save_dir}: {exc.strerror or exc}") from exc
        self._metrics_every = record_every(cfg.steps)

    def _checked_sample_prompt(self) -> str:
        """The evaluation samples' prompt, checked against the corpus's characters.

        The default prompt (a new line) falls back to the corpus's first character
        when the corpus has no new line; a prompt the user chose must fit.
        """
        cfg = self.config
        prompt = cfg.sample_prompt_text()
        if cfg.sample_length <= 0:
            return prompt
        stoi = {ch: i for i, ch in self.itos.items()}
        try:
            encode_prompt(prompt, stoi)
        except PromptError as exc:
            if cfg.sample_prompt == TrainConfig.sample_prompt:
                return self.itos[0]
            raise _Abort("config", f"sample prompt: {exc} (change it, or set the sample "
                          "length to 0)") from exc
        return prompt

    def _check_memory(self, corpus: Corpus) -> None:
        """Refuse, before anything large is allocated, a configuration the device cannot hold."""
        estimate = estimate_training_memory(self.config, corpus.vocab_size, corpus.characters)
        verdict = check_memory(estimate, self.device)
        if verdict.level == "refuse":
            raise _Abort("config", verdict.message)
        if verdict.level == "warn":
            log.warning("%s", verdict.message)

    def _load_resume(self) -> dict[str, Any]:
        cfg = self.config
        try:
            payload = load_checkpoint(cfg.resume)
        except CheckpointError as exc:
            raise _Abort("checkpoint", str(exc)) from exc
        extras = payload.get(EXTRAS_KEY)
        if not isinstance(extras, dict) or "optimizer_state" not in extras or "rng" not in extras:
            raise _Abort("checkpoint", f"{cfg.resume} holds weights but no training state "
                         "(optimiser, random generators), so training cannot resume from it")
        saved_step = extras.get("step")
        if isinstance(saved_step, int) and saved_step >= cfg.steps:
            raise _Abort("config", f"the checkpoint {cfg.resume} is already at step {saved_step}; "
                         f"pass --steps > {saved_step} (now {cfg.steps}) to train further")
        saved = payload.get("config", {})
        wanted = cfg.model_kwargs(self.corpus.vocab_size)
        diffs = [f"{k} {saved.get(k)!r} in the checkpoint, {wanted[k]!r} here"
                 for k in MODEL_KEYS if saved.get(k) != wanted[k]]
        if diffs:
            raise _Abort("config", "the model settings differ from the checkpoint's: " + "; ".join(diffs))
        saved_itos = {int(k): v for k, v in payload.get("itos", {}).items()}
        if saved_itos != self.itos:
            raise _Abort("corpus", f"the corpus {cfg.data_path} has a different character set "
                         f"than the one {cfg.resume} was trained on")
        return payload

    def _restore(self, payload: dict[str, Any]) -> None:
        extras = payload[EXTRAS_KEY]
        try:
            self.model.load_state_dict(payload["model_state"])
            self.optimizer.load_state_dict(with_implementation(extras["optimizer_state"], self.optimizer))
            rng = extras["rng"]
            self.batch_gen.set_state(rng["batch"])
            if self.val_gen is not None and rng.get("val") is not None:
                self.val_gen.set_state(rng["val"])
            torch.set_rng_state(rng["torch"])
            if rng.get("cuda") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise _Abort("checkpoint", f"cannot resume from {self.config.resume}: {exc}") from exc
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr  # a resumed run may deliberately change the rate
        self._step = int(extras.get("step", 0))
        metrics = extras.get("metrics") or {}
        self.last_train = metrics.get("train")
        self.last_val = metrics.get("val")
        self.last_checkpoint = str(self.config.resume)

    def _eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed validation batches, drawn one at a time from their own generator (seed + 1).

        The generator restarts at each evaluation, so every evaluation sees the same
        batches without holding them all (20 batches of the largest settings are GBs).
        """
        cfg = self.config
        gen = self.val_gen if self.val_gen is not None else torch.Generator().manual_seed(cfg.seed + 1)
        data = self.corpus.val_data
        for _ in range(self.eval_batches):
            yield batch_at(data, draw_offsets(len(data), cfg.batch_size, cfg.seq_len, gen),
                           cfg.seq_len, self.device)

    def _record(self, kind: str, values: dict[str, Any]) -> None:
        if self._metrics is None:  # distributed: not rank 0
            return
        try:
            self._metrics.record(kind, values)
        except RunFolderError as exc:
            raise _Abort("disk", str(exc)) from exc

    def _wait_if_paused(self) -> Iterator[Event]:
        if not self._paused or self._stop_requested:
            return
        yield Paused(step=self._step)
        with self._cond:
            self._cond.wait_for(lambda: not self._paused or self._stop_requested)
        if not self._stop_requested:
            yield Resumed(step=self._step)

    def _loop(self) -> Iterator[Event]:
        cfg = self.config
        corpus = self.corpus
        model = self.model
        start_step = self._step
        yield Started(
            run_dir=str(self.save_dir),
            device=str(self.device),
            device_description=describe(self.device),
            start_step=start_step,
            total_steps=cfg.steps,
            vocab_size=int(corpus.vocab_size),
            train_tokens=len(corpus.train_data),
            val_tokens=len(corpus.val_data),
            num_parameters=model.num_parameters(),
            config=cfg.to_dict(),
        )
        tokens_per_step = cfg.batch_size * cfg.seq_len
        ema_dt: float | None = None
        saved_at = start_step  # nothing new to save until a step is taken
        model.train()
        try:
            while self._step < cfg.steps:
                yield from self._wait_if_paused()
                if self.dist.agree_to_stop(self._stop_requested):  # distributed: all ranks at once
                    break
                t0 = time.perf_counter()
                step = self._step + 1
                x, y = get_batch(corpus.train_data, cfg.batch_size, cfg.seq_len, self.batch_gen, self.device)
                x, y = self.dist.rows(x, y)  # distributed: this rank's slice of the global batch
                total, content, energy, gnorm = backward_step(model, self.update, x, y, cfg,
                                                              loss_fn=self.loss_fn, average=self.dist.average_)
                if not all(math.isfinite(v) for v in (total, content, energy, gnorm)):
                    self.update.zero_grad()
                    bad = "loss" if not math.isfinite(total) else "gradient norm"
                    kept = (f"the last good checkpoint is {self.last_checkpoint}"
                            if self.last_checkpoint else "no checkpoint had been saved yet")
                    yield Failed(step=step, kind="nan", last_checkpoint=self.last_checkpoint,
                                 message=f"the {bad} became {total if bad == 'loss' else gnorm} at step {step}; "
                                 f"training stopped and these weights were not saved ({kept}). "
                                 f"Try a lower learning rate (now {cfg.lr:g}) or gradient clipping.")
                    return
                self.update.step()
                self._step = step
                dt = time.perf_counter() - t0
                self._active_s += dt
                if step == start_step + 1:
                    rate_dt = dt  # the first step pays for warm-up (kernel compilation); keep it out
                else:
                    ema_dt = dt if ema_dt is None else (
                        TOKENS_PER_S_SMOOTHING * ema_dt + (1 - TOKENS_PER_S_SMOOTHING) * dt)
                    rate_dt = ema_dt
                self.last_train = {"loss": total, "content": content, "energy": energy}
                metrics = StepMetrics(step=step, total_steps=cfg.steps, loss=total, content=content,
                                      energy=energy, tokens_per_s=tokens_per_step / max(rate_dt, 1e-9),
                                      elapsed_s=self._active_s)
                logged = cfg.log_every > 0 and step % cfg.log_every == 0
                if step % self._metrics_every == 0 or logged or step == cfg.steps:
                    self._record("train", {
                        "step": step, "loss": total, "content": content, "energy": energy,
                        "tokens_per_s": metrics.tokens_per_s, "elapsed_s": metrics.elapsed_s,
                    })
                yield metrics

                if cfg.eval_every > 0 and step % cfg.eval_every == 0:
                    t1 = time.perf_counter()
                    ev = self.evaluate()
                    # distributed: rank 0 alone samples (no collective inside) and writes it
                    sample = self.sample() if cfg.sample_length > 0 and self.dist.is_main else None
                    self._active_s += time.perf_counter() - t1  # samples count as evaluation time
                    self._record("val", {"step": step, "loss": ev.loss, "content": ev.content,
                                         "energy": ev.energy, "batches": ev.batches})
                    yield ev
                    if sample is not None:
                        try:
                            self._samples.add(sample)
                        except RunFolderError as exc:
                            raise _Abort("disk", str(exc)) from exc
                        yield sample

                final = step == cfg.steps
                if final or (cfg.save_every > 0 and step % cfg.save_every == 0):
                    yield self._save("final" if final else "periodic")
                    saved_at = step

            stopped = self._step < cfg.steps
            if stopped and self._step != saved_at:
                yield self._save("stop")
            self.dist.barrier()  # distributed: no rank ends before rank 0 has saved
            yield Finished(step=self._step, run_dir=str(self.save_dir),
                           last_checkpoint=self.last_checkpoint, stopped=stopped,
                           elapsed_s=self._active_s)
        except _Abort as exc:
            yield Failed(step=self._step, message=exc.message, kind=exc.kind,
                         last_checkpoint=self.last_checkpoint)
        except OUT_OF_MEMORY as exc:
            if not is_out_of_memory(exc):
                raise
            yield self._out_of_memory(exc)
        except RuntimeError as exc:
            if not self.dist.lost_peer(exc):
                raise
            first = str(exc).splitlines()[0]  # distributed: another process of the run is gone
            yield Failed(step=self._step, kind="error", last_checkpoint=self.last_checkpoint,
                         message=f"another process of this distributed run stopped ({first})")

    @torch.no_grad()
    def evaluate(self) -> EvalMetrics:
        """Mean validation losses over the fixed batches (or one new random batch under
        the published protocol), at the current weights."""
        cfg = self.config
        model = self.model
        was_training = model.training
        model.eval()
        sums = torch.zeros(3, dtype=torch.float64)
        try:
            for x, y in self.dist.share(self._eval_batches()):  # distributed: each rank a share
                logits, trace, _ = model(x)
                losses = compute_losses(logits, y, trace, cfg.temperature, cfg.energy_weight)
                sums += torch.stack([losses.total, losses.content, losses.energy]).double().cpu()
        finally:
            model.train(was_training)
        self.dist.sum_(sums)  # distributed: the sums over all ranks' shares
        n = max(self.eval_batches, 1)
        total, content, energy = (sums / n).tolist()
        self.last_val = {"loss": total, "content": content, "energy": energy}
        return EvalMetrics(step=self._step, loss=total, content=content, energy=energy,
                           batches=self.eval_batches)

    def sample(self) -> SampleText:
        """The model's continuation of the sample prompt at the current weights.

        Uses the model's own sampling engine with its own generator seeded by
        ``sample_seed`` (temperature 1), so the training random streams are
        untouched and a resumed run stays bit-exact; the model is left in the
        mode it was in.
        """
        cfg = self.config
        model = self.model
        was_training = model.training
        model.eval()
        try:
            text = TextGenerator(model, self.itos).generate(self.sample_prompt, SamplingConfig(
                max_new_tokens=cfg.sample_length, temperature=1.0, top_k=0, seed=cfg.sample_seed))
        finally:
            model.train(was_training)
        return SampleText(step=self._step, prompt=self.sample_prompt, text=text)

    def _save(self, reason: str) -> CheckpointSaved:
        """Write the checkpoint for the current step; a failure here is a :class:`Failed` (disk)."""
        cfg = self.config
        rng = {"batch": self.batch_gen.get_state(), "torch": torch.get_rng_state()}
        if self.val_gen is not None:
            rng["val"] = self.val_gen.get_state()
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        extras = {
            "format_version": FORMAT_VERSION,
            "step": self._step,
            "optimizer_state": self.optimizer.state_dict(),  # build_payload moves it to the CPU
            "rng": rng,
            "train_config": cfg.to_dict(),
            "metrics": {"train": self.last_train, "val": self.last_val},
            "corpus": self.corpus_info,
        }
        args = cfg.to_dict()
        args["device"] = str(self.device)  # the published args held the device actually used
        path = self.save_dir / checkpoint_name(self._step)
        if not self.dist.is_main:  # distributed: rank 0 saves; the others only note the path
            self.last_checkpoint = str(path)
            return CheckpointSaved(step=self._step, path=str(path), reason=reason)
        try:
            payload = build_payload(self.model, self.itos, args, extras)
        except CheckpointError as exc:
            raise _Abort("checkpoint", str(exc)) from exc
        try:
            save_checkpoint(path, payload)
        except CheckpointError as exc:  # its message names the file and the cause (disk full, ...)
            raise _Abort("disk", str(exc)) from exc
        except OSError as exc:
            raise _Abort("disk", f"could not save checkpoint {path}: {exc.strerror or exc}") from exc
        self.last_checkpoint = str(path)
        return CheckpointSaved(step=self._step, path=str(path), reason=reason)
