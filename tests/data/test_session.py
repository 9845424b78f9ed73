"""Sessions: the session file, every sensor on one timeline, coverage of each window (absent / flagged).

Captures (`tests/session_captures.py`): two simulated trials recorded back to back by a DCA1000 radar (10 s)
and an Impinj reader (its own epoch clock), and the real Intel 5300 capture as WiFi receiver.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rfsense.data.recordings.dca1000 import read_dca1000
from rfsense.data.recordings.intel5300 import read_intel5300_stream
from rfsense.data.recordings.session import grid_starts, open_session, session_windows
from rfsense.data.recordings.session_file import load_session_config, resolve_trials
from rfsense.errors import ConfigError, DataError
from tests.session_captures import RFID_T0, all_sensors, session_captures, write_session


@pytest.fixture(scope="module")
def caps(tmp_path_factory):
    return session_captures(tmp_path_factory)


def _circ_err(a: np.ndarray, b: np.ndarray) -> float:
    """Median circular error after removing each tag's median offset (as tests/data/test_raw_synth.py)."""
    d = np.angle(np.exp(1j * (a - b)))
    return float(np.median(np.abs(np.angle(np.exp(1j * (d - np.median(d, axis=1, keepdims=True)))))))


# ------------------------------------------------------------------------------------------ session file
@pytest.mark.parametrize("text, message", [
    ("sensors: {rfid: {path: r.csv, tag_mapp: t.txt}}",
     "unknown key 'sensors.rfid.tag_mapp'; allowed: path, offset_s, start, format, tag_map, antenna, time_unit"),
    ("sensors: {wifi: {rx4: {path: a.dat}}}", "unknown key 'sensors.wifi.rx4'; allowed: rx1, rx2, rx3"),
    ("sensors: {rfid: {path: r.csv, offset_s: 1, start: 2}}", "sensors.rfid: give offset_s"),
    ("sensors: {}", "sensors: no capture given"),
    ("sensors: {mmwave: {path: a.bin}}\ntrials: [{action: 56, start: 0}]", "trials.0.action: must be less than"),
    ("sensors: {mmwave: {path: a.bin}}\ntrials: [{action: 3, start: soon}]",
     "trials.0.start: must be seconds (a number) or an ISO date-time"),
    ("sensors: {wifi: {rx1: {path: a.dat, format: intel9999}}}", "sensors.wifi.rx1.format: must be"),
    ("sensors: {mmwave: {path: a.bin}}\nwindows: {min_coverage: 1.5}", "windows.min_coverage: must be less than"),
    ("sensors: [", "not valid YAML"),
    ("- a\n- b", "expected a mapping with a `sensors:` key"),
])
def test_bad_session_file_is_one_config_error_naming_the_key(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_session_config(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_trial_numbers_follow_start_order_per_volunteer_and_action(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("""
sensors: {mmwave: {path: a.bin}}
volunteer: 4
first_trial: 3
trials:
  - {action: 7, start: 20}
  - {action: 7, start: 10}
  - {action: 2, start: 15}
  - {action: 7, start: 30, trial: 4}
  - {action: 7, start: 40, volunteer: 5}
  - {action: 7, start: 2024-05-01T10:00:00}
""")
    trials = resolve_trials(load_session_config(path))
    got = {(t.volunteer, t.action, t.start_s): t.trial for t in trials}
    # action 7 of volunteer 4 by start: 10 -> 3, 20 -> 5 (4 is given explicitly), 30 -> 4, the date-time -> 6
    assert got[(4, 7, 10.0)] == 3 and got[(4, 7, 20.0)] == 5 and got[(4, 7, 30.0)] == 4
    assert got[(4, 7, 1714557600.0)] == 6 and got[(4, 2, 15.0)] == 3 and got[(5, 7, 40.0)] == 3
    assert [t.start_s for t in trials] == sorted(t.start_s for t in trials)
    path.write_text("sensors: {mmwave: {path: a.bin}}\ntrials: [{action: 1, start: 0, trial: 2}, "
                    "{action: 1, start: 9, trial: 2}]")
    with pytest.raises(ConfigError, match=r"trials.1.trial: volunteer None, action 1, trial 2 is also trials.0"):
        resolve_trials(load_session_config(path), "s.yaml")


# ---------------------------------------------------------------------------------------------- clocks
def test_known_clock_shift_aligns_rfid_and_radar(caps, tmp_path):
    """The reader logs on the epoch clock, the radar counts frames from 0: with offset_s = -(epoch of trial 1)
    both trials' windows hold the right data: RFID within 0.05 rad of the generator's .npy (median, after
    per-tag offsets), mmWave equal to the DCA1000 reader on each trial's own capture. 50 ms off already
    moves the RFID error above 0.2 rad, so the comparison can tell a right clock from a wrong one."""
    session = open_session(write_session(tmp_path / "s.yaml", all_sensors(caps)))
    windows = list(session_windows(session, [0.0, 5.0]))
    for action, w in zip((1, 2), windows, strict=True):
        truth = np.load(caps.synth / "RFID" / f"1_{action}_1.npy")
        assert _circ_err(w.arrays["rfid"], truth) < 0.05
        own = next(read_dca1000([caps.synth / "raw" / "dca1000" / f"1_{action}_1_Raw_0.bin"]))
        np.testing.assert_array_equal(w.arrays["mmwave"], own.array)
        assert w.absent == {} and not any("covers" in f for f in w.flags), w.flags
    wrong = open_session(write_session(tmp_path / "w.yaml", all_sensors(caps, rfid={"offset_s": -RFID_T0 + 0.05})))
    for action, w in zip((1, 2), session_windows(wrong, [0.0, 5.0]), strict=True):
        assert _circ_err(w.arrays["rfid"], np.load(caps.synth / "RFID" / f"1_{action}_1.npy")) > 0.2


def test_known_clock_shift_between_wifi_receivers(caps, tmp_path):
    """The real 5300 capture as rx1 from session time 0 and again as rx2 from 3 s: rx2's channels at time T
    are rx1's at T - 3, and offset_s on the NIC clock equals start on the first packet."""
    rx = {"path": str(caps.folder / "rx1.dat")}
    session = open_session(write_session(tmp_path / "s.yaml", {"wifi": {"rx1": {**rx, "start": 0.0},
                                                                        "rx2": {**rx, "start": 3.0}}}))
    at_10, at_13 = session_windows(session, [10.0, 13.0])
    np.testing.assert_allclose(at_13.arrays["wifi"][90:180], at_10.arrays["wifi"][:90], rtol=1e-9, atol=1e-9)
    assert np.abs(at_13.arrays["wifi"][:90] - at_10.arrays["wifi"][:90]).max() > 1.0  # the data do change
    _, ts0 = read_intel5300_stream(caps.folder / "rx1.dat")
    by_offset = open_session(write_session(tmp_path / "o.yaml", {"wifi": {"rx1": {**rx, "offset_s": -ts0 * 1e-6}}}))
    np.testing.assert_allclose(next(session_windows(by_offset, [10.0])).arrays["wifi"][:90],
                               at_10.arrays["wifi"][:90], rtol=1e-9)


def test_overlap_is_reported_and_a_sensor_overlapping_none_is_refused(caps, tmp_path, caplog):
    caplog.set_level("INFO")
    session = open_session(write_session(tmp_path / "s.yaml", all_sensors(caps)))
    assert session.report[0].startswith("mmwave    dca1000    0.000 .. 10.000 s (10.0 s of records")
    assert "wifi.rx1  intel5300  0.000 .. 59.625 s" in session.report[1] and "2 gap(s)" in session.report[1]
    assert session.report[-1].startswith("all sensors overlap 0.00")
    assert session.common_s == pytest.approx((0.0027, 10.0), abs=0.01)
    assert "all sensors overlap" in caplog.text
    lost = write_session(tmp_path / "lost.yaml", all_sensors(caps, rfid={"offset_s": 0.0}))  # epoch clock as is
    with pytest.raises(DataError, match=r"rfid overlaps no other sensor in time .*set each sensor's offset_s"):
        open_session(lost)


def test_missing_capture_names_the_key(caps, tmp_path):
    path = write_session(tmp_path / "s.yaml", all_sensors(caps, rfid={"tag_map": "nope.txt"}))
    with pytest.raises(DataError, match=rf"sensors.rfid.tag_map: {tmp_path}/nope.txt does not exist"):
        open_session(path)
    path = write_session(tmp_path / "s.yaml", {"wifi": {"rx1": {"path": str(caps.folder / "reads.csv")}}})
    with pytest.raises(DataError, match=r"sensors.wifi.rx1.path: .*reads.csv is a impinj \(rfid\) capture"):
        open_session(path)
    path = write_session(tmp_path / "s.yaml", {"wifi": {"rx1": {"path": str(caps.folder / "rx1.dat"), "chip": "4358"}}})
    with pytest.raises(ConfigError, match=r"sensors.wifi.rx1.chip: only nexmon captures take a chip; rx1.dat is intel5300"):
        open_session(path)


# -------------------------------------------------------------------------------------------- coverage
def test_partial_coverage_is_flagged_and_too_little_is_absent(caps, tmp_path):
    """The radar and the reader record 0..10 s. A window from 5.5 s: both cover 90 % (used, flagged, the last
    0.5 s edge-held); from 6.5 s: 70 % < 80 % (absent, with the share); from 10 s: nothing (absent)."""
    session = open_session(write_session(tmp_path / "s.yaml", all_sensors(caps)))
    w55, w65, w10 = session_windows(session, [5.5, 6.5, 10.0])
    assert w55.absent == {} and w55.coverage["mmwave"] == pytest.approx(0.9)
    assert "mmwave covers 90 % of the window (0.50 s after they end, edge-held)" in w55.flags
    assert any(f.startswith("rfid covers 91 % of the window (0.47 s after they end") for f in w55.flags)
    steps = w55.arrays["mmwave"]
    np.testing.assert_array_equal(steps[-1], steps[-2])  # the missing frames hold the last measured step
    assert set(w65.absent) == {"mmwave", "rfid"} and w65.arrays["mmwave"] is None and w65.arrays["rfid"] is None
    assert w65.absent["mmwave"] == "covers 70 % of the window < 80 % (min_coverage)"
    assert w65.arrays["wifi"] is not None and "mmwave absent: covers 70 %" in " ".join(w65.notes)
    assert w10.absent["mmwave"].startswith("no records in this window (its records: 0.00 .. 10.00 s)")
    strict = open_session(write_session(tmp_path / "t.yaml", all_sensors(caps), windows={"min_coverage": 0.95}))
    (w,) = session_windows(strict, [5.5])
    assert w.absent["mmwave"] == "covers 90 % of the window < 95 % (min_coverage)"


def test_a_window_starting_before_the_radar_holds_its_first_frames(caps, tmp_path):
    """Radar from session time 1.02 s: a window from 0 starts at the nearest frame (20 frames before the
    capture's first), covers 80 % (used, flagged); steps 0-2 hold no frame and repeat step 3, which holds
    capture frames 0-3. A window from 5 s is whole again and equals the capture's frames 80-179."""
    session = open_session(write_session(tmp_path / "s.yaml", all_sensors(caps, mmwave={"start": 1.02})))
    w0, w5 = session_windows(session, [0.0, 5.0])
    assert w0.coverage["mmwave"] == pytest.approx(0.8) and "mmwave" not in w0.absent
    assert "mmwave covers 80 % of the window (1.00 s before its records begin, edge-held)" in w0.flags
    steps = w0.arrays["mmwave"]
    for k in range(3):
        np.testing.assert_array_equal(steps[k], steps[3])
    assert not np.array_equal(steps[3], steps[4])
    assert w5.coverage["mmwave"] == 1.0
    plain = list(read_dca1000([caps.folder / "radar_Raw_0.bin"], hop_s=4.0))  # windows at frames 0 and 80
    np.testing.assert_array_equal(w5.arrays["mmwave"], plain[1].array)


def test_a_window_never_bridges_a_gap(caps, tmp_path):
    """The 5300 capture stops for 0.6 s at 33.9 s (> max_gap_s 0.5): a window from 29.5 s uses the records
    before the gap only (89 %, flagged, the rest held); one from 31 s covers 59 % and is absent."""
    path = write_session(tmp_path / "s.yaml", {"wifi": {"rx1": {"path": str(caps.folder / "rx1.dat"), "start": 0}}})
    session = open_session(path)
    w295, w31 = session_windows(session, [29.5, 31.0])
    assert w295.coverage["wifi.rx1"] == pytest.approx(0.889, abs=0.002)
    assert any(f.startswith("wifi.rx1 covers 89 % of the window (0.55 s after they end") for f in w295.flags)
    held = w295.arrays["wifi"][:90, int((33.95 - 29.5) * 200):]
    assert np.all(held == held[:, :1]), "samples after the gap must hold the last record, not bridge the gap"
    assert w31.arrays["wifi"] is None and w31.absent["wifi.rx1"].startswith("covers 59 %")


def test_grid_windows_cover_the_session_and_skip_empty_time(caps, tmp_path):
    session = open_session(write_session(tmp_path / "s.yaml", all_sensors(caps, wifi=None), windows={"hop_s": 2.5}))
    starts = grid_starts(session)
    assert starts == pytest.approx([0.0, 2.5, 5.0])  # 7.5 .. 12.5 has 50 % of each sensor: no window
    assert grid_starts(session, hop_s=5.0) == pytest.approx([0.0, 5.0])
    with pytest.raises(ValueError, match="sorted"):
        list(session_windows(session, [5.0, 0.0]))


def test_relative_paths_start_at_the_session_file(caps):
    path = write_session(caps.folder / "rel.yaml", {"mmwave": {"path": "radar_Raw_1.bin"}})
    session = open_session(path)
    assert session.track("mmwave").mapping["n_frames"] == 200 and session.name == "rel"
    assert Path(session.track("mmwave").mapping["radar_config_source"]).name == "radar.mmwave.json"
