from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rfsense.data.layout import discover, split_samples
from rfsense.data.normstats import NormAccumulator
from rfsense.data.pack import open_pack, pack
from rfsense.data.preprocess import PreprocessConfig, preprocess
from rfsense.data.validate import load_modality
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES
from tests.conftest import TINY_SPLIT


def test_pack_round_trip_equals_preprocess_on_the_fly(synth_root, synth_pack):
    samples = split_samples(discover(synth_root).samples, TINY_SPLIT)
    assert synth_pack.meta["splits"] == {"train": 32, "test": 16}
    for name in ("train", "test"):
        split = synth_pack.split(name)
        assert [tuple(k) for k in split.keys] == [tuple(s.key) for s in samples[name]]
        assert (split.labels == [s.label for s in samples[name]]).all()
        assert split.usable.all() and split.available.all()
        for i in (0, len(split) - 1):
            for m in MODALITIES:
                raw = load_modality(samples[name][i].files[m], m)[None]
                want = preprocess(m, raw, PreprocessConfig())
                got = np.asarray(split.arrays[m][i], dtype=np.float32)
                np.testing.assert_allclose(got, want[0].astype(np.float16).astype(np.float32), rtol=0, atol=0)


def test_stats_fitted_on_train_only(synth_pack):
    train = synth_pack.split("train")
    acc = NormAccumulator()
    for j, m in enumerate(MODALITIES):
        acc.update(m, np.asarray(train.arrays[m], dtype=np.float64), train.usable[:, j])
    want = acc.result()
    for m in MODALITIES:
        np.testing.assert_allclose(synth_pack.stats.mean[m], want.mean[m], rtol=1e-6)
        np.testing.assert_allclose(synth_pack.stats.std[m], want.std[m], rtol=1e-6)


def test_rerun_is_noop_and_other_settings_refused(synth_root, synth_pack):
    before = os.stat(synth_pack.path / "train" / "wifi.npy").st_mtime_ns
    again = pack(synth_root, synth_pack.path, spec=TINY_SPLIT)
    assert os.stat(again.path / "train" / "wifi.npy").st_mtime_ns == before
    with pytest.raises(DataError, match="holds a pack of other data or settings; pass --overwrite"):
        pack(synth_root, synth_pack.path, spec=TINY_SPLIT, dtype="float32")


def test_resume_after_interruption(synth_root, tmp_path, monkeypatch):
    """Kill the packer mid-way (an error on the 2nd chunk of test); re-running finishes and matches a clean pack."""
    import rfsense.data.pack as pk

    real = pk.preprocess
    calls = {"n": 0}

    def flaky(m, x, cfg):
        calls["n"] += 1
        if calls["n"] == 16:  # train: 4 chunks x 3 modalities; test: 2nd chunk starts at call 16
            raise KeyboardInterrupt
        return real(m, x, cfg)

    monkeypatch.setattr(pk, "preprocess", flaky)
    with pytest.raises(KeyboardInterrupt):
        pack(synth_root, tmp_path / "p", spec=TINY_SPLIT, chunk=8)
    assert not (tmp_path / "p").exists() and (tmp_path / "p.partial").is_dir()
    assert json.loads((tmp_path / "p.partial" / "test" / "progress.json").read_text())["done"] == 8
    monkeypatch.setattr(pk, "preprocess", real)
    resumed = pack(synth_root, tmp_path / "p", spec=TINY_SPLIT, chunk=8)
    clean = pack(synth_root, tmp_path / "q", spec=TINY_SPLIT, chunk=8)
    assert not (tmp_path / "p.partial").exists()
    for name in ("train", "test"):
        for m in MODALITIES:
            np.testing.assert_array_equal(resumed.split(name).arrays[m], clean.split(name).arrays[m])


def test_bad_file_named_or_skipped(synth_root, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    bad = root / "WiFi" / "1_2_3.npy"
    bad.write_bytes(b"")
    with pytest.raises(DataError, match=r"1_2_3.npy: zero-byte file .*rfsense data check"):
        pack(root, tmp_path / "p", spec=TINY_SPLIT)
    assert not (tmp_path / "p").exists()
    p = pack(root, tmp_path / "p2", spec=TINY_SPLIT, skip_bad=True)
    train = p.split("train")
    row = [tuple(k) for k in train.keys].index((1, 2, 3))
    assert train.usable[row].tolist() == [True, False, True]
    assert not np.asarray(train.arrays["wifi"][row]).any()


def test_pack_records_quality_counts_and_raw_scales(synth_root, synth_pack):
    meta = synth_pack.meta
    assert meta["status_counts"]["train"]["wifi"]["ok"] + meta["status_counts"]["train"]["wifi"]["degraded"] == 32
    train = synth_pack.split("train")
    samples = split_samples(discover(synth_root).samples, TINY_SPLIT)["train"]
    for m in MODALITIES:  # s(m): the std of every raw value of the usable training samples
        raw = np.stack([load_modality(s.files[m], m) for s in samples]).astype(np.float64)
        assert synth_pack.raw_std[m] == pytest.approx(raw.std(), rel=1e-9)
    assert train.usable.all()


def test_samples_the_runtime_would_refuse_are_not_trained_on(synth_root, tmp_path):
    """One bad-data policy: a flat-lined WiFi file is finite and well-shaped, but fails the quality rule; a file of
    negative amplitudes is implausible (check 0) and refused the same way."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    np.save(root / "WiFi" / "1_2_3.npy", np.full((270, 1000), 12.0))
    np.save(root / "WiFi" / "1_3_3.npy", -np.load(root / "WiFi" / "1_3_3.npy"))
    p = pack(root, tmp_path / "p", spec=TINY_SPLIT)
    train = p.split("train")
    keys = [tuple(k) for k in train.keys]
    assert train.usable[keys.index((1, 2, 3))].tolist() == [True, False, True]
    assert train.usable[keys.index((1, 3, 3))].tolist() == [True, False, True]
    assert p.meta["status_counts"]["train"]["wifi"]["failed"] == 1
    assert p.meta["status_counts"]["train"]["wifi"]["implausible"] == 1


def test_two_packers_of_one_folder_do_not_collide(synth_root, tmp_path):
    import subprocess
    import sys

    code = (f"from rfsense.data.pack import pack; from tests.conftest import TINY_SPLIT; "
            f"print(pack({str(synth_root)!r}, {str(tmp_path / 'p')!r}, spec=TINY_SPLIT).meta['fingerprint'])")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    assert outs[0][0] == outs[1][0] and (tmp_path / "p" / "pack.json").is_file()
    assert not (tmp_path / "p.partial").exists()


def test_open_pack_errors(tmp_path):
    with pytest.raises(DataError, match="not a finished rfsense pack"):
        open_pack(tmp_path)
