"""`rfsense infer` on raw RFID (Impinj CSV) and mmWave (DCA1000 .bin) captures, through click's CliRunner,
with the toy ONNX model (no training) and one sample written by `rfsense synth --raw`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rfsense.cli import main
from rfsense.data.synth.writer import raw_paths, tag_map_path
from tests.deploy.conftest import UNCHECKED, write_toy_model


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("raw")
    r = CliRunner().invoke(main, ["synth", str(root), "--volunteers", "1", "--actions", "1", "--trials", "1", "--raw"])
    assert r.exit_code == 0, r.output
    model = write_toy_model(tmp_path_factory.mktemp("export"), plausibility=UNCHECKED)
    return {**raw_paths(root, 1, 1, 1), "tag_map": tag_map_path(root, 1), "model": model.path}


def _rows(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_infer_reads_an_impinj_log_and_a_dca1000_capture(raw):
    r = CliRunner().invoke(main, ["infer", str(raw["model"]), str(raw["rfid_csv"]), str(raw["mmwave_bin"]),
                                  "--tag-map", str(raw["tag_map"]), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    rows = {row["id"]: row for row in _rows(r)}
    assert set(rows) == {"1_1_1@0.0-5.0s", "1_1_1_Raw_0@0.0-5.0s"}
    rfid, radar = rows["1_1_1@0.0-5.0s"], rows["1_1_1_Raw_0@0.0-5.0s"]
    assert rfid["status"] == "ok" and rfid["modalities_used"] == ["rfid"]
    assert radar["status"] == "ok" and radar["modalities_used"] == ["mmwave"]
    assert "hopping over 16 channels" in rfid["reason"] and "no tag map" not in rfid["reason"]
    assert "columns epc='EPC'" in r.stderr  # the reader says which columns it found


def test_infer_without_tag_map_or_radar_config_flags_the_guess(raw, tmp_path):
    lone = tmp_path / "cap_Raw_0.bin"
    lone.symlink_to(raw["mmwave_bin"])  # no cap.mmwave.json beside it
    r = CliRunner().invoke(main, ["infer", str(raw["model"]), str(raw["rfid_csv"]), str(lone), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    reasons = " ".join(row["reason"] for row in _rows(r))
    assert "no tag map" in reasons and "XRF55's IWR6843 profile assumed" in reasons
    r = CliRunner().invoke(main, ["infer", str(raw["model"]), str(lone), "--radar-config",
                                  str(raw["mmwave_config"]), "--format", "jsonl"])
    assert r.exit_code == 0 and "profile assumed" not in r.stdout


def test_input_format_lists_the_raw_formats():
    r = CliRunner().invoke(main, ["infer", "--help"])
    assert "dca1000" in r.output and "impinj" in r.output and "--tag-map" in r.output and "--radar-config" in r.output


@pytest.mark.parametrize("case, message", [
    ("missing_tag_map", "tag map {tmp}/nope.txt: cannot read"),
    ("wrong_radar_config", "{bin}: 78643200 bytes is not a whole number of frames"),
    ("bad_radar_config", "radar config {tmp}/r.yaml: unknown key 'chirps'"),
    ("wrong_columns", "not a capture format rfsense reads"),
])
def test_broken_raw_input_is_one_error_line(raw, tmp_path, case, message):
    args = ["infer", str(raw["model"])]
    if case == "missing_tag_map":
        args += [str(raw["rfid_csv"]), "--tag-map", str(tmp_path / "nope.txt")]
    elif case in ("wrong_radar_config", "bad_radar_config"):
        (tmp_path / "r.yaml").write_text("loops: 127\n" if case == "wrong_radar_config" else "chirps: 100\n")
        args += [str(raw["mmwave_bin"]), "--radar-config", str(tmp_path / "r.yaml")]
    else:
        (tmp_path / "log.csv").write_text("tag,time,rssi\nE1,1,2\n")
        args += [str(tmp_path / "log.csv")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    error_lines = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "Traceback" not in r.output
    assert message.format(tmp=tmp_path, bin=raw["mmwave_bin"]) in error_lines[0]
