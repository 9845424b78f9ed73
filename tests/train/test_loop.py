from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from rfsense.errors import ConfigError, DataError
from rfsense.modalities import SUBSETS
from rfsense.train.batches import sample_presence
from rfsense.train.checkpoint import load_checkpoint, save_checkpoint
from rfsense.train.config import config_tree
from rfsense.train.evaluate import evaluate_run
from rfsense.train.loop import fit, run
from tests.conftest import tiny_config

LEARN_EPOCHS = 12


@pytest.fixture(scope="module")
def learning_run(tmp_path_factory):
    """A run long enough to learn: 4 classes, 56 train / 24 test samples, DAGR on (pareto, params)."""
    from rfsense.data.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("learn") / "xrf55"
    synthesize(root, SynthConfig(seed=1, volunteers=2, actions=4, trials=10), workers=1)
    cfg = tiny_config(root, tmp_path_factory.mktemp("runs"), "learn", range(1, 8), epochs=LEARN_EPOCHS, lr=1e-3)
    fit(cfg)
    return cfg.run_dir


def test_training_beats_chance(learning_run):
    """Chance is 25% on 24 test samples. The fused R+W+RF must reach twice that (12 of 24: p = 0.003 under
    chance) and the mean of the 7 subsets 40% (a model that learned nothing scores about 25% on each).
    Measured with seeds 0-3 of this set-up: R+W+RF 92, 88, 67, 67%; mean of the 7 subsets 80, 74, 50, 60%;
    single modalities vary most (R 33-83%), so none of them is asserted alone."""
    result = json.loads((learning_run / "results.json").read_text())
    assert set(result["subsets"]) == {name for name, _ in SUBSETS}
    assert result["n"]["R+W+RF"] == 24
    assert result["subsets"]["R+W+RF"] >= 0.5, result["subsets"]
    assert np.mean(list(result["subsets"].values())) >= 0.4, result["subsets"]
    losses = [json.loads(line)["loss"] for line in (learning_run / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.6 * losses[0], losses
    geo = result["geometry"]
    assert set(geo["effective_rank"]) == {"mmwave", "wifi", "rfid"}
    assert 0.0 <= geo["outside_tau"] <= 1.0


def test_run_folder_contents(trained_run):
    for f in ("config.yaml", "metrics.jsonl", "steps.jsonl", "last.pt", "best.pt", "results.json", "results.txt"):
        assert (trained_run / f).is_file(), f
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    steps = [json.loads(line) for line in (trained_run / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == 6 * 4 and all(s["L_d"] is not None and 0 <= s["alpha"] <= 1 for s in steps)
    assert yaml.safe_load((trained_run / "config.yaml").read_text())["dagr"]["tau"] == 0.25
    state = load_checkpoint(trained_run / "best.pt")
    assert set(state) >= {"model", "model_config"} and state["model_config"]["preset"] == "edge"
    assert "R+W+RF" in (trained_run / "results.txt").read_text()


def test_eval_reproduces_results(trained_run):
    before = json.loads((trained_run / "results.json").read_text())
    again = evaluate_run(trained_run)
    assert again["subsets"] == before["subsets"]


def test_existing_run_needs_flag(synth_root, trained_run):
    cfg = tiny_config(synth_root, trained_run.parent)
    with pytest.raises(ConfigError, match="already exists; pass --resume .* or --overwrite"):
        fit(cfg)


def test_resume_equals_uninterrupted(synth_root, synth_pack, tmp_path):
    """Stopped after an epoch, or killed with SIGKILL mid-epoch while the loader reads ahead (prefetch 2):
    --resume ends bit-identical to the uninterrupted run, logs included (timings aside)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    cfg = tiny_config(synth_root, tmp_path, epochs=2, threads=1, prefetch=2)
    assert cfg.train.prefetch == 2
    fit(cfg, run_dir=tmp_path / "a")
    fit(cfg, run_dir=tmp_path / "b", stop_after=1)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 0
    fit(cfg, run_dir=tmp_path / "b", resume=True)

    killed = tiny_config(synth_root, tmp_path, name="c", epochs=2, threads=1, prefetch=2)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config_tree(killed), sort_keys=False))
    repo = Path(__file__).resolve().parents[2]
    job = subprocess.Popen([sys.executable, "-m", "rfsense", "-q", "train", str(tmp_path / "c.yaml")], cwd=repo,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "c" / "last.pt").is_file():
            assert job.poll() is None and time.monotonic() < deadline, "training ended before its first checkpoint"
            time.sleep(0.05)
        os.kill(job.pid, signal.SIGKILL)
    finally:
        job.wait(timeout=60)
    assert load_checkpoint(tmp_path / "c" / "last.pt")["epoch"] == 0, "killed too late to test resuming"
    fit(killed, resume=True)

    a = load_checkpoint(tmp_path / "a" / "last.pt")
    ra = json.loads((tmp_path / "a" / "results.json").read_text())
    for name in ("b", "c"):
        other = load_checkpoint(tmp_path / name / "last.pt")
        for k, v in a["model"].items():
            assert torch.equal(v, other["model"][k]), (name, k)
        assert ra["subsets"] == json.loads((tmp_path / name / "results.json").read_text())["subsets"]
        assert (tmp_path / name / "steps.jsonl").read_text() == (tmp_path / "a" / "steps.jsonl").read_text(), name
        rows = [[{k: v for k, v in json.loads(line).items() if k not in ("seconds", "data_wait")}
                 for line in (tmp_path / r / "metrics.jsonl").read_text().splitlines()] for r in ("a", name)]
        assert rows[0] == rows[1], name


def test_seeds_aggregate(synth_root, synth_pack, tmp_path):
    cfg = tiny_config(synth_root, tmp_path, name="multi", epochs=1)
    result = run(cfg, seeds=[0, 1])
    assert result["n_seeds"] == 2 and len(result["subsets"]["R"]["values"]) == 2
    assert "±" in result["table"]
    assert (tmp_path / "multi" / "seed0" / "best.pt").is_file() and (tmp_path / "multi" / "results.json").is_file()


def test_missing_data_root_message(tmp_path):
    cfg = tiny_config(tmp_path / "nowhere", tmp_path)
    with pytest.raises(DataError, match=r"not found\. Put the XRF55 download there .* rfsense synth"):
        fit(cfg)


def test_sample_presence():
    rng = np.random.default_rng(0)
    usable = np.array([[1, 1, 1], [0, 1, 0], [0, 0, 0], [1, 0, 1]] * 250, dtype=bool)
    p = sample_presence(rng, usable, (0.5, 0.9, 0.6))
    assert not (p & ~usable).any()  # never present without data
    assert p[usable.any(1)].any(1).all()  # never empty when something is usable
    assert not p[~usable.any(1)].any()
    full = p[::4]
    assert abs(full[:, 0].mean() - 0.5) < 0.1 and full[:, 1].mean() > 0.8  # redraws shift rates only a little


def test_checkpoint_atomic_and_safe(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(2), "cfg": {"a": [1, 2]}})
    assert not (tmp_path / "c.pt.tmp").exists()
    assert load_checkpoint(tmp_path / "c.pt")["cfg"] == {"a": [1, 2]}
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    from rfsense.errors import ModelFileError

    with pytest.raises(ModelFileError, match="not a readable rfsense checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_unimodal_loss_counts_present_modalities_only():
    from rfsense.models import build_model
    from rfsense.train.loop import task_loss

    torch.manual_seed(0)
    model = build_model("edge", d=16, heads=2)
    logits, y = torch.randn(4, 55), torch.tensor([0, 1, 2, 3])
    z = torch.randn(4, 3, 16)
    present = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=torch.bool)
    plain = torch.nn.functional.cross_entropy(logits, y)
    assert torch.equal(task_loss(model, logits, z, present, y, 0.0), plain)
    with_uni = task_loss(model, logits, z, present, y, 0.5)
    z2 = z.clone()
    z2[~present] = 100.0  # absent modalities' embeddings must not matter
    assert torch.allclose(task_loss(model, logits, z2, present, y, 0.5), with_uni)
    uni = model.unimodal_logits(z)
    ce = [torch.nn.functional.cross_entropy(uni[i, m][None], y[i][None]) for i in range(4) for m in range(3) if present[i, m]]
    assert torch.allclose(with_uni, plain + 0.5 * torch.stack(ce).mean())


def test_time_shift_keeps_modalities_aligned():
    from rfsense.train.batches import time_shift

    t_w = torch.arange(1000.0).repeat(2, 270, 1)  # (2, 270, 1000): value = packet index
    t_r = torch.arange(148.0).repeat(2, 23, 1)
    t_m = torch.arange(17.0).view(1, 17, 1, 1).repeat(2, 1, 4, 2)
    out = time_shift({"wifi": t_w, "rfid": t_r, "mmwave": t_m}, 0.1, np.random.default_rng(3))
    for i in range(2):
        shift_w = out["wifi"][i, 0, 500] - 500
        shift_r = out["rfid"][i, 0, 74] - 74
        assert abs(shift_w) <= 100 and abs(shift_w / 1000 - shift_r / 148) < 0.01  # same fraction of the window
        assert (out["wifi"][i] == out["wifi"][i, :1]).all()  # every channel shifted alike
    assert time_shift({"wifi": t_w}, 0.0, np.random.default_rng(0))["wifi"] is t_w
