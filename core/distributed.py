"""Training on several processes (``torchrun``) with one model replica each (DDP).

The trainer keeps its single loop; this module holds everything that differs
when it runs as one of ``WORLD_SIZE`` processes:

* the process group (gloo on CPU, nccl on CUDA with one GPU per local rank);
* each rank's slice of the *global* batch: every rank draws the same offsets
  from the same seeded generator and keeps rows ``[rank*B/N, (rank+1)*B/N)``,
  so N processes train on exactly the batches one process would;
* the fused loss behind a :class:`~torch.nn.parallel.DistributedDataParallel`
  wrapper, which averages the gradients (equal slices: the mean of the ranks'
  means is the global mean, for the content loss and the energy alike);
* the reported losses and validation sums, all-reduced so every rank logs the
  global values, and one agreed stop flag per step so all ranks stop together.

A process started without ``torchrun`` is a group of one: every method is then
a no-op and the trainer runs exactly as before.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from itertools import islice
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from core.fused_loss import fused_losses
from core.model import LandauerLLM, Losses

T = TypeVar("T")
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
_TRANSPORT_WORDS = ("gloo", "NCCL", "Connection reset", "Connection closed")
# No buffer broadcast before each forward (the model's buffers never change); newer
# PyTorch renamed the flag and warns about the old name.
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})


def launched_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank under ``torchrun`` (0 otherwise): only rank 0 prints and writes."""
    environ = os.environ if environ is None else environ
    try:
        return int(environ.get("RANK", "0"))
    except ValueError:
        return 0


def row_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch that ``rank`` trains on; a ``ValueError`` unless they divide evenly.

    Equal slices are what make the ranks' averaged losses and gradients the
    global ones (a mean of equal-sized means is the overall mean).
    """
    if batch_size % world_size:
        raise ValueError(f"--batch-size {batch_size} is the global batch and must divide evenly "
                         f"among the {world_size} processes (try {_nearest_multiple(batch_size, world_size)})")
    per_rank = batch_size // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def _nearest_multiple(n: int, k: int) -> int:
    return max(k, round(n / k) * k)


class _LossModule(nn.Module):
    """The training step's forward, as a module, so DDP sees it run (and hooks the gradients)."""

    def __init__(self, model: LandauerLLM):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, temperature: float, energy_weight: float):
        losses = fused_losses(self.model, x, y, temperature, energy_weight)
        return losses.total, losses.content, losses.energy


class Group:
    """This process's place in a run: rank, world size, local rank (a group of one by default)."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
            raise ValueError(f"invalid distributed setting: rank {rank}, world size {world_size}, "
                             f"local rank {local_rank}")
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.device = torch.device("cpu")
        self._started = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Group:
        """The group ``torchrun`` describes in RANK, WORLD_SIZE and LOCAL_RANK (one process if unset)."""
        environ = os.environ if environ is None else environ
        if "WORLD_SIZE" not in environ:
            return cls()
        try:
            rank, world, local = (int(environ.get(k, "0")) for k in ENV_KEYS)
        except ValueError as exc:
            raise ValueError(f"invalid torchrun environment ({exc}); "
                             f"{', '.join(ENV_KEYS)} must be whole numbers") from exc
        return cls(rank, world, local)

    @property
    def active(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run folder (config, metrics, checkpoints)."""
        return self.rank == 0

    def start(self, device: torch.device, batch_size: int) -> torch.device:
        """Join the process group; returns this rank's device (``cuda:LOCAL_RANK`` on CUDA).

        Raises ``ValueError`` with a one-line reason (uneven batch, no GPU for this
        rank, an unsupported device, an unreachable rendezvous).
        """
        if not self.active:
            self.device = device
            return device
        row_slice(batch_size, self.rank, self.world_size)
        backend = BACKENDS.get(device.type)
        if backend is None:
            raise ValueError(f"distributed training runs on cpu (gloo) or cuda (nccl), not on {device.type}")
        if device.type == "cuda":
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise ValueError(f"local rank {self.local_rank} has no GPU of its own: this machine has "
                                 f"{count}; start at most {count} processes per node")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(backend, rank=self.rank, world_size=self.world_size,
                                    timeout=timedelta(minutes=30),
                                    device_id=device if device.type == "cuda" else None)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"rank {self.rank} cannot join the distributed run: {first}") from exc
        self._started = True
        self.device = device
        return device

    def loss_fn(self, model: LandauerLLM) -> Callable[..., Losses] | None:
        """``f(x, y, temperature, energy_weight) -> Losses``: the fused loss through DDP.

        None for a single process (the trainer then calls the fused loss directly).

        DDP broadcasts rank 0's weights once (they are equal anyway: same seed, or
        the same checkpoint) and averages the gradients during ``backward``.
        Buffers are not broadcast: the model has none that training changes.
        """
        if not self.active:
            return None
        ddp = DistributedDataParallel(
            _LossModule(model),
            device_ids=[self.device] if self.device.type == "cuda" else None,
            **_NO_BUFFER_SYNC,
        )

        def losses(x, y, temperature, energy_weight) -> Losses:
            return Losses(*ddp(x, y, temperature, energy_weight))

        return losses

    def rows(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of a global batch (all of it for a single process)."""
        if not self.active:
            return x, y
        rows = row_slice(x.size(0), self.rank, self.world_size)
        return x[rows], y[rows]

    def average_(self, values: torch.Tensor) -> torch.Tensor:
        """Replace ``values`` in place by their mean over the ranks (the global batch's losses)."""
        if self.active:
            self._all_reduce_(values)
            values.div_(self.world_size)
        return values

    def sum_(self, values: torch.Tensor) -> torch.Tensor:
        """Replace ``values`` in place by their sum over the ranks."""
        if self.active:
            self._all_reduce_(values)
        return values

    def share(self, items: Iterable[T]) -> Iterable[T]:
        """This rank's share (every N-th item, from its rank on): validation batches are split this way.

        Works on a list or a lazy iterator alike; a single process gets ``items`` itself.
        """
        return islice(items, self.rank, None, self.world_size) if self.active else items

    def agree_to_stop(self, requested: bool) -> bool:
        """True on every rank as soon as any rank asked to stop, so all stop after the same step."""
        if not self.active:
            return requested
        flag = torch.tensor([1.0 if requested else 0.0])
        self._all_reduce_(flag, dist.ReduceOp.MAX)
        return bool(flag.item())

    def lost_peer(self, exc: BaseException) -> bool:
        """Whether ``exc`` says a collective failed because another process of the run is gone.

        Gloo reports a dead peer from inside DDP's backward as a plain ``RuntimeError``
        naming its transport, so the message is checked as well as the type.
        """
        if not self.active or not isinstance(exc, RuntimeError):
            return False
        return isinstance(exc, dist.DistError) or any(w in str(exc) for w in _TRANSPORT_WORDS)

    def barrier(self) -> None:
        """Wait for every rank: the others must not exit while rank 0 still saves."""
        if self.active:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group (without waiting: after a failure a peer may be gone)."""
        if not self._started:
            return
        self._started = False
        try:
            dist.destroy_process_group()
        except (RuntimeError, ValueError):
            pass

    def _all_reduce_(self, values: torch.Tensor, op=dist.ReduceOp.SUM) -> None:
        """All-reduce on this backend's device (nccl reduces CUDA tensors only), in place."""
        if values.device == self.device or self.device.type == "cpu":
            dist.all_reduce(values, op=op)
            return
        moved = values.to(self.device)
        dist.all_reduce(moved, op=op)
        values.copy_(moved)
