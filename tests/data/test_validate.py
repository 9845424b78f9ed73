from __future__ import annotations

import json

import numpy as np
import pytest

from rfsense.data.validate import check_modality, check_tree, load_modality, read_npy_header
from rfsense.errors import DataError
from tests.data.helpers import flat_tree


def test_clean_tree(tmp_path):
    flat_tree(tmp_path)
    report = check_tree(tmp_path)
    assert report.ok, report.format()
    assert report.splits == {"train": 4, "test": 4}
    assert report.coverage["train"] == {"mmwave": 4, "wifi": 4, "rfid": 4}
    assert "no problems found" in report.format()
    json.dumps(report.to_dict())


@pytest.fixture
def broken(tmp_path):
    flat_tree(tmp_path, volunteers=(1,), actions=(1, 2, 3, 4, 5, 6), trials=(1,))
    wifi = tmp_path / "WiFi"
    (wifi / "1_1_1.npy").write_bytes(b"")  # zero-byte
    data = (wifi / "1_2_1.npy").read_bytes()
    (wifi / "1_2_1.npy").write_bytes(data[: len(data) // 2])  # truncated
    np.save(wifi / "1_3_1.npy", np.zeros((270, 999)))  # wrong shape
    np.save(wifi / "1_4_1.npy", np.array([["a"] * 1000] * 270))  # non-numeric
    bad = np.zeros((270, 1000))
    bad[0, :5] = np.nan
    bad[1, 0] = np.inf
    np.save(wifi / "1_5_1.npy", bad)
    (tmp_path / "RFID" / "1_6_1.npy").unlink()  # missing partner
    (wifi / "garbage.npy").write_bytes(b"not numpy at all")
    return tmp_path


def test_every_problem_reported_with_path(broken):
    report = check_tree(broken)
    assert not report.ok
    by_kind = {p.kind: p for p in report.problems}
    assert set(by_kind) == {"zero_byte", "truncated", "bad_shape", "bad_dtype", "nonfinite", "unusable",
                            "missing_partner", "bad_name"}
    # the quality rule packing and the runtime apply: this WiFi file is zeros once its NaN are repaired
    assert by_kind["unusable"].path.endswith("WiFi/1_5_1.npy") and "all values are zero" in by_kind["unusable"].message
    assert report.status_counts["wifi"] == {"ok": 1, "degraded": 0, "repaired": 0, "implausible": 0, "failed": 1}
    assert report.status_counts["rfid"]["ok"] == 5
    assert by_kind["zero_byte"].path.endswith("WiFi/1_1_1.npy")
    assert by_kind["truncated"].path.endswith("WiFi/1_2_1.npy")
    assert "(270, 999)" in by_kind["bad_shape"].message and "(270, 1000)" in by_kind["bad_shape"].message
    assert "<U1" in by_kind["bad_dtype"].message
    assert by_kind["nonfinite"].message.startswith("6 of 270000")
    assert "RFID" in by_kind["missing_partner"].message
    text = report.format()
    assert "WiFi/1_5_1.npy" in text
    d = report.to_dict()
    assert d["ok"] is False and d["problem_counts"]["nonfinite"] == 1


def test_quick_mode_skips_value_scan(broken):
    kinds = {p.kind for p in check_tree(broken, scan_values=False).problems}
    assert "nonfinite" not in kinds and "unusable" not in kinds and "truncated" in kinds


def test_header_only_does_not_load(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((17, 256, 128), dtype=np.float16))
    h = read_npy_header(path)
    assert h.shape == (17, 256, 128) and h.dtype == np.float16


def test_mmwave_shapes_and_dtypes(tmp_path):
    for shape in ((1, 17, 256, 128), (17, 256, 128)):
        for dtype in (np.float16, np.float32, np.float64):
            arr = check_modality(np.zeros(shape, dtype=dtype), "mmwave", "m.npy")
            assert arr.shape == (17, 256, 128)
    with pytest.raises(DataError, match=r"mmwave array in m.npy has dtype int64; expected a real float"):
        check_modality(np.zeros((17, 256, 128), dtype=np.int64), "mmwave", "m.npy")
    with pytest.raises(DataError, match=r"complex"):
        check_modality(np.zeros((17, 256, 128), dtype=np.complex64), "mmwave", "m.npy")
    with pytest.raises(DataError, match=r"shape \(2, 17, 256, 128\); expected \(17, 256, 128\) or \(1, 17, 256, 128\)"):
        check_modality(np.zeros((2, 17, 256, 128)), "mmwave", "m.npy")
    np.save(tmp_path / "w.npy", np.zeros((270, 999)))
    with pytest.raises(DataError, match=r"wifi array in .*w.npy has shape \(270, 999\); expected \(270, 1000\) = 3 rx"):
        load_modality(tmp_path / "w.npy", "wifi")
