"""`rfsense infer MODEL CAPTURE` end to end on the vendored real capture of every WiFi format (toy ONNX model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rfsense.cli import main
from tests.conftest import RECORDINGS

CAPTURES = {
    "atheros": RECORDINGS / "atheros" / "ath_csi_1.dat",
    "nexmon": RECORDINGS / "nexmon" / "example.pcap",
    "esp32": RECORDINGS / "esp32" / "example_csi.csv",
    "picoscenes": RECORDINGS / "picoscenes" / "rx_by_qca9300.csi",
}
MAPPED = {
    "atheros": "rx1: atheros 20 MHz at 2437 MHz, 56 subcarriers -> 30 by frequency",
    "nexmon": "rx1: nexmon 80 MHz, 234 data subcarriers -> 30 by frequency; 20 MHz primary channel (sub-channel 3 of 4)",
    "esp32": "rx1: esp32 LLTF (centred order), 52 subcarriers -> 30 by frequency, 3 edge-held",
    "picoscenes": "rx1: picoscenes 20 MHz, 56 subcarriers -> 30 by frequency",
}


@pytest.mark.parametrize("fmt", sorted(CAPTURES))
def test_infer_each_real_capture(fmt: str, toy_model_unchecked) -> None:
    r = CliRunner().invoke(main, ["infer", str(toy_model_unchecked.path), str(CAPTURES[fmt]), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert len(rows) == 1  # each capture is < 5 s: one edge-held window
    row = rows[0]
    assert row["id"] == f"{CAPTURES[fmt].stem}@0.0-5.0s"
    assert MAPPED[fmt] in row["reason"] and "padded: only" in row["reason"] and "rx2 missing" in row["reason"]
    if fmt in ("atheros", "picoscenes"):  # 3 antennas of one receiver: 90 of 270 channels carry data
        assert row["status"] == "ok" and row["modalities_used"] == ["wifi"]
        assert np.isfinite([t["prob"] for t in row["top"]]).all()
    else:  # ESP32 (1 antenna) and the one-frame nexmon capture: mostly flat, the health check refuses to guess
        assert row["status"] == "no_prediction" and row["verdicts"]["wifi"]["status"] == "failed"


@pytest.mark.parametrize(("fmt", "forced", "says"), [
    ("atheros", "nexmon", "not a pcap file"),
    ("nexmon", "picoscenes", "PicoScenes"),
    ("picoscenes", "esp32", "no usable CSI_DATA line"),
    ("esp32", "atheros", "not an Atheros CSI Tool log"),
    ("intel5300", "atheros", "Atheros CSI Tool"),
])
def test_forcing_the_wrong_input_format_is_one_error_line(fmt: str, forced: str, says: str, toy_model_unchecked) -> None:
    path = CAPTURES.get(fmt, RECORDINGS / "intel5300" / "sample_0x1_ap.dat")
    r = CliRunner().invoke(main, ["infer", str(toy_model_unchecked.path), str(path), "--input-format", forced])
    assert r.exit_code == 1 and "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(path) in errors[0] and says in errors[0], r.output


def test_input_format_lists_the_wifi_formats() -> None:
    r = CliRunner().invoke(main, ["infer", "--help"])
    assert r.exit_code == 0
    for name in ("atheros", "esp32", "intel5300", "nexmon", "picoscenes"):
        assert name in r.output
