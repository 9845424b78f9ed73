"""Distributed training on 2 CPU processes (torchrun's engine, gloo) against one process; kill -9 and
--resume under DDP; a failing rank.

Tolerances (stated here, asserted below):
- one step, any DAGR variant: the gradients DDP leaves on rank 0 equal one process's gradients of the
  same 5-sample global batch to rtol 1e-4 and atol 1e-5 x the largest gradient entry; losses to 1e-5
  relative, alpha* to 1e-6. They are not bit-identical because the ranks run the convolutions on 2- and
  3-row batches instead of one 5-row batch and the all-reduce sums in another order.
- a whole run (2 epochs, 8 AdamW steps, dropout 0): losses, L_d, L_a to 1e-3 relative and alpha* to 1e-3
  (first step 1e-5), final weights to 5e-3 absolute. AdamW divides by the root mean square of the gradient,
  which turns rounding differences of entries whose gradient is ~0 (e.g. the token-projection biases,
  whose exact gradient is 0 under the LayerNorm that follows) into steps of up to lr = 3e-3.
- kill -9 + --resume against an uninterrupted run with the same number of processes: bit-identical.

Every process start has a timeout, so a hang fails the test instead of blocking CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from rfsense.train.checkpoint import load_checkpoint
from rfsense.train.config import config_tree
from rfsense.train.dagr import dispersion_loss
from rfsense.train.distributed import DistEnv, gather_rows
from rfsense.train.loader import steps_per_epoch
from rfsense.train.loop import fit, train_step
from tests.conftest import tiny_config
from tests.train.ddp_step_worker import VARIANTS, batch_for, make_case

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds for one multi-process job on a busy 2-core machine


def _run(args: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _config_file(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config_tree(cfg), sort_keys=False))
    return path


def _tiny(root, out, name, **train):
    cfg = tiny_config(root, out, name, epochs=2, threads=1, **train)
    tree = config_tree(cfg)
    tree["model"]["dropout"] = 0.0  # dropout draws per rank; without it DDP and one process agree
    # One subset per batch: one process skips the encoders absent from a batch, DDP runs them and must then
    # leave them out of the optimiser step (`train_step`); the runs below compare exactly that.
    tree["train"]["presence"] = "per_batch"
    from rfsense.train.config import config_from_tree

    return config_from_tree(tree)


# ------------------------------------------------------------------------------------------ pure parts


def test_shards_cover_the_global_batch_in_order():
    for world in (1, 2, 3, 4):
        for n in (world, 5, 8, 17):
            shards = [DistEnv(rank=r, world=world).shard(n) for r in range(world)]
            rows = [i for s in shards for i in range(n)[s]]
            assert rows == list(range(n))
            sizes = [s.stop - s.start for s in shards]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_steps_per_epoch_drops_only_a_tail_smaller_than_the_world():
    assert steps_per_epoch(32, 8) == 4 and steps_per_epoch(33, 8) == 5  # one process keeps everything
    assert steps_per_epoch(33, 8, world=2) == 4  # a 1-row tail cannot be split over 2 ranks
    assert steps_per_epoch(34, 8, world=2) == 5


def test_gather_rows_is_the_tensor_itself_in_one_process():
    t = torch.randn(3, 2, requires_grad=True)
    assert gather_rows(t, 3, DistEnv()) is t


def test_joined_leaves_the_group_after_an_error_too(monkeypatch):
    from rfsense.train import distributed

    left = []
    monkeypatch.setattr(distributed, "teardown", lambda: left.append(True))
    with distributed.joined(torch.device("cpu")) as e:
        assert e.world == 1 and distributed.env() is e
    with pytest.raises(RuntimeError, match="boom"), distributed.joined(torch.device("cpu")):
        raise RuntimeError("boom")
    assert left == [True, True]


def test_setup_without_torchrun_variables_is_a_config_error(monkeypatch):
    from rfsense.errors import ConfigError
    from rfsense.train.distributed import setup

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match="WORLD_SIZE=2 but RANK.* not set; start the job with torchrun"):
        setup(torch.device("cpu"))


def test_rank_errors_go_to_torchelastics_error_file(tmp_path, monkeypatch):
    from rfsense.train.launch import record_rank_error

    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE", raising=False)
    assert record_rank_error("x") is False  # not a torchrun worker: the CLI prints the error itself
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(tmp_path / "error.json"))
    monkeypatch.delenv("RFSENSE_LAUNCHED", raising=False)
    assert record_rank_error("data root x not found") is False  # plain torchrun: the rank prints it too
    assert json.loads((tmp_path / "error.json").read_text())["message"] == "data root x not found"
    monkeypatch.setenv("RFSENSE_LAUNCHED", "1")
    assert record_rank_error("again") is True  # `train --nproc`: the launcher prints it, once


def test_truncate_logs_keeps_rows_up_to_the_checkpoint(tmp_path):
    from rfsense.train.resume import truncate_logs

    steps = [json.dumps({"epoch": e, "step": s}) for e in range(3) for s in range(2)]
    (tmp_path / "steps.jsonl").write_text("\n".join(steps) + '\n{"epoch": 2, "st')  # a line cut by a kill
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3)))
    truncate_logs(tmp_path, 1)  # the checkpoint of 0-based epoch 1
    assert (tmp_path / "steps.jsonl").read_text() == "\n".join(steps[:4]) + "\n"
    assert [json.loads(r)["epoch"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]


# ----------------------------------------------------------------------------------- one step, exact


@pytest.fixture(scope="module")
def ddp_steps(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp_steps")
    r = _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
              "tests.train.ddp_step_worker", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "params_per_rank"])
def test_one_step_gradients_match_one_process(ddp_steps, variant):
    got = torch.load(ddp_steps / f"{variant}.pt", weights_only=True)
    model, cfg, x, present, y = make_case(variant)
    torch.set_num_threads(1)
    want = train_step(model, batch_for(DistEnv(), x, present, y), cfg, DistEnv())
    for k in ("loss_task", "L_d", "L_a"):
        assert got["stats"][k] == pytest.approx(want[k], rel=1e-5, nan_ok=True), k
    assert got["stats"]["alpha"] == pytest.approx(want["alpha"], abs=1e-6, nan_ok=True)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(got["grads"]) == set(grads)
    scale = max(float(g.abs().max()) for g in grads.values())
    for name, g in grads.items():
        torch.testing.assert_close(got["grads"][name], g, rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_per_rank_dagr_sees_only_the_ranks_rows(ddp_steps):
    """dagr.global_batch false: rank 0's dispersion is over its own 2 rows, not the global 5."""
    got = torch.load(ddp_steps / "params_per_rank.pt", weights_only=True)["stats"]
    model, _, x, present, _ = make_case("params_per_rank")
    with torch.no_grad():
        _, z = model.forward_features(x["mmwave"], x["wifi"], x["rfid"], present)
    own = DistEnv(rank=0, world=2).shard(len(present))
    assert got["L_d"] == pytest.approx(float(dispersion_loss(z[own], present[own])), rel=1e-4)
    assert got["L_d"] != pytest.approx(float(dispersion_loss(z, present)), rel=1e-2)


# ------------------------------------------------------------------------------------ whole runs


@pytest.fixture(scope="module")
def ddp_run(synth_root, synth_pack, tmp_path_factory) -> Path:
    """`rfsense train --nproc 2`, uninterrupted: 2 epochs of 4 steps."""
    out = tmp_path_factory.mktemp("ddp_runs")
    cfg = _config_file(_tiny(synth_root, out, "ddp"), out / "ddp.yaml")
    r = _run(["-m", "rfsense", "-q", "train", str(cfg), "--nproc", "2"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "R+W+RF" in r.stdout and r.stdout.count("test accuracy") == 1  # rank 0 alone prints the table
    return out / "ddp"


def _steps(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]


def test_ddp_run_matches_one_process(ddp_run, synth_root, tmp_path):
    fit(_tiny(synth_root, tmp_path, "one"))
    one, two = _steps(tmp_path / "one"), _steps(ddp_run)
    assert len(two) == len(one) == 8  # rank 0 alone writes the logs
    assert two[0]["loss_task"] == pytest.approx(one[0]["loss_task"], rel=1e-5)
    assert two[0]["alpha"] == pytest.approx(one[0]["alpha"], abs=1e-5)
    for a, b in zip(two, one, strict=True):
        assert (a["epoch"], a["step"], a["lr"]) == (b["epoch"], b["step"], b["lr"])
        for k in ("loss_task", "L_d", "L_a"):
            assert a[k] == pytest.approx(b[k], rel=1e-3), (a, b)
        assert a["alpha"] == pytest.approx(b["alpha"], abs=1e-3)
    wa, wb = load_checkpoint(ddp_run / "last.pt")["model"], load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    for k, v in wa.items():
        # Adam's steps are about lr (2e-3 here) wherever a gradient is rounding noise around 0 (the token biases
        # of a single-modality batch, whose pooled z is L2-normalised), so they may part by a few steps there.
        atol = 1e-2 if k.endswith("to_tokens.bias") else 5e-3
        torch.testing.assert_close(v, wb[k], rtol=0, atol=atol, msg=k)
    assert len(load_checkpoint(ddp_run / "last.pt")["rank_rng"]) == 2  # every rank's dropout stream


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _rank_pid(launcher: int, rank: int) -> int | None:
    for child in _children(launcher):
        try:
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return child
    return None


def test_kill9_of_a_rank_stops_the_job_and_resume_is_bit_identical(ddp_run, synth_root, tmp_path):
    cfg = _config_file(_tiny(synth_root, tmp_path, "ddp"), tmp_path / "ddp.yaml")
    run = tmp_path / "ddp"
    job = subprocess.Popen([sys.executable, "-m", "rfsense", "-q", "train", str(cfg), "--nproc", "2"], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run / "last.pt").is_file():  # epoch 1 is done; kill rank 1 in epoch 2
            assert job.poll() is None and time.monotonic() < deadline, "the job ended before its first checkpoint"
            time.sleep(0.05)
        victim = _rank_pid(job.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        _, err = job.communicate(timeout=60)  # no hang: rank 0 is stopped at once
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 1 and time.monotonic() - t0 < 60
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: training process rank 1 was killed (Signal 9 (SIGKILL)"), err
    assert load_checkpoint(run / "last.pt")["epoch"] == 0, "killed too late to test resuming"

    r = _run(["-m", "rfsense", "-q", "train", str(cfg), "--nproc", "2", "--resume"])
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_checkpoint(ddp_run / "last.pt"), load_checkpoint(run / "last.pt")
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert torch.equal(a["rank_rng"], b["rank_rng"])
    assert (run / "steps.jsonl").read_text() == (ddp_run / "steps.jsonl").read_text()
    drop = ("seconds", "data_wait")
    rows = [[{k: v for k, v in json.loads(line).items() if k not in drop} for line in (p / "metrics.jsonl").open()]
            for p in (run, ddp_run)]
    assert rows[0] == rows[1]


def test_a_failing_rank_stops_the_job_with_one_error_line(synth_root, tmp_path):
    cfg = _config_file(_tiny(tmp_path / "nowhere", tmp_path, "bad"), tmp_path / "bad.yaml")
    t0 = time.monotonic()
    r = _run(["-m", "rfsense", "train", str(cfg), "--nproc", "2"], timeout=120)
    assert r.returncode == 1 and time.monotonic() - t0 < 120
    errors = [line for line in r.stderr.splitlines() if "Error" in line or "Traceback" in line]
    assert errors == [f"Error: rank 0: data root {tmp_path / 'nowhere'} not found. Put the XRF55 download there "
                      f"(its {{WiFi,RFID,mmWave}} folders, or Scene*/ or train_data/test_data above them), set "
                      f"data.root, or make a synthetic stand-in: rfsense synth {tmp_path / 'nowhere'}"], r.stderr


def test_the_backbones_stage_under_torchrun_is_one_line_before_anything_is_written(synth_root, tmp_path):
    cfg = _config_file(_tiny(synth_root, tmp_path, "bb"), tmp_path / "bb.yaml")
    r = _run(["-m", "rfsense", "train", str(cfg), "--nproc", "2", "--stage", "backbones"], timeout=120)
    errors = [line for line in r.stderr.splitlines() if "Error" in line or "Traceback" in line]
    assert r.returncode == 1 and len(errors) == 1 and "the backbones stage trains in one process" in errors[0], r.stderr
    assert not (tmp_path / "bb").exists()
