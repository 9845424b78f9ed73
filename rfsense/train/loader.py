"""The training loader: reads the next batches from the memory-mapped pack while the current one trains.

The loop draws every random choice of a step (rows, DML pairing, presence masks, time shifts) up front,
in step order, as a `StepPlan` for the GLOBAL batch; `Prefetcher` turns plans into `Batch`es. Background
threads read this rank's rows of the next `depth` plans (numpy releases the GIL while it gathers and
converts float16 rows, so reading overlaps the model's compute), pin them on CUDA, and the consumer copies
them to the device without blocking. Randomness never depends on the threads, the depth or the number of
ranks, so any depth and any world size train on exactly the same data.

    loader = Prefetcher(split, plans, device, env(), depth=2)
    for batch in loader: ...      # batch.x: this rank's rows on the device
    loader.wait_s                 # seconds the loop waited for data
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from time import perf_counter
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rfsense.data.pack import PackedSplit
from rfsense.train.batches import read_rows, shift_by
from rfsense.train.distributed import DistEnv, gather_rows

__all__ = ["Batch", "Prefetcher", "StepPlan", "steps_per_epoch"]


@dataclass(frozen=True)
class StepPlan:
    """One global batch and every random draw for it (the same on every rank)."""

    idx: np.ndarray  # (B,) rows of the split: the samples (labels) of the batch
    read: np.ndarray  # (B,) or (B, 3): the row each modality is read from (DML pairing)
    present: np.ndarray  # (B, 3) bool presence mask
    shift: np.ndarray | None = None  # (B,) time-shift fractions of the window; None: no shift
    faults: Any = None  # rfsense.train.faults.FaultPlan of fault-aware training; None: off


@dataclass
class Batch:
    """This rank's share of a global batch on the device, plus the global labels and masks."""

    x: dict[str, Tensor]  # modality -> (b, ...) float32, this rank's rows
    present: Tensor  # (b, 3) bool, this rank's rows
    present_all: Tensor  # (B, 3) bool, the global batch
    y_all: Tensor  # (B,) int64, the global batch
    n: int  # B, the global batch size


def steps_per_epoch(n_rows: int, batch_size: int, world: int = 1) -> int:
    """Steps of an epoch over `n_rows` in global batches of `batch_size`.

    A last batch with fewer rows than there are ranks is dropped (a rank with no rows cannot take part in
    the gradient all-reduce); in a single process nothing is dropped.
    """
    full, rest = divmod(n_rows, batch_size)
    return full + (1 if rest and rest >= world else 0)


class Prefetcher:
    """Iterate `Batch`es for `plans`, with up to `depth` batches read ahead by as many threads.

    Args:
        split: the packed split the plans index.
        plans: global-batch plans in step order (a generator is consumed lazily, in this thread).
        device: where batches go; on CUDA host tensors are pinned and copied without blocking.
        e: this rank's environment; only its share of each batch is read.
        depth: batches read ahead; 0 reads synchronously in the consuming thread.

    Attributes:
        wait_s: seconds the consumer spent waiting for data (with depth 0: all reading time).
        steps: batches handed out so far.
    """

    def __init__(self, split: PackedSplit, plans: Iterable[StepPlan], device: torch.device, e: DistEnv,
                 depth: int = 2, corrupt: Callable[..., tuple[dict[str, np.ndarray], np.ndarray]] | None = None) -> None:
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self.split, self.plans, self.device, self.env, self.depth = split, plans, device, e, depth
        self.corrupt = corrupt  # fault-aware training: (x, present, keys, fault plan) -> (x, present)
        self.wait_s = 0.0
        self.steps = 0

    def _read(self, plan: StepPlan) -> tuple[dict[str, Tensor], np.ndarray | None]:
        """Host tensors of this rank's rows, and their presence when faults changed it (a reader thread)."""
        sl = self.env.shard(len(plan.idx))
        x = read_rows(self.split, plan.read[sl])
        if plan.shift is not None:
            x = shift_by(x, plan.shift[sl])
        present = None
        if plan.faults is not None and self.corrupt is not None:
            arrays, present = self.corrupt({m: t.numpy() for m, t in x.items()}, plan.present[sl],
                                           self.split.keys[plan.idx[sl]], plan.faults.rows(sl))
            x = {m: torch.from_numpy(a) for m, a in arrays.items()}
        if self.device.type == "cuda":
            x = {m: t.pin_memory() for m, t in x.items()}
        return x, present

    def _batch(self, plan: StepPlan, host: tuple[dict[str, Tensor], np.ndarray | None]) -> Batch:
        dev, nb = self.device, self.device.type == "cuda"
        x, corrupted = host
        sl = self.env.shard(len(plan.idx))
        if corrupted is None:
            present_all = torch.from_numpy(np.ascontiguousarray(plan.present)).to(dev, non_blocking=nb)
            present = present_all[sl]
        else:  # faults masked some of this rank's streams: every rank needs the whole batch's mask
            present = torch.from_numpy(corrupted).to(dev)
            present_all = gather_rows(present.float(), len(plan.idx), self.env) > 0.5
        self.steps += 1
        return Batch(
            x={m: t.to(dev, non_blocking=nb) for m, t in x.items()},
            present=present,
            present_all=present_all,
            y_all=torch.from_numpy(self.split.labels[plan.idx]).to(dev, non_blocking=nb),
            n=len(plan.idx),
        )

    def __iter__(self) -> Iterator[Batch]:
        plans = iter(self.plans)
        if self.depth == 0:
            for plan in plans:
                t0 = perf_counter()
                host = self._read(plan)
                self.wait_s += perf_counter() - t0
                yield self._batch(plan, host)
            return
        with ThreadPoolExecutor(max_workers=self.depth, thread_name_prefix="rfsense-loader") as pool:
            pending: deque[tuple[StepPlan, Future[tuple[dict[str, Tensor], np.ndarray | None]]]] = deque(
                (p, pool.submit(self._read, p)) for p in islice(plans, self.depth)
            )
            try:
                while pending:
                    plan, future = pending.popleft()
                    t0 = perf_counter()
                    host = future.result()
                    self.wait_s += perf_counter() - t0
                    pending.extend((p, pool.submit(self._read, p)) for p in islice(plans, 1))
                    yield self._batch(plan, host)
            finally:  # stopped early (error, or the caller broke off): drop what was not started
                for _, f in pending:
                    f.cancel()
