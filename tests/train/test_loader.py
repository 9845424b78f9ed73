"""The prefetching loader: the same batches at any depth and on any rank's share, errors surface, early stop."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from rfsense.modalities import MODALITIES
from rfsense.train.batches import read_rows, shift_by
from rfsense.train.distributed import DistEnv
from rfsense.train.loader import Prefetcher, StepPlan


def _plans(n_rows: int, steps: int, batch: int, shift: bool = False, seed: int = 0) -> list[StepPlan]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        idx = rng.choice(n_rows, size=batch, replace=False)
        read = np.stack([rng.permutation(idx) for _ in MODALITIES], axis=1)  # DML-style: a row per modality
        out.append(StepPlan(idx, read, rng.random((batch, 3)) < 0.6, rng.uniform(-0.1, 0.1, batch) if shift else None))
    return out


def _collect(loader: Prefetcher) -> list:
    return [({m: t.clone() for m, t in b.x.items()}, b.present.clone(), b.present_all.clone(), b.y_all.clone(), b.n)
            for b in loader]


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_prefetching_yields_the_synchronous_batches(synth_pack, depth):
    split = synth_pack.split("train")
    plans = _plans(len(split), steps=5, batch=6, shift=True)
    sync = _collect(Prefetcher(split, iter(plans), torch.device("cpu"), DistEnv(), depth=0))
    ahead = Prefetcher(split, iter(plans), torch.device("cpu"), DistEnv(), depth=depth)
    got = _collect(ahead)
    assert len(got) == len(sync) == 5 and ahead.steps == 5 and ahead.wait_s >= 0
    for a, b in zip(got, sync, strict=True):
        assert all(torch.equal(a[0][m], b[0][m]) for m in MODALITIES)
        assert all(torch.equal(x, y) for x, y in zip(a[1:4], b[1:4], strict=True)) and a[4] == b[4]


def test_each_rank_reads_its_share_of_the_global_batch(synth_pack):
    split = synth_pack.split("train")
    plan = _plans(len(split), steps=1, batch=7, shift=True)[0]
    full = shift_by(read_rows(split, plan.read), plan.shift)
    for rank in (0, 1):
        e = DistEnv(rank=rank, world=2)
        (batch,) = list(Prefetcher(split, [plan], torch.device("cpu"), e, depth=2))
        sl = e.shard(7)
        assert batch.n == 7 and batch.y_all.tolist() == split.labels[plan.idx].tolist()
        assert torch.equal(batch.present, torch.from_numpy(plan.present[sl]))
        for m in MODALITIES:
            assert torch.equal(batch.x[m], full[m][sl]), m


def test_a_read_error_surfaces_and_early_stop_leaves_no_thread(synth_pack):
    split = synth_pack.split("train")
    good = _plans(len(split), steps=3, batch=4)
    bad = StepPlan(np.array([0, 1]), np.array([0, len(split) + 5]), np.ones((2, 3), bool))
    with pytest.raises(IndexError):
        list(Prefetcher(split, [*good, bad], torch.device("cpu"), DistEnv(), depth=2))
    loader = Prefetcher(split, iter(_plans(len(split), steps=20, batch=4)), torch.device("cpu"), DistEnv(), depth=3)
    for i, _ in enumerate(loader):
        if i == 1:
            break
    assert not any(t.name.startswith("rfsense-loader") for t in threading.enumerate())
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(split, [], torch.device("cpu"), DistEnv(), depth=-1)
