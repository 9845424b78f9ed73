from __future__ import annotations

import numpy as np
import pytest

from rfsense.data.layout import SplitSpec, discover, parse_key, split_samples
from rfsense.errors import DataError
from tests.data.helpers import flat_tree, write_sample


def test_parse_key_padded_and_plain():
    assert parse_key("03_25_15.npy") == (3, 25, 15)
    assert parse_key("15_4_3.npy") == (15, 4, 3)
    assert parse_key("15_4_3.npz") is None
    assert parse_key("15_4.npy") is None
    assert parse_key("a_4_3.npy") is None


def test_flat_layout(tmp_path):
    flat_tree(tmp_path)
    found = discover(tmp_path)
    assert found.layout == "flat"
    assert len(found.samples) == 8 and not found.problems
    assert all(len(s.files) == 3 for s in found.samples)
    s = found.samples[0]
    assert s.files["wifi"].parent.name == "WiFi" and s.files["wifi"].name == s.files["rfid"].name


def test_numeric_not_string_order(tmp_path):
    rng = np.random.default_rng(0)
    for key in ("10_1_1", "9_1_1", "2_1_1"):
        write_sample(tmp_path, key, rng, mods=("rfid",))
    vols = [s.key.volunteer for s in discover(tmp_path).samples]
    assert vols == [2, 9, 10]


def test_padding_mismatch_matched_by_key(tmp_path):
    """WiFi zero-padded, RFID not: the same sample by key, never by string."""
    rng = np.random.default_rng(0)
    write_sample(tmp_path, "03_25_15", rng, mods=("wifi", "mmwave"))
    write_sample(tmp_path, "3_25_15", rng, mods=("rfid",))
    found = discover(tmp_path)
    assert len(found.samples) == 1 and set(found.samples[0].files) == {"mmwave", "wifi", "rfid"}
    assert found.samples[0].label == 24


def test_split_layout(tmp_path):
    flat_tree(tmp_path / "train_data", trials=(1, 2))
    flat_tree(tmp_path / "test_data", trials=(16,))
    found = discover(tmp_path)
    assert found.layout == "split"
    by = split_samples(found.samples, SplitSpec(protocol="folders"))
    assert len(by["train"]) == 8 and len(by["test"]) == 4
    assert split_samples(found.samples)["test"] == by["test"]  # official trials rule agrees


def test_scene_layout(tmp_path):
    """The download's Scene1/Scene1_part2/WiFi/25_24_14.npy form; a path containing 'RFID' elsewhere is harmless."""
    rng = np.random.default_rng(0)
    write_sample(tmp_path / "RFID_project" / "Scene1" / "Scene1_part2", "25_24_14", rng)
    write_sample(tmp_path / "RFID_project" / "Scene2" / "Scene2_part1", "30_1_16", rng)
    found = discover(tmp_path)
    assert found.layout == "scenes" and not found.problems
    assert [s.scene for s in found.samples] == ["Scene1", "Scene2"]
    assert found.samples[0].key == (25, 24, 14)


def test_mismatched_keys_reported(tmp_path):
    rng = np.random.default_rng(0)
    write_sample(tmp_path, "1_1_1", rng)
    write_sample(tmp_path, "1_1_2", rng, mods=("wifi",))
    found = discover(tmp_path)
    kinds = [p.kind for p in found.problems]
    assert kinds == ["missing_partner"]
    assert "1_1_2" in found.problems[0].path and "mmWave" in found.problems[0].message


def test_bad_names_and_duplicates(tmp_path):
    rng = np.random.default_rng(0)
    write_sample(tmp_path, "1_1_1", rng)
    write_sample(tmp_path, "01_01_01", rng, mods=("wifi",))  # same key as 1_1_1
    (tmp_path / "WiFi" / "notes.npy").write_bytes(b"x")
    (tmp_path / "WiFi" / "1_99_1.npy").write_bytes(b"x")
    kinds = sorted(p.kind for p in discover(tmp_path).problems)
    assert kinds == ["bad_name", "bad_name", "duplicate_key"]


def test_splits_count_right(tmp_path):
    flat_tree(tmp_path, volunteers=(1, 2, 3), actions=(1,), trials=(1, 14, 15, 20))
    samples = discover(tmp_path).samples
    by = split_samples(samples)
    assert (len(by["train"]), len(by["test"])) == (6, 6)
    by = split_samples(samples, SplitSpec(train_trials=(1,)))
    assert (len(by["train"]), len(by["test"])) == (3, 9)
    by = split_samples(samples, SplitSpec(protocol="volunteers", test_volunteers=(2,)))
    assert (len(by["train"]), len(by["test"])) == (8, 4)
    assert {s.key.volunteer for s in by["test"]} == {2}


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nope")
    with pytest.raises(DataError, match="no mmWave/WiFi/RFID folders"):
        discover(tmp_path)


def test_bad_protocol():
    with pytest.raises(ValueError, match="protocol"):
        SplitSpec(protocol="random")
