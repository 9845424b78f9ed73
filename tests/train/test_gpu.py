"""The GPU path of training (CUDA, bf16 autocast, pinned prefetching) and its clean refusal without a GPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rfsense.errors import ConfigError
from rfsense.train.distributed import DistEnv
from rfsense.train.loader import Prefetcher, StepPlan
from rfsense.train.loop import fit
from tests.conftest import tiny_config

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA cannot be used")


@pytest.mark.gpu
@needs_cuda
def test_cuda_training_with_bf16_and_pinned_prefetch(synth_root, synth_pack, tmp_path):
    split = synth_pack.split("train")
    plan = StepPlan(np.arange(4), np.arange(4), np.ones((4, 3), dtype=bool))
    (batch,) = list(Prefetcher(split, [plan], torch.device("cuda"), DistEnv(device=torch.device("cuda")), depth=2))
    assert all(t.is_cuda for t in batch.x.values()) and batch.y_all.is_cuda
    cfg = tiny_config(synth_root, tmp_path, epochs=1, device="cuda", amp=True)
    result = fit(cfg)
    steps = [json.loads(line) for line in (tmp_path / "tiny" / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == 4 and all(np.isfinite(s["loss_task"]) and 0 <= s["alpha"] <= 1 for s in steps)
    assert set(result["subsets"]) >= {"R", "W", "RF", "R+W+RF"}


@pytest.mark.cpu_only
@no_cuda
def test_cuda_requested_without_a_gpu_is_a_config_error(synth_root, synth_pack, tmp_path):
    with pytest.raises(ConfigError, match="train.device: cuda requested but no CUDA device is available"):
        fit(tiny_config(synth_root, tmp_path, epochs=1, device="cuda"))
