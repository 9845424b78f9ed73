"""Distributed training on PyTorch's own engine: the process group, global-batch sharding and the all-gather.

    torchrun --nproc_per_node 2 -m rfsense train configs/xrf55.yaml     # or: rfsense train CONFIG --nproc 2

torchrun starts one process per device and sets RANK, WORLD_SIZE and LOCAL_RANK; `setup` joins them into
one process group (NCCL on CUDA, gloo on the CPU). The training semantics do not depend on the number of
processes:

- `train.batch_size` is the GLOBAL batch. Every rank draws the same global batch (the same seeded order,
  presence masks, DML pairing, time shifts) and reads and trains on its own contiguous share of it
  (`DistEnv.shard`), so N processes see exactly the samples and masks one process would.
- The model's outputs are gathered (`gather_rows`, differentiable) so the task loss and DAGR are computed
  over the whole global batch on every rank. Its backward returns world x the rank's own rows: every rank
  computes the same loss on the gathered rows, and DistributedDataParallel averages gradients over ranks,
  so the averaged gradient is exactly the single-process gradient of the global batch.
- Dropout draws from a per-rank torch generator (`seed_rank`): with dropout the run equals a single-process
  run in distribution, without it (or in eval) up to float rounding.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from rfsense.errors import ConfigError

__all__ = ["DistEnv", "env", "gather_rng_states", "gather_rows", "joined", "seed_rank", "setup", "teardown", "unwrap", "wrap"]

_logger = logging.getLogger(__name__)
_ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job; the defaults describe a plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes logs, checkpoints and results."""
        return self.rank == 0

    def bounds(self, n: int) -> list[int]:
        """Row offsets [0, ..., n] of every rank's contiguous share of a global batch of n rows."""
        return [n * r // self.world for r in range(self.world + 1)]

    def shard(self, n: int) -> slice:
        """This rank's rows of a global batch of n rows (sizes differ by at most one between ranks)."""
        b = self.bounds(n)
        return slice(b[self.rank], b[self.rank + 1])

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


_current = DistEnv()


def env() -> DistEnv:
    """The environment `setup` established (single process when it was not called)."""
    return _current


def setup(device: torch.device, timeout_minutes: float = 30.0) -> DistEnv:
    """Join the process group torchrun describes in the environment; a no-op without WORLD_SIZE > 1.

    Args:
        device: the resolved training device; under torchrun on CUDA each rank takes cuda:LOCAL_RANK.
        timeout_minutes: how long a collective waits for a missing rank before it fails (a rank that
            dies is noticed by torchrun at once; this bounds hangs of live ranks on other nodes).

    Returns:
        The DistEnv, also available later through `env()`.

    Raises:
        ConfigError: torchrun's variables are incomplete, or more processes than GPUs on a CUDA machine.
    """
    global _current
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        _current = DistEnv(device=device)
        return _current
    missing = [k for k in _ENV_KEYS if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set; start the job with torchrun")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"process {local_rank} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                              "visible); start at most one process per GPU (--nproc / --nproc_per_node)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)
    _current = DistEnv(rank, world, local_rank, device)
    if rank != 0:  # one voice: other ranks report warnings and errors only
        logging.getLogger("rfsense").setLevel(max(logging.WARNING, logging.getLogger("rfsense").level))
    return _current


def teardown() -> None:
    """Leave the process group (if any) and return to single-process mode."""
    global _current
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _current = DistEnv(device=_current.device)


@contextmanager
def joined(device: torch.device) -> Iterator[DistEnv]:
    """`setup` on entry, `teardown` on exit; after a body that succeeded every rank first waits for the others.

    Leaving together matters: a rank that tears gloo down while another still works (rank 0 evaluating or
    saving) was seen to abort with SIGABRT. After an error no rank waits (the others may be gone).
    """
    e = setup(device)
    try:
        yield e
        e.barrier()
    finally:
        teardown()


def seed_rank(seed: int, e: DistEnv) -> None:
    """Give each rank its own torch generator stream (dropout) after the identical initialisation."""
    if e.world > 1:
        torch.manual_seed(int(np.random.SeedSequence([seed, e.rank, 104729]).generate_state(1)[0]))


def wrap(model: nn.Module, e: DistEnv) -> nn.Module:
    """DistributedDataParallel around `model` in a multi-process job, else `model` itself.

    Parameters that never receive a gradient must be frozen before (requires_grad False): DDP waits for
    every trainable parameter's gradient in every step.
    """
    if e.world <= 1:
        return model
    ids = [e.device.index] if e.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 with per-rank row counts; backward keeps this rank's rows, times world."""

    @staticmethod
    def forward(ctx, t: Tensor, bounds: tuple[int, ...], rank: int) -> Tensor:  # type: ignore[override]
        world = len(bounds) - 1
        lo, hi = bounds[rank], bounds[rank + 1]
        ctx.lo, ctx.hi, ctx.world = lo, hi, world
        width = max(b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        padded = t.new_zeros((width, *t.shape[1:]))  # all_gather needs equal shapes
        padded[: hi - lo] = t
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        return torch.cat([p[: bounds[r + 1] - bounds[r]] for r, p in enumerate(parts)])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        # Every rank computes the same loss on the gathered rows; DDP then averages over ranks, so world x
        # the own rows' gradient makes the average the exact gradient of the global batch. No collective
        # here, so this also runs under a batched (vmapped) vector-Jacobian product.
        return grad[ctx.lo : ctx.hi] * ctx.world, None, None


def gather_rows(t: Tensor, n: int, e: DistEnv | None = None) -> Tensor:
    """The global batch's rows of `t` on every rank, differentiably; `t` itself in a single process.

    Args:
        t: (b, ...) this rank's rows, b = the size of `e.shard(n)`.
        n: global batch size.
        e: the distributed environment (default: `env()`).

    Returns:
        (n, ...) the rows of all ranks in rank order, i.e. in the global batch's order. Its gradient is
        only valid for losses that every rank computes identically from it (see `_GatherRows`).
    """
    e = e or env()
    if e.world <= 1:
        return t
    return _GatherRows.apply(t.contiguous(), tuple(e.bounds(n)), e.rank)


def gather_rng_states(e: DistEnv, state: Tensor) -> Tensor:
    """Every rank's generator state (uint8, the same length on every rank) stacked: (world, n)."""
    if e.world <= 1:
        return state[None].clone()
    moved = state.to(e.device)  # NCCL collectives take device tensors
    parts = [torch.empty_like(moved) for _ in range(e.world)]
    dist.all_gather(parts, moved)
    return torch.stack(parts).cpu()
