"""Fault-aware training: the batch corruption is deterministic, touches the chosen share, masks what the
quality rule would fail, and the config refuses faults without a preprocessed variant."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rfsense.data.preprocess import PreprocessConfig
from rfsense.data.quality import QualityConfig
from rfsense.errors import ConfigError
from rfsense.modalities import MODALITIES, SHAPES
from rfsense.train.config import load_config
from rfsense.train.faults import FaultTraining, corrupt_rows, plan_faults, preprocessed_scales


def _batch(b: int = 8) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = {m: rng.normal(0, 1, (b, *SHAPES[m])).astype(np.float16) for m in MODALITIES}
    keys = np.stack([np.ones(b, int), np.arange(1, b + 1), np.ones(b, int)], axis=1)
    return x, np.ones((b, 3), bool), keys


def _run(cfg: FaultTraining, step: int = 0):
    x, present, keys = _batch()
    plan = plan_faults(np.random.default_rng([0, step]), len(present), cfg)
    if plan is None:
        return x, (x, present)
    return x, corrupt_rows(x, present, keys, plan, cfg, scales=dict.fromkeys(MODALITIES, 1.0),
                           prep=PreprocessConfig(), quality=QualityConfig())


def test_off_by_default_draws_nothing_and_zero_fraction_changes_nothing():
    assert load_config("configs/quickstart.yaml").train.faults == FaultTraining()
    rng = np.random.default_rng(0)
    assert plan_faults(rng, 8, FaultTraining()) is None and rng.random() == np.random.default_rng(0).random()
    x, (y, p) = _run(FaultTraining(names=("gaussian",), fraction=0.0))
    assert all(np.array_equal(x[m], y[m]) for m in MODALITIES) and p.all()


def test_corruption_is_deterministic_and_takes_the_share():
    cfg = FaultTraining(names=("gaussian", "missing"), fraction=1.0, severities=(5,))
    x, (a, pa) = _run(cfg)
    _, (b, pb) = _run(cfg)
    assert all(np.array_equal(a[m], b[m]) for m in MODALITIES) and np.array_equal(pa, pb)
    changed = np.stack([(a[m] != x[m]).reshape(8, -1).any(1) for m in MODALITIES], 1)
    assert (changed.any(1) | ~pa.all(1)).all()  # every sample got one fault (or lost a stream to it)
    _, (c, _) = _run(cfg, step=1)
    assert any(not np.array_equal(a[m], c[m]) for m in MODALITIES)  # another step, other draws
    assert all(x[m].dtype == a[m].dtype for m in MODALITIES)


def test_a_stream_the_quality_rule_fails_is_masked():
    _, (_, p) = _run(FaultTraining(names=("missing",), fraction=1.0, severities=(5,)))
    assert (~p).sum() >= 4  # 90 % of WiFi packets or mmWave frames lost: failed and masked


def test_preprocessed_scales_pool_the_channels():
    from rfsense.data.normstats import NormStats

    stats = NormStats(mean={"wifi": np.array([0.0, 2.0])}, std={"wifi": np.array([1.0, 1.0])})
    assert preprocessed_scales(stats)["wifi"] == pytest.approx(np.sqrt(1 + 1))


@pytest.mark.parametrize(("override", "message"), [
    ("train.faults.names=[phase-jump]", "cannot act on preprocessed training arrays"),
    ("train.faults.names=[mising]", "unknown fault 'mising'"),
    ("train.faults.fraction=2", "fraction must be in"),
])
def test_config_refuses_what_cannot_train(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("configs/quickstart.yaml", [override])


def test_training_with_faults_runs_and_resumes_identically(synth_root, synth_pack, tmp_path):
    """The faults are part of each step's plan: a run stopped and resumed equals one uninterrupted run."""
    import torch

    from rfsense.train.checkpoint import load_checkpoint
    from rfsense.train.loop import fit
    from tests.conftest import tiny_config

    def cfg(name):
        c = tiny_config(synth_root, tmp_path, name=name, epochs=2, prefetch=2)
        faults = FaultTraining(names=("missing", "gaussian", "sensor-fail"), fraction=0.5)
        return dataclasses.replace(c, train=dataclasses.replace(c.train, faults=faults))

    fit(cfg("whole"))
    fit(cfg("parts"), stop_after=1)
    fit(cfg("parts"), resume=True)
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "parts" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    fit(tiny_config(synth_root, tmp_path, name="clean", epochs=2, prefetch=2))
    c = load_checkpoint(tmp_path / "clean" / "last.pt")
    assert not all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"])  # the faults did change training
