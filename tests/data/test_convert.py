"""`rfsense convert SESSION.yaml OUT`: labelled trials -> an XRF55 tree that `data check` accepts and `train`
trains on, with convert.json holding every mapping; the mapping read back for new captures of the set-up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rfsense.cli import main
from rfsense.data.recordings.convert import convert_session
from rfsense.data.recordings.impinj import load_tag_map
from rfsense.data.recordings.session import open_session, session_windows
from rfsense.errors import ConfigError, DataError
from tests.session_captures import RFID_T0, all_sensors, session_captures, write_session

# Trial 1 of action 1 at 0 s and of action 2 at 5 s (what the captures hold); a second window of action 1 at
# 0.25 s so that trial 2 exists for a test split; action 2 at 7.5 s runs past the radar and the reader.
TRIALS = [{"action": 1, "start": 0.0}, {"action": 2, "start": 5.0}, {"action": 1, "start": 0.25},
          {"action": 2, "start": 7.5}]


@pytest.fixture(scope="module")
def caps(tmp_path_factory):
    return session_captures(tmp_path_factory)


@pytest.fixture(scope="module")
def converted(caps, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("convert")
    session = write_session(folder / "lab.yaml", all_sensors(caps), volunteer=1, trials=TRIALS)
    r = CliRunner().invoke(main, ["convert", str(session), str(folder / "out")])
    assert r.exit_code == 0, r.output
    assert "wrote 3 samples" in r.stdout and "1 trials skipped" in r.stdout
    assert "skipped 1_2_2 at 7.50 s: mmwave absent: covers 50 % of the window < 80 %" in r.stdout
    return folder / "out"


def test_convert_writes_the_xrf55_layout_and_every_mapping(converted, caps):
    names = {p.name for p in (converted / "WiFi").iterdir()}
    assert names == {"1_1_1.npy", "1_2_1.npy", "1_1_2.npy"}
    for folder, shape, dtype in (("mmWave", (1, 17, 256, 128), np.float32), ("WiFi", (270, 1000), np.float64),
                                 ("RFID", (23, 148), np.float64)):
        arr = np.load(converted / folder / "1_2_1.npy", allow_pickle=False)
        assert arr.shape == shape and arr.dtype == dtype, folder
    meta = json.loads((converted / "convert.json").read_text())
    assert meta["format"] == "rfsense-convert/1"
    sensors = meta["sensors"]
    assert set(sensors) == {"mmwave", "wifi.rx1", "rfid"}
    assert sensors["rfid"]["tag_map"] == load_tag_map(caps.folder / "tags.txt")
    assert sensors["rfid"]["clock"] == {"offset_s": -RFID_T0} and sensors["rfid"]["offset_s"] == -RFID_T0
    assert sensors["rfid"]["antenna"] == 1 and sensors["rfid"]["columns"]["phase_rad"] == "PhaseAngle(Radian)"
    assert sensors["mmwave"]["radar_config"]["loops"] == 192 and sensors["mmwave"]["clutter_removal"] is False
    assert sensors["mmwave"]["radar_config_source"].endswith("radar.mmwave.json")
    assert sensors["wifi.rx1"]["format"] == "intel5300" and sensors["wifi.rx1"]["clock"] == {"start": 0.0}
    assert sensors["wifi.rx1"]["offset_s"] == pytest.approx(-961.579729)
    assert "rx*90 + antenna*30 + subcarrier" in meta["layout"]["wifi"]
    samples = {s["name"]: s for s in meta["samples"]}
    assert samples["1_1_2"]["start_s"] == 0.25 and samples["1_1_1"]["coverage"]["mmwave"] == 1.0
    assert "rx2 missing: no receiver in the session" in samples["1_1_1"]["flags"]
    assert [s["name"] for s in meta["skipped"]] == ["1_2_2"]


def test_converted_tree_passes_data_check_and_trains_one_epoch(converted, tmp_path):
    r = CliRunner().invoke(main, ["data", "check", str(converted), "--train-trials", "1"])
    assert r.exit_code == 0, r.output
    assert "no problems found" in r.output and "3 samples" in r.output
    tiny = ["--set", f"data.root={converted}", "--set", f"out_dir={tmp_path / 'runs'}", "--set", "name=lab",
            "--set", "data.split.train_trials=[1]", "--set", "train.epochs=1", "--set", "train.batch_size=2",
            "--set", "train.val_fraction=0", "--set", "model.d=16", "--set", "model.heads=2",
            "--set", "model.n_tokens=2", "--set", "model.depth=1", "--set", "model.mmwave_widths=[8]",
            "--set", "model.wifi_widths=[8]", "--set", "model.rfid_widths=[8]"]
    r = CliRunner().invoke(main, ["train", "configs/quickstart.yaml", *tiny])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "runs" / "lab" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and np.isfinite(rows[0]["loss"]), rows


def test_mapping_makes_new_captures_read_the_same_way(converted, caps, tmp_path):
    """A new session that names only the captures, with convert.json: same tag map and clocks, so the same
    windows; without it the reader guesses the tag rows (flagged) and the reader's clock stays as it is."""
    bare = {"mmwave": {"path": str(caps.folder / "radar_Raw_0.bin")},
            "wifi": {"rx1": {"path": str(caps.folder / "rx1.dat")}},
            "rfid": {"path": str(caps.folder / "reads.csv")}}
    path = write_session(tmp_path / "new.yaml", bare)
    mapped = open_session(path, converted / "convert.json")
    assert mapped.track("rfid").offset_s == -RFID_T0 and mapped.track("wifi.rx1").clock == {"start": 0.0}
    assert mapped.track("rfid").mapping["tag_map_source"].startswith(str(converted / "convert.json"))
    original = open_session(write_session(tmp_path / "orig.yaml", all_sensors(caps)))
    for a, b in zip(session_windows(mapped, [0.0, 5.0]), session_windows(original, [0.0, 5.0]), strict=True):
        for m in ("mmwave", "wifi", "rfid"):
            np.testing.assert_array_equal(a.arrays[m], b.arrays[m])
        assert not any("no tag map" in f for f in a.flags)
    with pytest.raises(DataError, match="overlaps no other sensor in time"):  # no mapping: epoch clock vs 0-based
        open_session(path)


def test_another_subcarrier_mapping_than_the_conversions_is_flagged(converted, caps, tmp_path):
    meta = json.loads((converted / "convert.json").read_text())
    assert meta["sensors"]["wifi.rx1"]["subcarriers"] == []  # the 5300's own 30 groups: nothing mapped
    meta["sensors"]["wifi.rx1"]["subcarriers"] = ["atheros 40 MHz at 5180 MHz, 114 subcarriers -> 30 by frequency"]
    (tmp_path / "c.json").write_text(json.dumps(meta))
    session = open_session(write_session(tmp_path / "s.yaml", all_sensors(caps)), tmp_path / "c.json")
    (w,) = session_windows(session, [0.0])
    assert any(f.startswith("rx1: subcarrier mapping differs from the conversion's (native 5300 grid here, atheros "
                            "40 MHz") for f in w.flags), w.flags


def test_mapping_conflicts_are_one_config_error(converted, caps, tmp_path):
    epcs = load_tag_map(caps.folder / "tags.txt")
    (tmp_path / "other.txt").write_text("\n".join(reversed(epcs)) + "\n")
    path = write_session(tmp_path / "s.yaml", all_sensors(caps, rfid={"tag_map": str(tmp_path / "other.txt")}))
    with pytest.raises(ConfigError, match=r"sensors.rfid.tag_map: .*other.txt lists other EPCs or another order than"):
        open_session(path, converted / "convert.json")
    (tmp_path / "radar.yaml").write_text("loops: 96\nframe_period_ms: 25\n")
    path = write_session(tmp_path / "s.yaml", all_sensors(caps, mmwave={"radar_config": str(tmp_path / "radar.yaml")}))
    with pytest.raises(ConfigError, match=r"sensors.mmwave.radar_config: .*differs from .* in loops, frame_period_ms"):
        open_session(path, converted / "convert.json")
    path = write_session(tmp_path / "s.yaml", all_sensors(caps, wifi={"rx1": {"path": str(caps.folder / "rx1.dat"),
                                                                              "format": "atheros"}}))
    with pytest.raises(ConfigError, match=r"sensors.wifi.rx1.format: 'atheros' here, 'intel5300' in"):
        open_session(path, converted / "convert.json")
    (tmp_path / "bad.json").write_text('{"format": "something"}')
    with pytest.raises(DataError, match=r"format 'something'; expected 'rfsense-convert/1'"):
        open_session(write_session(tmp_path / "s.yaml", all_sensors(caps)), tmp_path / "bad.json")
    meta = json.loads((converted / "convert.json").read_text())
    for key, field, value, message in (("rfid", "tag_map", ["E1", "E2"], "sensors.rfid.tag_map must list the 23"),
                                       ("rfid", "clock", {"start": "soon"}, "sensors.rfid.clock must be {}"),
                                       ("mmwave", "clutter_removal", "yes", "sensors.mmwave.clutter_removal must be true")):
        broken = json.loads(json.dumps(meta))
        broken["sensors"][key][field] = value
        (tmp_path / "broken.json").write_text(json.dumps(broken))
        with pytest.raises(DataError, match=rf"mapping {tmp_path}/broken.json: {message}"):
            open_session(write_session(tmp_path / "s.yaml", all_sensors(caps)), tmp_path / "broken.json")


def test_convert_refuses_what_it_cannot_write_in_one_line(converted, caps, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["convert", "--help"])
    assert r.exit_code == 0 and "--mapping" in r.output and "convert SESSION.yaml OUT" in runner.invoke(main, ["-h"]).output
    session = write_session(tmp_path / "s.yaml", all_sensors(caps), volunteer=1, trials=TRIALS[:1])
    r = runner.invoke(main, ["convert", str(session), str(converted)])
    assert r.exit_code == 1 and "holds an earlier conversion" in r.output and "--overwrite" in r.output
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "thesis.tex").write_text("mine")
    r = runner.invoke(main, ["convert", str(session), str(tmp_path / "thesis"), "--overwrite"])
    assert r.exit_code == 1 and "refusing to write into it or delete it" in r.output
    assert (tmp_path / "thesis" / "thesis.tex").read_text() == "mine"
    no_volunteer = write_session(tmp_path / "v.yaml", all_sensors(caps), trials=TRIALS[:1])
    r = runner.invoke(main, ["convert", str(no_volunteer), str(tmp_path / "o")])
    assert r.exit_code == 1 and "trials.0.volunteer: no volunteer for this trial" in r.output
    outside = write_session(tmp_path / "x.yaml", all_sensors(caps), volunteer=1, trials=[{"action": 3, "start": 40}])
    r = runner.invoke(main, ["convert", str(outside), str(tmp_path / "o")])
    assert r.exit_code == 1 and "none of the 1 trials is covered by every sensor" in r.output
    for result in (r,):
        assert "Traceback" not in result.output and len([x for x in result.output.splitlines() if "Error:" in x]) == 1
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))  # nothing half-written left


def test_overwrite_replaces_an_earlier_conversion(caps, tmp_path):
    session = write_session(tmp_path / "s.yaml", all_sensors(caps), volunteer=2, trials=TRIALS[:1])
    convert_session(session, tmp_path / "out")
    session = write_session(tmp_path / "s.yaml", all_sensors(caps), volunteer=3, trials=TRIALS[:2])
    meta = convert_session(session, tmp_path / "out", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out" / "RFID").iterdir()) == ["3_1_1.npy", "3_2_1.npy"]
    assert len(meta["samples"]) == 2
