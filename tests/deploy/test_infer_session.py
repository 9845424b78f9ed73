"""`rfsense infer MODEL.onnx SESSION.yaml`: windows of every sensor at the same times, through click's
CliRunner with the toy ONNX model (no training): all three sensors, one missing, one partly covering."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rfsense.cli import main
from rfsense.data.recordings.formats import CaptureOptions
from rfsense.data.recordings.session import grid_starts, open_session, session_windows
from rfsense.deploy.inputs import iter_inputs
from tests.deploy.conftest import UNCHECKED, write_toy_model
from tests.session_captures import all_sensors, session_captures, write_session


@pytest.fixture(scope="module")
def caps(tmp_path_factory):
    return session_captures(tmp_path_factory)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    # Session wiring is under test, not plausibility: the toy's statistics are not these captures'.
    return write_toy_model(tmp_path_factory.mktemp("export"), plausibility=UNCHECKED).path


def _infer(model, *args) -> dict[str, dict]:
    r = CliRunner().invoke(main, ["infer", str(model), *map(str, args), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    return {row["id"]: row for row in map(json.loads, (x for x in r.stdout.splitlines() if x.startswith("{")))}


def test_all_three_sensors(caps, model, tmp_path):
    rows = _infer(model, write_session(tmp_path / "lab.yaml", all_sensors(caps)))
    for window in ("lab@0.0-5.0s", "lab@5.0-10.0s"):
        assert rows[window]["status"] == "ok" and rows[window]["modalities_used"] == ["mmwave", "wifi", "rfid"]
        assert "absent" not in rows[window]["reason"]
    # after 10 s only the WiFi receiver records: the others are absent with the reason, every 5 s to 55 s
    late = rows["lab@10.0-15.0s"]
    assert late["modalities_used"] == ["wifi"]
    assert "mmwave absent: no records in this window (its records: 0.00 .. 10.00 s)" in late["reason"]
    assert "rfid absent: covers 1 % of the window < 80 % (min_coverage)" in late["reason"]
    # 30-35 s and 35-40 s hold 79 % and 61 % of the WiFi records (its 0.6 s gap at 33.9 s): no window
    assert len(rows) == 10 and "lab@30.0-35.0s" not in rows and "lab@55.0-60.0s" in rows


def test_one_sensor_missing(caps, model, tmp_path):
    rows = _infer(model, write_session(tmp_path / "norfid.yaml", all_sensors(caps, rfid=None)))
    first = rows["norfid@0.0-5.0s"]
    assert first["modalities_used"] == ["mmwave", "wifi"] and first["verdicts"]["rfid"]["status"] == "absent"
    rows = _infer(model, write_session(tmp_path / "nowifi.yaml", all_sensors(caps, wifi=None)))
    assert set(rows) == {"nowifi@0.0-5.0s", "nowifi@5.0-10.0s"}  # nothing records after 10 s
    assert all(r["modalities_used"] == ["mmwave", "rfid"] for r in rows.values())


def test_one_sensor_partly_covering_a_window(caps, model, tmp_path):
    """With --hop 2.5 the window 7.5-12.5 s holds 50 % of the radar and reader records: absent at the default
    min_coverage 0.8, passed on and flagged at 0.4, where the runtime's health check then still refuses the
    half-held RFID window (repeated reads) and says so."""
    rows = _infer(model, write_session(tmp_path / "lab.yaml", all_sensors(caps)), "--hop", "2.5")
    w = rows["lab@7.5-12.5s"]
    assert w["modalities_used"] == ["wifi"]
    assert "mmwave absent: covers 50 % of the window < 80 % (min_coverage)" in w["reason"]
    loose = write_session(tmp_path / "loose.yaml", all_sensors(caps), windows={"min_coverage": 0.4, "hop_s": 2.5})
    w = _infer(model, loose)["loose@7.5-12.5s"]
    assert w["modalities_used"] == ["mmwave", "wifi"] and w["verdicts"]["rfid"]["status"] == "failed"
    assert "mmwave covers 50 % of the window (2.50 s after they end, edge-held)" in w["reason"]
    assert "rfid covers 51 % of the window (2.47 s after they end, edge-held)" in w["reason"]
    assert "rfid: only 33% of reads are valid" in w["reason"]


def test_infer_inputs_match_the_session_windows(caps, tmp_path):
    """The runtime gets exactly the session's arrays (None for an absent modality) and its notes."""
    path = write_session(tmp_path / "lab.yaml", all_sensors(caps), windows={"hop_s": 5.0})
    samples = list(iter_inputs([path], options=CaptureOptions()))
    session = open_session(path)
    windows = list(session_windows(session, grid_starts(session)))
    assert len(windows) == 10  # 30-35 s and 35-40 s: the WiFi gap leaves 79 % and 61 %, and nothing else records
    for s, w in zip(samples, windows, strict=True):
        for m, arr in w.arrays.items():
            assert (s.arrays[m] is None) == (arr is None)
            if arr is not None:
                np.testing.assert_array_equal(s.arrays[m], arr)
        assert s.notes == w.notes


def test_infer_reads_the_mapping_of_a_conversion(caps, model, tmp_path):
    session = write_session(tmp_path / "lab.yaml", all_sensors(caps), volunteer=1, trials=[{"action": 1, "start": 0}])
    r = CliRunner().invoke(main, ["convert", str(session), str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    bare = all_sensors(caps, rfid={"tag_map": None, "offset_s": None})
    bare["rfid"] = {k: v for k, v in bare["rfid"].items() if v is not None}
    new = write_session(tmp_path / "new.yaml", bare)
    rows = _infer(model, new, "--mapping", tmp_path / "out" / "convert.json")
    assert rows["new@0.0-5.0s"]["modalities_used"] == ["mmwave", "wifi", "rfid"]
    assert "no tag map" not in rows["new@0.0-5.0s"]["reason"]
    r = CliRunner().invoke(main, ["infer", str(model), str(new)])  # no mapping: the reader's epoch clock
    assert r.exit_code == 1 and "overlaps no other sensor in time" in r.output and "Traceback" not in r.output
