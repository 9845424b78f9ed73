"""WiFi readers beyond the Intel 5300 (Atheros, nexmon, ESP32, PicoScenes) on their vendored real captures and on
broken copies of them: every broken file gives a one-line DataError naming it, or a result whose flags say what
was dropped, never another exception (and never a crash: csiread is shielded by the readers' framing checks).

References are computed independently: straight from csiread (or the CSV text) and np.interp over the
subcarriers' frequencies, not through the readers' own mapping code.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rfsense.data.recordings import atheros, esp32, nexmon, picoscenes
from rfsense.data.recordings.formats import detect
from rfsense.data.recordings.subcarriers import SUBCARRIER_INDEX
from rfsense.data.recordings.timeline import Stream
from rfsense.errors import DataError
from tests.conftest import RECORDINGS

GRID = SUBCARRIER_INDEX.astype(float)
CAPTURES = {
    "atheros": RECORDINGS / "atheros" / "ath_csi_1.dat",
    "nexmon": RECORDINGS / "nexmon" / "example.pcap",
    "esp32": RECORDINGS / "esp32" / "example_csi.csv",
    "picoscenes": RECORDINGS / "picoscenes" / "rx_by_qca9300.csi",
}
OTHER_CAPTURES = [*CAPTURES.values(), RECORDINGS / "intel5300" / "sample_0x1_ap.dat"]
STREAM: dict[str, Callable[[Path], Stream]] = {
    "atheros": atheros.read_atheros_stream,
    "nexmon": nexmon.read_nexmon_stream,
    "esp32": esp32.read_esp32_stream,
    "picoscenes": picoscenes.read_picoscenes_stream,
}
WINDOWS = {
    "atheros": atheros.read_atheros,
    "nexmon": nexmon.read_nexmon,
    "esp32": esp32.read_esp32,
    "picoscenes": picoscenes.read_picoscenes,
}


def _records(fmt: str, data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(bytes before the first record, [(offset, length)] of each record) by the format's framing."""
    out: list[tuple[int, int]] = []
    if fmt == "esp32":
        pos = 0
        for line in data.splitlines(keepends=True):
            out.append((pos, len(line)))
            pos += len(line)
        return 0, out
    start = {"atheros": 0, "nexmon": 24, "picoscenes": 0}[fmt]
    pos = start
    while pos < len(data):
        if fmt == "atheros":
            n = struct.unpack_from("<H", data, pos)[0] + 2
        elif fmt == "nexmon":
            n = struct.unpack_from("<I", data, pos + 8)[0] + 16
        else:
            n = struct.unpack_from("<I", data, pos)[0] + 4
        out.append((pos, n))
        pos += n
    return start, out


def _outcome(fmt: str, path: Path) -> Stream | None:
    """The stream, or None after checking the DataError is one line naming the file; anything else propagates."""
    try:
        return STREAM[fmt](path)
    except DataError as err:
        msg = str(err)
        assert "\n" not in msg and str(path) in msg, msg
        return None


@pytest.fixture(scope="module")
def csiread():
    return pytest.importorskip("csiread")


# ------------------------------------------------------------------------------------------ real data


def test_atheros_real_capture_matches_csiread_by_frequency(csiread) -> None:
    path = CAPTURES["atheros"]
    s = atheros.read_atheros_stream(path)
    ref = csiread.Atheros(str(path), nrxnum=3, ntxnum=2, tones=56, if_report=False)
    ref.read()
    assert s.values.shape == (401, 90) and ref.count == 401
    k = np.r_[-28:0, 1:29]  # HT20 subcarriers of the 56 tones
    for ant in range(3):
        want = np.stack([np.interp(GRID, k, np.abs(ref.csi[i, :, ant, 0])) for i in range(401)])
        np.testing.assert_allclose(s.values[:, ant * 30 : (ant + 1) * 30], want, rtol=1e-12)
    np.testing.assert_allclose(s.t_s, ref.timestamp.astype(float) / 1e6)
    rate = 1 / np.median(np.diff(s.t_s))
    assert 400 < rate < 550  # ~2.1 ms between records
    assert s.flags == ["rx1: atheros 20 MHz at 2437 MHz, 56 subcarriers -> 30 by frequency"]


def test_nexmon_real_capture_takes_the_primary_20mhz_of_an_80mhz_channel(csiread) -> None:
    path = CAPTURES["nexmon"]
    s = nexmon.read_nexmon_stream(path)
    ref = csiread.Nexmon(str(path), chip="4358", bw=80, if_report=False)
    ref.read()
    # 4 packets of one frame (seq 176): cores 0 and 1, spatial streams 0 and 1 -> one record, 2 antennas
    assert s.values.shape == (1, 90) and s.t_s[0] == pytest.approx(1507213439.296393)
    k = np.fft.fftfreq(256, 1 / 256).astype(int)  # FFT bin order
    data = (np.abs(k) >= 2) & (np.abs(k) <= 122) & ~np.isin(np.abs(k), (11, 39, 75, 103))  # VHT80 data bins
    # chanspec 0xe29b: channel 155, 80 MHz, control sideband 2 -> primary 20 MHz centred +10 MHz = +32 bins
    for ant, packet in ((0, 0), (1, 2)):  # spatial stream 0 of core 0 and core 1
        amp = np.abs(ref.csi[packet])
        order = np.argsort(k[data])
        want = np.interp(32 + GRID, k[data][order], amp[data][order])
        np.testing.assert_allclose(s.values[0, ant * 30 : (ant + 1) * 30], want, rtol=1e-12)
    assert not s.values[0, 60:].any()
    assert "rx1: only 2 of 3 receive cores captured (zeros for the rest)" in s.flags
    assert any("nexmon 80 MHz" in f and "primary channel (sub-channel 3 of 4)" in f for f in s.flags)


def test_esp32_real_capture_lltf_in_centred_order(csiread) -> None:
    path = CAPTURES["esp32"]
    s = esp32.read_esp32_stream(path)
    ref = csiread.ESP32(str(path), if_report=False, csi_only=True)
    ref.read()
    amp = np.abs(ref.csi)  # (13, 64): bin b holds subcarrier b - 32 in this capture
    sc = np.r_[-26:0, 1:27]
    want = np.stack([np.interp(GRID, sc, row[sc + 32]) for row in amp])
    assert s.values.shape == (13, 90)
    np.testing.assert_allclose(s.values[:, :30], want, rtol=1e-12)
    assert not s.values[:, 30:].any()  # one antenna
    local_us = [int(r.split(",")[18]) for r in path.read_text().splitlines()]  # irregular: 0.3 .. 63 ms apart
    np.testing.assert_allclose(s.t_s, np.array(local_us) / 1e6)
    assert any("centred order" in f and "3 edge-held" in f and "40 MHz channel" in f for f in s.flags)
    assert "rx1: esp32 has one antenna: antennas 2-3 zero" in s.flags


def test_picoscenes_real_capture_matches_csiread_subcarrier_index(csiread) -> None:
    path = CAPTURES["picoscenes"]
    s = picoscenes.read_picoscenes_stream(path)
    ref = csiread.Picoscenes(str(path), {"CSI": [56, 3, 1]}, if_report=False)
    ref.read()
    k = ref.raw["CSI"]["SubcarrierIndex"][0]
    assert s.values.shape == (1000, 90)
    for ant in range(3):
        want = np.stack([np.interp(GRID, k, np.abs(c[:, ant, 0])) for c in ref.raw["CSI"]["CSI"]])
        np.testing.assert_allclose(s.values[:, ant * 30 : (ant + 1) * 30], want, rtol=1e-12)
    assert np.all(np.diff(s.t_s) > 0) and s.t_s[-1] - s.t_s[0] == pytest.approx(0.87927)
    assert s.flags == ["rx1: picoscenes 20 MHz, 56 subcarriers -> 30 by frequency"]


@pytest.mark.parametrize("fmt", sorted(CAPTURES))
def test_windows_of_each_real_capture(fmt: str) -> None:
    windows = list(WINDOWS[fmt]([CAPTURES[fmt]]))
    assert len(windows) == 1  # every vendored capture is shorter than 5 s: one edge-held window
    w = windows[0]
    assert w.wifi.shape == (270, 1000) and np.isfinite(w.wifi).all()
    assert w.receivers == (True, False, False) and not w.wifi[90:].any()
    assert w.wifi[:30].any() and any(f.startswith("padded: only") for f in w.flags)
    assert any(f.startswith(f"rx1: {fmt} ") and "-> 30 by frequency" in f for f in w.flags)
    two = list(WINDOWS[fmt]([CAPTURES[fmt], None, CAPTURES[fmt]]))[0]
    np.testing.assert_array_equal(two.wifi[180:], w.wifi[:90])
    assert two.receivers == (True, False, True)


def test_detect_by_content() -> None:
    for fmt, path in CAPTURES.items():
        assert detect(path).name == fmt
    assert detect(RECORDINGS / "intel5300" / "sample_0x1_ap.dat").name == "intel5300"


def test_atheros_log_with_0xbb_third_byte_is_not_taken_for_intel(tmp_path: Path) -> None:
    data = bytearray(CAPTURES["atheros"].read_bytes())
    data[2] = 0xBB  # lowest byte of the first timestamp: still a valid Atheros log
    f = tmp_path / "ath.dat"
    f.write_bytes(bytes(data))
    assert detect(f).name == "atheros"


def test_csv_of_another_tool_is_not_esp32(tmp_path: Path) -> None:
    f = tmp_path / "tags.csv"
    f.write_text("epc,antenna,rssi,phase,timestamp\n3008,1,-52,1.2,1700000000\n")
    fmt = detect(f)
    assert fmt is None or fmt.name != "esp32"  # (an RFID reader log: the Impinj format claims it)
    with pytest.raises(DataError, match=r"tags\.csv: no usable CSI_DATA line"):
        esp32.read_esp32_stream(f)


# -------------------------------------------------------------------------------- mapping rules


def _atheros_record(ts_us: int, tx_mhz: int, tones: int, nr: int, real: np.ndarray) -> bytes:
    """One Atheros CSI Tool record (little-endian, nc=1, no payload) with CSI real parts `real` (tones, nr)."""
    vals = []
    for k in range(tones):
        for r in range(nr):
            vals += [0, int(real[k, r])]  # imag, real: 10-bit two's complement, packed LSB first
    bits = sum((v & 0x3FF) << (10 * i) for i, v in enumerate(vals))
    csi_len = (len(vals) * 10 + 7) // 8
    header = struct.pack("<QHHBBBBBBBBBBBH", ts_us, csi_len, tx_mhz, 0, 0, 0, 1 if tones == 114 else 0, tones, nr,
                         1, 50, 40, 40, 40, 0)
    body = header + bits.to_bytes(csi_len, "little")
    return struct.pack("<H", len(body)) + body


@pytest.mark.parametrize(("tx_mhz", "centre", "n_edge"), [(5180, -32, 1), (5200, +32, 2)])  # ch 36: lower half
def test_atheros_40mhz_capture_takes_the_primary_half(tx_mhz: int, centre: int, n_edge: int, tmp_path: Path) -> None:
    k = np.r_[-58:-1, 2:59]  # HT40 subcarriers, ascending
    real = np.stack([200 + k, 100 + k], axis=1)  # |H| linear in the subcarrier, 2 receive chains
    f = tmp_path / "ht40.dat"
    f.write_bytes(b"".join(_atheros_record(1_000_000 + 5000 * i, tx_mhz, 114, 2, real) for i in range(3)))
    s = atheros.read_atheros_stream(f)
    at = np.clip(centre + GRID, -58, 58)  # grid points past the last subcarrier are edge-held
    np.testing.assert_allclose(s.values[:, :30], np.broadcast_to(200 + at, (3, 30)))
    np.testing.assert_allclose(s.values[:, 30:60], np.broadcast_to(100 + at, (3, 30)))
    assert not s.values[:, 60:].any() and np.allclose(np.diff(s.t_s), 0.005)
    half = "lower" if centre < 0 else "upper"
    # grid -28 -> subcarrier -60 (lower half); grid 27, 28 -> 59, 60 (upper half): outside, edge-held
    assert f"rx1: atheros 40 MHz at {tx_mhz} MHz, 114 subcarriers -> 30 by frequency, {n_edge} edge-held; 20 MHz " \
           f"primary channel ({half} half) taken" in s.flags
    assert "rx1: only 2 of 3 antennas in 3 record(s) (zeros)" in s.flags


def test_atheros_parsed_in_chunks_gives_the_same_stream_and_no_stale_chains(monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Path) -> None:
    whole = atheros.read_atheros_stream(CAPTURES["atheros"])
    monkeypatch.setattr("rfsense.data.recordings.wifi.CSIREAD_CHUNK", 7)
    np.testing.assert_array_equal(atheros.read_atheros_stream(CAPTURES["atheros"]).values, whole.values)
    # 3 chains, then (next chunk) 2: csiread leaves chain 3 of the reused buffer alone; it must read as zero
    k = np.r_[-28:0, 1:29]
    real = np.stack([200 + k, 100 + k, 50 + k], axis=1)
    recs = [_atheros_record(1_000_000 + 5000 * i, 2437, 56, 3 if i < 7 else 2, real[:, : 3 if i < 7 else 2])
            for i in range(14)]
    f = tmp_path / "chains.dat"
    f.write_bytes(b"".join(recs))
    s = atheros.read_atheros_stream(f)
    assert s.values[:7, 60:].all() and not s.values[7:, 60:].any()
    assert "rx1: only 2 of 3 antennas in 7 record(s) (zeros)" in s.flags


def test_nexmon_and_picoscenes_parsed_in_chunks_give_the_same_stream(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    data = CAPTURES["nexmon"].read_bytes()
    start, recs = _records("nexmon", data)
    frames = bytearray(data[:start])
    for i in range(9):  # 9 frames of 4 packets, 2 ms apart; a chunk of 7 packets would split a frame
        for off, n in recs:
            rec = bytearray(data[off : off + n])
            sec, usec = struct.unpack_from("<II", rec, 0)
            struct.pack_into("<II", rec, 0, sec, usec + 2000 * i)
            struct.pack_into("<H", rec, 16 + 42 + 10, 176 + i)
            frames += rec
    f = tmp_path / "frames.pcap"
    f.write_bytes(bytes(frames))
    whole_nex, whole_pico = nexmon.read_nexmon_stream(f), picoscenes.read_picoscenes_stream(CAPTURES["picoscenes"])
    monkeypatch.setattr("rfsense.data.recordings.wifi.CSIREAD_CHUNK", 7)
    chunked = nexmon.read_nexmon_stream(f)
    assert whole_nex.values.shape == (9, 90) and chunked.flags == whole_nex.flags
    np.testing.assert_array_equal(chunked.values, whole_nex.values)
    np.testing.assert_array_equal(chunked.t_s, whole_nex.t_s)
    chunked = picoscenes.read_picoscenes_stream(CAPTURES["picoscenes"])
    np.testing.assert_array_equal(chunked.values, whole_pico.values)
    assert chunked.flags == whole_pico.flags


def _without_csi_segment(frame: bytes) -> bytes:
    """A PicoScenes frame with its CSI segment cut out (frame length and segment count adjusted)."""
    cur = 11
    for _ in range(frame[10]):
        seg_len, name_len = struct.unpack_from("<IB", frame, cur)
        if frame[cur + 5 : cur + 5 + name_len] == b"CSI":
            out = bytearray(frame[:cur] + frame[cur + 4 + seg_len :])
            struct.pack_into("<I", out, 0, len(out) - 4)
            out[10] -= 1
            return bytes(out)
        cur += 4 + seg_len
    raise AssertionError("no CSI segment")


def test_picoscenes_frames_without_csi_are_dropped_not_filled_from_the_last_chunk(monkeypatch: pytest.MonkeyPatch,
                                                                                  tmp_path: Path) -> None:
    data = CAPTURES["picoscenes"].read_bytes()
    _, recs = _records("picoscenes", data)
    frames = [data[o : o + n] for o, n in recs[:20]]
    frames[9] = _without_csi_segment(frames[9])  # in the second chunk of 7
    f = tmp_path / "gap.csi"
    f.write_bytes(b"".join(frames))
    monkeypatch.setattr("rfsense.data.recordings.wifi.CSIREAD_CHUNK", 7)
    s = picoscenes.read_picoscenes_stream(f)
    ref = picoscenes.read_picoscenes_stream(CAPTURES["picoscenes"])
    assert s.values.shape == (19, 90) and "rx1: 1 record(s) without CSI (all zero) dropped" in s.flags
    np.testing.assert_array_equal(s.values, ref.values[[i for i in range(20) if i != 9]])


def test_esp32_classic_bin_order_is_read_from_the_data(tmp_path: Path) -> None:
    """The same frames with bins in the classic ESP32 order (0..31, -32..-1) map to the same grid."""
    lines = CAPTURES["esp32"].read_text().splitlines()
    out = []
    for line in lines:
        head, _, rest = line.partition("[")
        v = np.array(rest.split("]")[0].split(), dtype=int).reshape(64, 2)
        classic = np.roll(v, -32, axis=0)  # classic bin b holds subcarrier b (b < 32) or b - 64
        classic[32:34] = 0  # subcarriers -32, -31: guard
        classic[0:2] = v[0:2]  # the invalid first word stays in the first 4 bytes
        out.append(head + "[" + " ".join(map(str, classic.ravel())) + " ]")
    f = tmp_path / "classic.csv"
    f.write_text("\n".join(out) + "\n")
    s, ref = esp32.read_esp32_stream(f), esp32.read_esp32_stream(CAPTURES["esp32"])
    assert any("classic order" in x for x in s.flags)
    # classic bins 0-1 (subcarriers 0 and +1) are the ESP32's invalid first word, never used: only the grid
    # point at +1 (between -1 and +3 now) differs
    other = np.r_[0:15, 16:30]
    np.testing.assert_allclose(s.values[:, other], ref.values[:, other], rtol=1e-12)


def test_esp32_header_noise_lines_and_comma_lists(tmp_path: Path) -> None:
    """esp-csi style: a header, boot messages, a quoted comma-separated CSI list; a cut last line is flagged."""
    rows = CAPTURES["esp32"].read_text().splitlines()
    header = ("type,role,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,fec_coding,"
              "sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,"
              "real_time_set,real_timestamp,len,CSI_DATA")
    body = []
    for r in rows:
        head, _, rest = r.partition("[")
        body.append(head + '"[' + ",".join(rest.split("]")[0].split()) + ']"')
    text = "\n".join(["I (312) wifi: mode : sta", header, *body, body[-1][:80]]) + "\n"
    f = tmp_path / "esp.csv"
    f.write_text(text)
    s = esp32.read_esp32_stream(f)
    np.testing.assert_allclose(s.values, esp32.read_esp32_stream(CAPTURES["esp32"]).values)
    assert "rx1: 1 of 14 CSI_DATA line(s) cut off or malformed, dropped" in s.flags


def test_esp32_local_timestamp_wrap_is_undone(tmp_path: Path) -> None:
    rows = CAPTURES["esp32"].read_text().splitlines()
    out = []
    for i, r in enumerate(rows):
        f = r.split(",")
        f[18] = str((2**32 - 20_000 + 4000 * i) % 2**32)  # wraps after 5 records
        out.append(",".join(f))
    path = tmp_path / "wrap.csv"
    path.write_text("\n".join(out) + "\n")
    s = esp32.read_esp32_stream(path)
    np.testing.assert_allclose(np.diff(s.t_s), 0.004, rtol=1e-9)


def _nexmon_two_frames(drop_core1_of_second: bool) -> bytes:
    """The vendored 4-packet frame twice (second: seq+1, 2 ms later), optionally without core 1 / stream 0."""
    data = CAPTURES["nexmon"].read_bytes()
    start, recs = _records("nexmon", data)
    out = bytearray(data[:start] + data[start:])
    for j, (off, n) in enumerate(recs):
        if drop_core1_of_second and j == 2:
            continue
        rec = bytearray(data[off : off + n])
        sec, usec = struct.unpack_from("<II", rec, 0)
        struct.pack_into("<II", rec, 0, sec, usec + 2000)
        seq = struct.unpack_from("<H", rec, 16 + 42 + 10)[0]
        struct.pack_into("<H", rec, 16 + 42 + 10, seq + 1)
        out += rec
    return bytes(out)


def test_nexmon_frames_missing_a_core_are_dropped(tmp_path: Path) -> None:
    f = tmp_path / "two.pcap"
    f.write_bytes(_nexmon_two_frames(False))
    s = nexmon.read_nexmon_stream(f)
    assert s.values.shape == (2, 90) and np.diff(s.t_s)[0] == pytest.approx(0.002, abs=1e-6)  # epoch s in float64
    np.testing.assert_array_equal(s.values[0], s.values[1])
    f.write_bytes(_nexmon_two_frames(True))
    s = nexmon.read_nexmon_stream(f)
    assert s.values.shape == (1, 90) and "rx1: 1 frame(s) missing a receive core dropped" in s.flags


def _patch_nexmon_chip(data: bytes, chip: int) -> bytes:
    start, recs = _records("nexmon", data)
    buf = bytearray(data)
    for off, _ in recs:
        struct.pack_into("<H", buf, off + 16 + 42 + 16, chip)
    return bytes(buf)


def test_nexmon_unknown_chip_is_refused_not_zeros(tmp_path: Path) -> None:
    f = tmp_path / "chip.pcap"
    f.write_bytes(_patch_nexmon_chip(CAPTURES["nexmon"].read_bytes(), 0x4321))
    with pytest.raises(DataError, match=r"chip\.pcap: nexmon chip version 0x4321 .*all-zero CSI"):
        nexmon.read_nexmon_stream(f)
    # a chip csiread does not decode returns zeros: refused, never passed on
    with pytest.raises(DataError, match=r"example\.pcap: none of its 1 nexmon record\(s\) carries CSI"):
        nexmon.read_nexmon_stream(CAPTURES["nexmon"], chip="not-a-chip")


def test_picoscenes_device_csiread_cannot_decode_is_refused(tmp_path: Path) -> None:
    data = bytearray(CAPTURES["picoscenes"].read_bytes())
    first_csi = data.index(b"\x03CSI") + 4 + 2  # name length byte, name, u16 version -> CSI body
    struct.pack_into("<H", data, first_csi, 0x2000)
    f = tmp_path / "ax200.csi"
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"ax200\.csi: frame 0 .*AX200/AX210 .*csiread 1.4 does not decode"):
        picoscenes.read_picoscenes_stream(f)


def test_missing_csiread_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "csiread", None)
    for fmt in ("atheros", "nexmon", "picoscenes"):
        with pytest.raises(DataError, match=r"pip install 'rfsense\[recordings\]'"):
            STREAM[fmt](CAPTURES[fmt])
    assert esp32.read_esp32_stream(CAPTURES["esp32"]).values.shape == (13, 90)  # no csiread needed


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("fmt", sorted(CAPTURES))
def test_empty_file(fmt: str, tmp_path: Path) -> None:
    f = tmp_path / "empty.bin"
    f.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.bin: empty file"):
        STREAM[fmt](f)


@pytest.mark.parametrize("fmt", sorted(CAPTURES))
def test_file_of_another_format(fmt: str, tmp_path: Path) -> None:
    for other in OTHER_CAPTURES:
        if other == CAPTURES[fmt]:
            continue
        f = tmp_path / f"{other.stem}.x"
        f.write_bytes(other.read_bytes())
        assert _outcome(fmt, f) is None, f"{fmt} reader accepted {other.name}"


@pytest.mark.parametrize("fmt", sorted(CAPTURES))
def test_random_bytes(fmt: str, tmp_path: Path) -> None:
    f = tmp_path / "noise.bin"
    f.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert _outcome(fmt, f) is None


def _base(fmt: str, n_max: int = 40) -> tuple[bytes, list[tuple[int, int]]]:
    """A real capture cut to its first n_max records (the whole capture when shorter) and its records."""
    data = CAPTURES[fmt].read_bytes()
    start, recs = _records(fmt, data)
    recs = recs[:n_max]
    return data[: recs[-1][0] + recs[-1][1]], recs


@pytest.mark.parametrize("fmt", sorted(CAPTURES))
def test_truncated_at_every_record_boundary_and_mid_record(fmt: str, tmp_path: Path) -> None:
    data, recs = _base(fmt)
    f = tmp_path / "cut.bin"
    for k, (off, n) in enumerate(recs):
        f.write_bytes(data[:off])  # exactly k complete records
        s = _outcome(fmt, f)
        if s is not None:
            assert not any("truncated" in x for x in s.flags)
        f.write_bytes(data[: off + n // 2])  # k complete records and half of the next
        s = _outcome(fmt, f)
        if k == 0 and fmt != "esp32":
            assert s is None  # nothing complete: refused
        if s is not None and fmt != "esp32":
            assert "truncated: last record" in " ".join(s.flags)
        if s is not None and fmt == "esp32" and k >= 1:
            assert any("cut off or malformed" in x for x in s.flags)


@pytest.mark.parametrize("fmt", ["atheros", "nexmon", "picoscenes"])
@pytest.mark.parametrize("delta", [-7, +5, +4000, 0xFFFF])
def test_corrupted_length_field(fmt: str, delta: int, tmp_path: Path) -> None:
    data, recs = _base(fmt, 10)
    f = tmp_path / "len.bin"
    for j in range(len(recs)):
        buf = bytearray(data)
        off = recs[j][0]
        if fmt == "atheros":
            struct.pack_into("<H", buf, off, (struct.unpack_from("<H", buf, off)[0] + delta) % 0x10000)
        elif fmt == "nexmon":
            struct.pack_into("<I", buf, off + 8, (struct.unpack_from("<I", buf, off + 8)[0] + delta) % 2**32)
        else:
            struct.pack_into("<I", buf, off, (struct.unpack_from("<I", buf, off)[0] + delta) % 2**32)
        f.write_bytes(bytes(buf))
        s = _outcome(fmt, f)
        if s is not None:  # only a corrupt last record can pass as a cut-off tail, and then it is flagged
            assert j == len(recs) - 1 and "truncated: last record" in " ".join(s.flags), (j, s.flags)


@pytest.mark.parametrize("fmt", sorted(CAPTURES))
def test_corrupted_header_bytes_never_escape_as_other_errors(fmt: str, tmp_path: Path) -> None:
    """Seeded fuzz of the bytes csiread trusts (record headers, segment headers, CSV metadata)."""
    rng = np.random.default_rng(13)
    data, recs = _base(fmt, 12)
    span = {"atheros": 27, "nexmon": 16 + 42 + 18, "picoscenes": 260, "esp32": 120}[fmt]
    f = tmp_path / "fuzz.bin"
    outcomes = set()
    for _ in range(150):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            off, n = recs[int(rng.integers(len(recs)))]
            i = off + int(rng.integers(min(span, n)))
            buf[i] = int(rng.integers(256)) if fmt != "esp32" else int(rng.choice(list(b"0123456789-,[] x\n")))
        f.write_bytes(bytes(buf))
        outcomes.add(_outcome(fmt, f) is None)
    assert outcomes == {True, False}  # some copies refused, some read (with what could be read)


def test_picoscenes_corrupt_segment_length(tmp_path: Path) -> None:
    data = bytearray(CAPTURES["picoscenes"].read_bytes()[:7300])  # 10 frames
    struct.pack_into("<I", data, 11, 5000)  # frame 0, segment 0 (RxSBasic) claims 5000 bytes
    f = tmp_path / "seg.csi"
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"seg\.csi: frame 0 at offset 0 is corrupt: segment 0 .*runs past the frame"):
        picoscenes.read_picoscenes_stream(f)


@pytest.mark.parametrize("block", [2048, 4])  # lines converted to numbers together (4: bad lines in some blocks)
def test_esp32_corrupted_lines_are_dropped_and_counted(block: int, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setattr(esp32, "_BLOCK", block)
    rows = CAPTURES["esp32"].read_text().splitlines()
    f3 = rows[3].split(",")
    f3[24] = "200"  # len: neither the 128 values printed nor a multiple of 128
    rows[3] = ",".join(f3)
    rows[5] = rows[5].replace("[101 -48 5", "[101 -4x8 5")  # a garbled value
    rows[7] = rows[7].replace("[101 -48 5", "[101 -480 5")  # outside int8
    rows[9] = rows[9].replace("CSI_DATA,AP,", "CSI_DATA,AP,,")  # one column too many
    f = tmp_path / "bad.csv"
    f.write_text("\n".join(rows) + "\n")
    s = esp32.read_esp32_stream(f)
    assert s.values.shape == (9, 90) and "rx1: 4 of 13 CSI_DATA line(s) cut off or malformed, dropped" in s.flags
    good = esp32.read_esp32_stream(CAPTURES["esp32"]).values
    np.testing.assert_array_equal(s.values, good[[0, 1, 2, 4, 6, 8, 10, 11, 12]])


def test_nexmon_impossible_control_sideband_is_refused(tmp_path: Path) -> None:
    data = bytearray(CAPTURES["nexmon"].read_bytes())
    _, recs = _records("nexmon", bytes(data))
    for off, _ in recs:
        (cs,) = struct.unpack_from("<H", data, off + 16 + 42 + 14)
        struct.pack_into("<H", data, off + 16 + 42 + 14, (cs & ~0x0700) | 0x0500)  # sub-channel 5 of 4 (80 MHz)
    f = tmp_path / "sb.pcap"
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"sb\.pcap: nexmon packet .*control sub-channel 5 of a 80 MHz channel"):
        nexmon.read_nexmon_stream(f)


def test_nexmon_cooked_linktype_is_refused(tmp_path: Path) -> None:
    data = bytearray(CAPTURES["nexmon"].read_bytes())
    struct.pack_into("<I", data, 20, 113)  # Linux cooked capture (tcpdump -i any)
    f = tmp_path / "any.pcap"
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"any\.pcap: pcap link type 113, expected 1"):
        nexmon.read_nexmon_stream(f)
