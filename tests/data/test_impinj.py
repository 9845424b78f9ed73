"""Impinj CSV reader: columns and their spellings, tag maps, hop offsets, resampling, gaps, broken logs."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from rfsense.data.recordings.formats import detect
from rfsense.data.recordings.impinj import load_tag_map, read_impinj, read_impinj_log, sniff_impinj
from rfsense.errors import DataError
from tests.conftest import RECORDINGS

XRF55_HEADER = ["EPC", "Timestamp", "Antenna", "TxPower", "Frequency(MHz)", "RSS(dbm)", "PhaseAngle(Radian)",
                "PhaseAngle(Degree)", "DopplerShift(Hz)", "Velocity"]
EPCS = [f"E200001A{k:016X}" for k in range(25)]
T0_US = 1_712_000_000_000_000
CHANNELS = 920.625 + 0.25 * np.arange(8)


def _reads(seconds: float = 6.0, n_tags: int = 23, seed: int = 0, motion: float = 0.8):
    """Per-tag irregular reads at ~30 Hz: (times s, tag index, true phase rad, channel index)."""
    rng = np.random.default_rng(seed)
    t, tag = [], []
    for k in range(n_tags):
        tk = rng.uniform(0, 0.03) + np.cumsum(rng.gamma(8, 1 / 240, int(seconds * 40)))
        tk = tk[tk < seconds]
        t.append(tk)
        tag.append(np.full(len(tk), k))
    t, tag = np.concatenate(t), np.concatenate(tag)
    order = np.argsort(t, kind="stable")
    t, tag = t[order], tag[order]
    phase = 0.25 * tag + motion * np.sin(2 * np.pi * 0.4 * t + tag)
    chan = rng.permutation(len(CHANNELS))[(t / 0.2).astype(int) % len(CHANNELS)]
    return t, tag, phase, chan


def _write(path: Path, t, tag, phase, chan=None, offsets=None, antenna=None, header=XRF55_HEADER, delim=",",
           stamp=lambda t: str(T0_US + int(round(t * 1e6))), phase_fmt=lambda p: f"{p:.6f}", epcs=EPCS) -> Path:
    """A log written independently of the generator; `offsets[c]` is added on channel c."""
    lines = [delim.join(header)]
    for i in range(len(t)):
        c = 0 if chan is None else int(chan[i])
        p = np.mod(phase[i] + (0.0 if offsets is None else offsets[c]), 2 * np.pi)
        values = {"EPC": epcs[tag[i]], "Timestamp": stamp(t[i]), "Antenna": str(1 if antenna is None else antenna[i]),
                  "TxPower": "30.0", "Frequency(MHz)": f"{CHANNELS[c]:.3f}", "RSS(dbm)": "-50.0",
                  "PhaseAngle(Radian)": phase_fmt(p), "PhaseAngle(Degree)": f"{np.degrees(p):.4f}",
                  "DopplerShift(Hz)": "0.0", "Velocity": "0.0"}
        lines.append(delim.join(values.get(h, values.get(_ALIAS.get(h, ""), "0")) for h in header))
    path.write_text("\n".join(lines) + "\n")
    return path


# header spellings used below -> the XRF55 column whose value they carry
_ALIAS = {"EPC-96": "EPC", "FirstSeenTimestampUTC": "Timestamp", "AntennaID": "Antenna",
          "ChannelInMhz": "Frequency(MHz)", "PeakRSSI": "RSS(dbm)", "Phase Angle (Degree)": "PhaseAngle(Degree)",
          "epc": "EPC", "timestamp": "Timestamp", "phase": "PhaseAngle(Radian)", "ImpinjPhase": "PhaseAngle(Radian)"}


def _tag_map(path: Path, epcs=EPCS[:23]) -> Path:
    path.write_text("# tag board rows\n" + "\n".join(epcs) + "\n")
    return path


def _zoh(t, tag, phase, start: float, n_tags: int = 23) -> np.ndarray:
    """Reference resampling: latest read at or before each slot end (first read before it)."""
    ends = start + (np.arange(148) + 1) * 5 / 148
    out = np.zeros((n_tags, 148))
    for k in range(n_tags):
        tk, pk = t[tag == k], phase[tag == k]
        out[k] = pk[np.maximum(np.searchsorted(tk, ends + 1e-9, side="right") - 1, 0)]
    return out


def _err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| on the circle after removing each tag's median offset (what a reader cannot know)."""
    d = np.angle(np.exp(1j * (a - b)))
    return np.abs(np.angle(np.exp(1j * (d - np.median(d, axis=1, keepdims=True)))))


# ------------------------------------------------------------------------------------------ reading
def test_rows_follow_the_tag_map_and_reads_are_held(tmp_path):
    t, tag, phase, _ = _reads()
    log = _write(tmp_path / "a.csv", t, tag, phase)
    order = list(range(22, -1, -1))  # the map lists the tags in reverse
    (w,) = read_impinj([log], tag_map=_tag_map(tmp_path / "m.txt", [EPCS[k] for k in order]))
    assert w.modality == "rfid" and w.array.shape == (23, 148) and w.start_s == 0.0 and w.end_s == 5.0
    assert w.array.min() >= 0 and w.array.max() < 2 * np.pi
    ref = np.mod(_zoh(t, tag, phase, t[0]), 2 * np.pi)[order]
    np.testing.assert_allclose(w.array, ref, atol=2e-6)
    assert not w.flags
    log_info = read_impinj_log(log, tag_map=tmp_path / "m.txt")
    assert log_info.columns == {"epc": "EPC", "time": "Timestamp", "phase_rad": "PhaseAngle(Radian)",
                                "antenna": "Antenna", "frequency": "Frequency(MHz)"}


def test_hop_offsets_are_removed(tmp_path):
    t, tag, phase, chan = _reads(seconds=10.5)
    offsets = np.random.default_rng(5).uniform(0, 2 * np.pi, len(CHANNELS))
    log = _write(tmp_path / "h.csv", t, tag, phase, chan, offsets)
    windows = list(read_impinj([log], tag_map=_tag_map(tmp_path / "m.txt")))
    assert len(windows) == 2 and any("hopping over 8 channels" in f for f in windows[0].flags)
    for w in windows:
        ref = _zoh(t, tag, phase, t[0] + w.start_s)
        err = _err(w.array, ref)
        assert np.median(err) < 0.02 and np.quantile(err, 0.95) < 0.06, (np.median(err), np.quantile(err, 0.95))
    # the same log read as if from one channel keeps the offsets: errors of radians
    no_freq = _write(tmp_path / "n.csv", t, tag, phase, chan, offsets,
                     header=[h for h in XRF55_HEADER if h != "Frequency(MHz)"])
    w = next(read_impinj([no_freq], tag_map=tmp_path / "m.txt"))
    assert np.median(_err(w.array, _zoh(t, tag, phase, t[0]))) > 0.5


@pytest.mark.parametrize("header, delim, stamp, phase_fmt", [
    (["EPC-96", "FirstSeenTimestampUTC", "AntennaID", "ChannelInMhz", "PeakRSSI", "ImpinjPhase"], ",",
     None, lambda p: str(int(round(p / (2 * np.pi) * 4096)) % 4096)),
    (["epc", "timestamp", "Phase Angle (Degree)"], ";", lambda t: f"{1_712_000_000 + t:.6f}", None),
    (["EPC", "Timestamp", "PhaseAngle(Radian)"], "\t", lambda t: str(1_712_000_000_000 + int(round(t * 1e3))), None),
    (["epc", "timestamp", "phase"], ",", lambda t: datetime.fromtimestamp(1_712_000_000 + t, timezone.utc)
     .isoformat(), None),
    (["EPC", "Timestamp", "PhaseAngle(Radian)"], ",", lambda t: f"{t:.6f}", None),  # relative seconds
])
def test_common_column_spellings(tmp_path, header, delim, stamp, phase_fmt):
    t, tag, phase, _ = _reads()
    kwargs = {"stamp": stamp} if stamp else {}
    if phase_fmt:
        kwargs["phase_fmt"] = phase_fmt
    log = _write(tmp_path / "s.csv", t, tag, phase, header=header, delim=delim, **kwargs)
    assert sniff_impinj(log, log.read_bytes()[:4096])
    (w,) = read_impinj([log], tag_map=_tag_map(tmp_path / "m.txt"))
    ref = np.mod(_zoh(t, tag, phase, t[0]), 2 * np.pi)
    tol = 2 * np.pi / 4096 if "ImpinjPhase" in header else 1e-3  # 4096 steps per turn; ms time stamps
    assert np.quantile(_err(w.array, ref), 0.98) < tol


def test_without_tag_map_first_23_epcs_are_used_and_flagged(tmp_path):
    t, tag, phase, _ = _reads(n_tags=25)
    (w,) = read_impinj([_write(tmp_path / "x.csv", t, tag, phase)])
    first = list(dict.fromkeys(tag.tolist()))[:23]
    assert any("no tag map" in f for f in w.flags)
    assert any("EPCs beyond the first 23 dropped" in f for f in w.flags)
    ref = np.mod(_zoh(t, tag, phase, t[0], n_tags=25), 2 * np.pi)[first]
    np.testing.assert_allclose(w.array, ref, atol=2e-6)


def test_lost_tags_unknown_epcs_and_antennas_are_flagged(tmp_path):
    t, tag, phase, _ = _reads(seconds=10.5)
    keep = ~((tag == 4) & (t > 4.0))  # tag 4 falls silent after 4 s
    antenna = np.where(np.arange(len(t)) % 7 == 0, 2, 1)  # a second, quieter antenna
    log = _write(tmp_path / "l.csv", t[keep], tag[keep], phase[keep], antenna=antenna[keep])
    epcs = [EPCS[k] for k in range(22)] + ["E2000000000000000000FFFF"]  # tag 22 unknown, one mapped tag never read
    windows = list(read_impinj([log], tag_map=_tag_map(tmp_path / "m.txt", epcs)))
    assert len(windows) == 2
    flags = [f for w in windows for f in w.flags]
    assert any("kept antenna 1" in f for f in flags)
    assert any("EPCs outside the tag map dropped" in f for f in flags)
    assert "lost tags (no read in this window, rows held): [22]" in windows[0].flags
    assert "lost tags (no read in this window, rows held): [4, 22]" in windows[1].flags
    assert np.all(windows[1].array[4] == windows[1].array[4, 0]) and np.all(windows[0].array[22] == 0)
    (w2,) = list(read_impinj([log], tag_map=tmp_path / "m.txt", window_s=5.0, hop_s=5.0))[1:]
    assert w2.start_s == windows[1].start_s


def test_a_gap_splits_the_log_and_nothing_is_held_across_it(tmp_path):
    t, tag, phase, _ = _reads(seconds=14.0)
    drop = ((t > 6.0) & (t < 8.5)) | ((tag == 7) & (t > 6.0))  # the gap; tag 7 is not read after it
    t, tag, phase = t[~drop], tag[~drop], phase[~drop]
    log = _write(tmp_path / "g.csv", t, tag, phase)
    windows = list(read_impinj([log], tag_map=_tag_map(tmp_path / "m.txt"), hop_s=0.5))
    starts = [w.start_s for w in windows]
    first_after = t[t > 8.5][0] - t[0]
    for w in windows:  # no window overlaps the gap
        assert w.end_s <= 6.0 - t[0] + 1e-6 or w.start_s >= first_after - 1e-6
    fs, hop = 148 / 5, 15  # a window every 15 slots (0.5 s) while 148 slots fit in a stretch

    def expected(length: float) -> int:
        return (int(np.floor(length * fs + 1e-9)) + 1 - 148) // hop + 1

    before = t[t < 6.0][-1] - t[0]
    after = t[-1] - t[t > 8.5][0]
    assert len([s for s in starts if s < 6.0]) == expected(before) >= 1
    assert len([s for s in starts if s >= first_after - 1e-6]) == expected(after) >= 1
    for w in windows:
        if w.start_s >= first_after - 1e-6:  # tag 7's reads before the gap are not held across it
            assert "lost tags (no read in this window, rows held): [7]" in w.flags and np.all(w.array[7] == 0)
        else:
            assert not any("lost" in f for f in w.flags)
    with pytest.raises(DataError, match="shorter than one 6.0 s window"):
        read_impinj([log], tag_map=tmp_path / "m.txt", short="refuse", window_s=6.0)  # both stretches < 6 s


# ------------------------------------------------------------------------------------------ broken input
@pytest.mark.parametrize("text, message", [
    ("", r"no Impinj CSV header .* \(first line: '\(empty file\)'\)"),
    ("foo,bar,baz\n1,2,3\n", r"no Impinj CSV header with an EPC and a phase column .*first line: 'foo,bar,baz'"),
    ("EPC,RSSI,PhaseAngle(Radian)\nE1,-50,1.0\n", "has no timestamp column; expected one of timestamp"),
    ("EPC,Timestamp,PhaseAngle(Radian)\n", "header but no reads"),
    ("EPC,Timestamp,PhaseAngle(Radian)\nE1,1712000000000000,1.0\nE1,17120000000",
     r"line 3 has 2 fields, the header 3; truncated or corrupt log \(the last line"),
    ("EPC,Timestamp,PhaseAngle(Radian)\nE1,1712000000000000,1.0\nE1,1712000000033000\nE1,1712000000066000,1.1\n",
     "line 3 has 2 fields, the header 3; truncated or corrupt log$"),
    ("EPC,Timestamp,PhaseAngle(Radian)\nE1,1712000000000000,1.0\nE1,1712000000033000,abc\n",
     "line 3: PhaseAngle\\(Radian\\) 'abc' is not a number"),
])
def test_broken_logs_give_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        list(read_impinj([path]))
    assert "bad.csv" in str(err.value) and "\n" not in str(err.value)


def test_a_complete_last_line_needs_no_newline(tmp_path):
    t, tag, phase, _ = _reads()
    log = _write(tmp_path / "a.csv", t, tag, phase)
    log.write_text(log.read_text().rstrip("\n"))
    (w,) = read_impinj([log], tag_map=_tag_map(tmp_path / "m.txt"))
    np.testing.assert_allclose(w.array, np.mod(_zoh(t, tag, phase, t[0]), 2 * np.pi), atol=2e-6)


def test_bad_tag_maps(tmp_path):
    t, tag, phase, _ = _reads()
    log = _write(tmp_path / "a.csv", t, tag, phase)
    with pytest.raises(DataError, match="tag map .*missing.txt: cannot read"):
        read_impinj([log], tag_map=tmp_path / "missing.txt")
    with pytest.raises(DataError, match="short.txt: 22 EPCs; expected 23"):
        read_impinj([log], tag_map=_tag_map(tmp_path / "short.txt", EPCS[:22]))
    with pytest.raises(DataError, match=f"EPC {EPCS[0]} is listed more than once"):
        read_impinj([log], tag_map=_tag_map(tmp_path / "dup.txt", EPCS[:22] + EPCS[:1]))
    with pytest.raises(DataError, match="none of the 23 tag-map EPCs was read .*wrong tag map"):
        read_impinj([log], tag_map=_tag_map(tmp_path / "other.txt", [f"AA{k:022X}" for k in range(23)]))
    assert load_tag_map(_tag_map(tmp_path / "ok.txt", [e.lower() for e in EPCS[:23]])) == EPCS[:23]
    with pytest.raises(DataError, match="does not exist"):
        read_impinj([tmp_path / "none.csv"])


def test_sniffer_takes_impinj_logs_and_leaves_other_csv_alone(tmp_path):
    t, tag, phase, _ = _reads(seconds=1.0)
    log = _write(tmp_path / "log.txt", t, tag, phase)  # recognised by content, not by name
    assert detect(log).name == "impinj"
    esp32 = RECORDINGS / "esp32" / "example_csi.csv"
    assert not sniff_impinj(esp32, esp32.read_bytes()[:4096])
    assert not sniff_impinj(tmp_path / "x.csv", b"time,value\n1,2\n")
