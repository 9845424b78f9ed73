"""The synthetic XRF55 generator: contract, layout, determinism, impairments, idempotence, difficulty.

Fast tests use 2 volunteers x 3 actions x 2 trials; the difficulty test (marked slow) generates
3 volunteers x 10 actions x 20 trials (~2.6 GB in tmp) and runs the no-training probe on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rfsense.data.layout import discover
from rfsense.data.synth import GENERATOR_VERSION, SynthConfig, generate_sample, sample_paths, synthesize
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES

SMALL = SynthConfig(volunteers=2, actions=3, trials=2, seed=0)
SHAPES = {"mmwave": (1, 17, 256, 128), "wifi": (270, 1000), "rfid": (23, 148)}
DTYPES = {"mmwave": np.float32, "wifi": np.float64, "rfid": np.float64}


def _files(root: Path) -> dict[str, int]:
    """Every file under root -> mtime in ns."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def flat_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_flat") / "xrf"
    synthesize(root, SMALL, workers=1)
    return root


@pytest.fixture(scope="module")
def sample() -> dict[str, np.ndarray]:
    return generate_sample(SMALL, 1, 2, 1)


# ------------------------------------------------------------------------------------------ contract
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"volunteers": 0}, "volunteers must be a positive integer"),
        ({"trials": -1}, "trials must be a positive integer"),
        ({"scenes": 1.5}, "scenes must be a positive integer"),
        ({"actions": True}, "actions must be a positive integer"),
        ({"actions": 56}, "actions must be at most 55"),
        ({"seed": -3}, "seed must be a non-negative integer"),
        ({"layout": "nested"}, "layout must be 'flat' or 'scenes'"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**kwargs)


def test_bad_ids_and_workers(tmp_path):
    with pytest.raises(ValueError, match="action must be at most 55"):
        generate_sample(SMALL, 1, 56, 1)
    with pytest.raises(ValueError, match="trial must be a positive integer"):
        generate_sample(SMALL, 1, 1, 0)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        synthesize(tmp_path / "x", SMALL, workers=0)


def test_sample_shapes_dtypes(sample):
    assert set(sample) == set(MODALITIES)
    for m, arr in sample.items():
        assert arr.shape == SHAPES[m], m
        assert arr.dtype == DTYPES[m], m
        assert np.isfinite(arr).all(), m


# ------------------------------------------------------------------------------------------ layout
def test_flat_layout_reads_back(flat_root):
    found = discover(flat_root)
    assert found.problems == []
    assert found.layout == "flat"
    keys = [tuple(s.key) for s in found.samples]
    assert keys == SMALL.keys()  # discover sorts numerically: (v, a, t)
    for s in found.samples:
        assert s.label == s.key.action - 1
        assert s.files["wifi"].name == f"{s.key.volunteer}_{s.key.action}_{s.key.trial}.npy"
        assert s.files == sample_paths(flat_root, SMALL, *s.key)
    assert not list(flat_root.rglob("*.tmp")) and not (flat_root / ".synth.pending.json").exists()


def test_flat_files_equal_generate_sample(flat_root, sample):
    """One sample regenerated alone equals the batch version, byte for byte."""
    for m, path in sample_paths(flat_root, SMALL, 1, 2, 1).items():
        on_disk = np.load(path)
        assert on_disk.dtype == sample[m].dtype
        assert on_disk.tobytes() == sample[m].tobytes(), m


def test_scenes_layout_reads_back(tmp_path):
    cfg = SynthConfig(volunteers=3, actions=1, trials=2, scenes=2, layout="scenes")
    synthesize(tmp_path, cfg)
    found = discover(tmp_path)
    assert found.problems == [] and found.layout == "scenes"
    assert len(found.samples) == cfg.n_samples
    for s in found.samples:
        k = cfg.scene_of(s.key.volunteer)
        assert s.scene == f"Scene{k}"
        assert s.files["mmwave"].parent == tmp_path / f"Scene{k}" / f"Scene{k}_part1" / "mmWave"
    assert {cfg.scene_of(v) for v in (1, 2, 3)} == {1, 2}


def test_synth_json_documents_everything(flat_root):
    meta = json.loads((flat_root / "synth.json").read_text())
    assert meta["generator_version"] == GENERATOR_VERSION
    assert meta["config"] == {
        "volunteers": 2,
        "actions": 3,
        "trials": 2,
        "scenes": 1,
        "seed": 0,
        "layout": "flat",
    }
    for m in MODALITIES:
        info = meta["modalities"][m]
        assert info["shape"] == list(SHAPES[m]) and info["dtype"] == np.dtype(DTYPES[m]).name
        assert len(info["axes"]) == len(SHAPES[m])
    assert "does not document" in meta["modalities"]["mmwave"]["axes_note"]
    assert "hold" in meta["modalities"]["rfid"]["missing_read"]
    assert "forward fill" in meta["modalities"]["wifi"]["dropped_packet"]
    scene = meta["scenes"]["Scene1"]
    assert len(scene["rfid_tags_m"]) == 23 and len(scene["wifi_rx_antennas_m"]) == 9
    assert set(meta["action_families"]) == {"1", "2", "3"}


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_bytes_and_workers_do_not_matter(flat_root, tmp_path):
    synthesize(tmp_path, SMALL, workers=2)
    a, b = _files(flat_root), _files(tmp_path)
    assert a.keys() == b.keys()
    for name in a:
        assert (flat_root / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_sample_depends_only_on_seed_scenes_and_key(sample):
    bigger = SynthConfig(volunteers=7, actions=55, trials=20, seed=0, layout="scenes")
    again = generate_sample(bigger, 1, 2, 1)
    assert all(np.array_equal(again[m], sample[m]) for m in MODALITIES)
    other_seed = generate_sample(SynthConfig(seed=1), 1, 2, 1)
    other_trial = generate_sample(SMALL, 1, 2, 2)
    for m in MODALITIES:
        assert not np.array_equal(other_seed[m], sample[m]), m
        assert not np.array_equal(other_trial[m], sample[m]), m


# ------------------------------------------------------------------------------------------ physics
def test_rfid_is_wrapped_phase_with_jumps_and_holds(sample):
    r = sample["rfid"]
    assert r.min() >= 0.0 and r.max() < 2 * np.pi
    step = np.angle(np.exp(1j * np.diff(r, axis=1)))  # wrapped step in (-pi, pi]
    assert (np.abs(np.abs(step) - np.pi) < 0.5).any(), "no pi jumps"
    assert (step == 0).any(), "no held (missing) reads"


def test_wifi_has_outliers_drops_and_motion(sample):
    w = sample["wifi"]
    assert w.min() >= 0
    med = np.median(w, axis=1, keepdims=True)
    assert (w > 2.5 * med).sum() >= 10, "no impulsive outliers"
    # a dropped packet repeats all 90 channels of its NIC
    repeats = [
        np.all(w[rx * 90 : (rx + 1) * 90, 1:] == w[rx * 90 : (rx + 1) * 90, :-1], axis=0).sum()
        for rx in range(3)
    ]
    assert min(repeats) >= 5, f"dropped packets per NIC {repeats}"
    # the body moves: amplitude fluctuates well beyond the quantisation step
    assert np.median(np.std(w, axis=1)) > 0.5


def test_mmwave_clutter_body_and_noise_floor(sample):
    x = sample["mmwave"][0]  # (17, 256, 128)
    assert x.min() > 0  # magnitude of signal + complex noise
    floor = np.median(x)
    assert 2 < floor < 8  # Rayleigh floor ~1.25 * sigma
    # static clutter sits at zero Doppler (bin 64)
    assert x[:, :, 64].mean() > 1.5 * x[:, :, 10].mean()
    # moving body parts: energy off zero Doppler, at the ranges where the volunteer stands (~2-3.5 m)
    moving = (x[:, :, list(range(40, 60)) + list(range(69, 89))] - floor).clip(0).sum(axis=(0, 2))
    peak_m = np.argmax(moving) * 0.065
    assert 1.8 < peak_m < 3.8, peak_m


# ------------------------------------------------------------------------------------------ idempotence
def test_rerun_is_a_no_op(flat_root):
    before = _files(flat_root)
    summary = synthesize(flat_root, SMALL, workers=2)
    assert summary["n_written"] == 0 and summary["n_skipped"] == SMALL.n_samples
    assert _files(flat_root) == before


def test_resume_writes_only_missing_samples(tmp_path):
    synthesize(tmp_path, SMALL)
    gone = sample_paths(tmp_path, SMALL, 2, 3, 1)["rfid"]
    gone.unlink()
    (gone.parent / "9_9_9.npy.tmp").write_bytes(b"partial")  # left by a killed run
    before = _files(tmp_path)
    summary = synthesize(tmp_path, SMALL)
    assert summary["n_written"] == 1
    after = _files(tmp_path)
    assert gone.exists() and not list(tmp_path.rglob("*.tmp"))
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed <= {
        str(p.relative_to(tmp_path)) for p in sample_paths(tmp_path, SMALL, 2, 3, 1).values()
    } | {"synth.json"}


def test_other_config_in_same_folder_is_an_error(flat_root):
    with pytest.raises(DataError, match=r"another config \(seed: 0 there, 5 asked\)"):
        synthesize(flat_root, SynthConfig(volunteers=2, actions=3, trials=2, seed=5))


def test_unfinished_run_with_other_config_is_an_error(tmp_path):
    (tmp_path / ".synth.pending.json").write_text(
        json.dumps({"generator_version": GENERATOR_VERSION, "config": {**SMALL.__dict__, "trials": 9}})
    )
    with pytest.raises(DataError, match="already holds synthetic data"):
        synthesize(tmp_path, SMALL)


# ------------------------------------------------------------------------------------------ difficulty
@pytest.mark.slow
def test_probe_ranks_modalities_like_xrf55(tmp_path):
    """mmWave > WiFi > RFID, all clearly above chance (0.1) and below perfect, fusion above all."""
    from rfsense.data.probe import probe_accuracy

    synthesize(tmp_path, SynthConfig(volunteers=3, actions=10, trials=20, seed=0), workers=2)
    acc = probe_accuracy(tmp_path)
    for m in ("mmwave", "wifi", "rfid"):
        assert 0.25 < acc[m] < 0.95, acc
    assert acc["mmwave"] > acc["wifi"] + 0.03 > acc["rfid"] + 0.06, acc
    assert acc["fusion"] > acc["mmwave"] + 0.02, acc


def test_probe_needs_both_splits(flat_root):
    from rfsense.data.probe import probe_accuracy

    with pytest.raises(DataError, match="trials 1-14"):
        probe_accuracy(flat_root)  # trials 1-2 only: no test split
