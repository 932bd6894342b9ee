"""Data-parallel training across processes launched by ``torchrun`` (DDP).

``torchrun --nproc_per_node N`` starts N copies of the same program and sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``. :class:`medseq.training.Trainer` reads them through
:func:`current` and then trains with :class:`torch.nn.parallel.DistributedDataParallel`
(gloo on CPU, NCCL on CUDA). Nothing changes for a single process.

The numbers are those of single-process training with the same config:

* ``TrainConfig.batch_size`` is the **global** batch. Every rank draws the same shuffled
  order (seeded ``seed + epoch``), cuts it into global batches and keeps its own contiguous
  slice of each (:func:`shard_batches`), so one optimizer step sees the same samples as a
  single process would, whatever the number of processes.
* The per-step gradient is the mean over the labelled entries of the whole global batch:
  each rank scales its local (mean) loss by ``world_size * n_local / n_global`` before DDP
  averages the gradients, which also covers unequal slices (the last batch) and NaN labels.
  A rank whose slice is empty runs one sample with weight 0, so every rank joins every
  all-reduce.
* Validation runs on the full validation set on every rank (the weights are identical), so
  early stopping, the best epoch and the schedule decide identically everywhere.
* Only rank 0 writes checkpoints; every rank resumes from them.

Differences left: floating-point sums are taken in another order (about 1e-6 relative on
the weights after a few epochs in float32), and dropout masks are drawn per rank from
generators seeded by (seed, epoch, rank), so models with dropout match single-process
training in distribution, not bit for bit; a resumed DDP run still matches an
uninterrupted one, because those seeds do not depend on the RNG state at the interruption.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from medseq.training.losses import MaskedCrossEntropyLoss

logger = logging.getLogger(__name__)

_ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a torchrun job.

    Attributes
    ----------
    rank, world_size, local_rank : int
        From the environment variables of the same names.
    """

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that writes files and prints."""
        return self.rank == 0


def current() -> DistContext | None:
    """The torchrun context of this process, or None when it runs alone.

    A job of one process (``WORLD_SIZE=1``) counts as alone: wrapping a model in DDP
    would only add overhead.
    """
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world, local = (int(os.environ.get(k, "0")) for k in _ENV_KEYS)
    except ValueError as err:
        values = {k: os.environ.get(k) for k in _ENV_KEYS}
        raise ValueError(f"torchrun environment must hold integers, got {values}") from err
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"torchrun environment: RANK={rank} is not in [0, WORLD_SIZE={world})")
    return None if world == 1 else DistContext(rank, world, local)


def is_main_process() -> bool:
    """True unless this is a torchrun process of rank > 0 (use it to guard prints/files)."""
    ctx = current()
    return ctx is None or ctx.is_main


def device_for(name: str, ctx: DistContext) -> torch.device:
    """The device of this rank: CPU, or the GPU numbered ``LOCAL_RANK``.

    ``name`` follows ``TrainConfig.device`` (``"auto"`` is CUDA when available).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available() or ctx.local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"rank {ctx.rank} needs GPU {ctx.local_rank} but torch sees "
            f"{torch.cuda.device_count()}; lower --nproc_per_node or set device='cpu'"
        )
    torch.cuda.set_device(ctx.local_rank)
    return torch.device("cuda", ctx.local_rank)


def init(device: torch.device) -> bool:
    """Join the process group (gloo on CPU, NCCL on CUDA) unless already joined.

    Returns True when this call created it. The group then stays for every later fit of
    the process, because re-creating the default group inside one torchrun job is not
    reliable (stale rendezvous keys); it is left when the process exits, or at the end of
    :func:`session`.
    """
    if dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    atexit.register(shutdown, wait=False)
    logger.info(
        "joined process group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend
    )
    return True


def shutdown(*, wait: bool = True) -> None:
    """Leave the process group.

    ``wait=True`` first waits for every rank (a barrier), so no rank exits while others
    still work; after an error ``wait=False`` leaves at once, since the other ranks may be
    blocked in a collective that this one will never join.
    """
    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[DistContext | None]:
    """Hold one process group around a whole program (e.g. ``medseq train``).

    Every ``Trainer.fit`` inside reuses the group; outside torchrun it does nothing and
    yields None. Use one session per process: a second one would re-create the group.
    """
    ctx = current()
    created = ctx is not None and init(device_for(device, ctx))
    try:
        yield ctx
    except BaseException:
        if created:
            shutdown(wait=False)
        raise
    if created:
        shutdown()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel`` around ``model``; rank 0's weights are broadcast to all."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def reseed(seed: int, epoch: int, rank: int) -> None:
    """Seed torch for one epoch of one rank, from numbers that survive a resume."""
    torch.manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)


def loss_weight(loss_fn: nn.Module, y: torch.Tensor) -> float:
    """The denominator of the loss's mean over ``y``: labelled entries (or class weights)."""
    observed = ~torch.isnan(y)
    weight = getattr(loss_fn, "weight", None)
    if isinstance(loss_fn, MaskedCrossEntropyLoss) and weight is not None:
        classes = y[observed].long().cpu()
        return float(weight.cpu()[classes].sum())
    return float(observed.sum())


def shard_batches(
    tensors: Mapping[str, torch.Tensor],
    batch_size: int,
    device: torch.device,
    generator: torch.Generator,
    ctx: DistContext,
    loss_fn: nn.Module,
) -> Iterator[tuple[dict[str, torch.Tensor], float, int]]:
    """Yield this rank's slice of every global batch, its share of the loss, the batch size.

    Every rank builds the same order from ``generator``, so together the ranks cover each
    global batch of ``batch_size`` exactly once. The share is ``n_local / n_global`` in
    units of :func:`loss_weight`; the trainer multiplies the local loss by
    ``share * world_size`` so that DDP's gradient average equals the global mean.
    """
    y = tensors["y"]
    order = torch.randperm(y.shape[0], generator=generator)
    for rows in order.split(batch_size):
        total = loss_weight(loss_fn, y[rows])
        mine = torch.tensor_split(rows, ctx.world_size)[ctx.rank]
        share = loss_weight(loss_fn, y[mine]) / total if len(mine) and total > 0 else 0.0
        if len(mine) == 0:
            mine = rows[:1]  # a stand-in, weighted 0, so this rank joins the all-reduce
        batch = {k: v[mine].to(device, non_blocking=True) for k, v in tensors.items()}
        yield batch, share, len(rows)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum each number over all ranks (float64, so the totals do not lose digits)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def is_rank_zero() -> bool:
    """True unless this is a ``torchrun`` process of rank > 0, the ones that write nothing.

    Reads ``RANK`` without importing torch, which baseline experiments never need.
    """
    return os.environ.get("RANK", "0") == "0"
