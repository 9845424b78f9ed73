"""Intel 5300 reader on a real capture (csiread's sample_0x1_ap.dat, vendored) and on broken files."""

from __future__ import annotations

import struct
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from rfsense.data.recordings.intel5300 import _unwrap_us
from rfsense.data.recordings.intel5300 import read_intel5300 as _read
from rfsense.errors import DataError
from tests.conftest import RECORDINGS

SAMPLE = RECORDINGS / "intel5300" / "sample_0x1_ap.dat"
FS = 200.0


def read_intel5300(*args, **kwargs) -> list:
    return list(_read(*args, **kwargs))


@pytest.fixture(scope="module")
def sample() -> Path:
    assert SAMPLE.is_file(), f"vendored capture missing: {SAMPLE}"
    return SAMPLE


@pytest.fixture(scope="module")
def raw(sample: Path) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference straight from csiread: (times in s from the first packet, amp (n, 90))."""
    csiread = pytest.importorskip("csiread")
    reader = csiread.Intel(str(sample), nrxnum=3, ntxnum=2, if_report=False)
    reader.read()
    amp = np.abs(reader.get_scaled_csi()[:, :, :, 0])  # (n, 30 sc, 3 ant)
    t = (reader.timestamp_low.astype(np.int64) - int(reader.timestamp_low[0])) / 1e6
    return t, amp.transpose(0, 2, 1).reshape(len(amp), 90)  # channel = ant*30 + sc


def _records(data: bytes) -> list[tuple[int, int]]:
    """(offset, total length) of each record: [2-byte big-endian length][code][body]."""
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">H", data, pos)
        out.append((pos, n + 2))
        pos += n + 2
    return out


def _with_timestamps(data: bytes, fn) -> bytes:
    """Copy of a capture with every 0xbb record's timestamp_low replaced by fn(old) mod 2**32."""
    buf = bytearray(data)
    for off, _ in _records(data):
        if buf[off + 2] == 0xBB:
            (ts,) = struct.unpack_from("<I", buf, off + 3)
            struct.pack_into("<I", buf, off + 3, fn(ts) % (1 << 32))
    return bytes(buf)


def _expected_count(t: np.ndarray, hop: int, win: int = 1000, max_gap: float = 0.5) -> int:
    """Windows that fit in the stretches between gaps longer than max_gap, every hop samples."""
    cut = np.flatnonzero(np.diff(t) > max_gap)
    starts, ends = np.r_[0, cut + 1], np.r_[cut, len(t) - 1]
    n = 0
    for a, b in zip(starts, ends, strict=True):
        n_grid = int(np.floor((t[b] - t[a]) * FS + 1e-9)) + 1
        n += max(0, (n_grid - win) // hop + 1)
    return n


# ----------------------------------------------------------------------------------------- real data


def test_windows_count_shape_and_receivers(sample: Path, raw) -> None:
    t, _ = raw
    windows = read_intel5300([sample])
    # ~59.6 s capture with two 0.6 s gaps (at 33.9 and 36.0 s): 6 windows before them, 4 after
    assert len(windows) == _expected_count(t, 1000) == 10
    for i, w in enumerate(windows[:6]):
        assert w.wifi.shape == (270, 1000) and w.wifi.dtype == np.float64
        assert w.receivers == (True, False, False)
        assert "rx2 missing: no file given" in w.flags and "rx3 missing: no file given" in w.flags
        # the sample was logged at ~10 packets/s, far below XRF55's 200
        assert any(f.startswith("rx1: packet rate") and "mostly interpolated" in f for f in w.flags)
        assert w.start_s == pytest.approx(5.0 * i) and w.end_s - w.start_s == pytest.approx(5.0)
        assert w.sources == [str(sample)]
    assert windows[6].start_s == pytest.approx(t[330])  # the first packet after the second gap


def test_amplitude_finite_positive_where_present_zero_elsewhere(sample: Path) -> None:
    for w in read_intel5300([sample]):
        rx1 = w.wifi[:90]
        assert np.isfinite(w.wifi).all()
        assert (rx1 > 0).all(), "scaled |H| of a present receiver must be positive"
        assert not w.wifi[90:].any(), "missing receivers must be zero"


def test_uniform_200hz_grid_is_linear_interpolation_of_packets(sample: Path, raw) -> None:
    t, amp = raw
    windows = read_intel5300([sample])
    for w in (windows[0], windows[6]):
        grid = w.start_s + np.arange(1000) / FS  # seconds from the first packet
        for ch in (0, 31, 89):  # ant0 sc0, ant1 sc1, ant2 sc29
            np.testing.assert_allclose(w.wifi[ch], np.interp(grid, t, amp[:, ch]), rtol=1e-12)


def test_hop_gives_overlapping_windows(sample: Path, raw) -> None:
    t, _ = raw
    windows = read_intel5300([sample], hop_s=2.5)
    assert len(windows) == _expected_count(t, 500) == 20
    np.testing.assert_array_equal(windows[1].wifi[:, :500], windows[0].wifi[:, 500:])
    assert windows[1].start_s == pytest.approx(2.5)


def test_several_receivers_fill_their_channel_blocks(sample: Path) -> None:
    one = read_intel5300([sample])
    three = read_intel5300([sample, None, sample])
    assert len(three) == len(one)
    w = three[0]
    assert w.receivers == (True, False, True)
    assert "rx2 missing: no file given" in w.flags and not any("rx3 missing" in f for f in w.flags)
    np.testing.assert_array_equal(w.wifi[:90], one[0].wifi[:90])
    np.testing.assert_array_equal(w.wifi[180:], one[0].wifi[:90])
    assert not w.wifi[90:180].any()


def test_no_window_bridges_a_long_gap(sample: Path, raw) -> None:
    t, _ = raw
    for max_gap, n in ((0.5, 10), (1.0, 11)):  # the capture's two gaps are 0.60 s long
        windows = read_intel5300([sample], max_gap_s=max_gap)
        assert len(windows) == n
        for w in windows:
            inside = t[(t >= w.start_s - 1e-9) & (t < w.end_s)]
            assert np.diff(np.r_[w.start_s, inside]).max() <= max_gap


def _jump_after(data: bytes, k: int, jump_us: int, n_records: int | None = None) -> bytes:
    """The capture cut to n_records records, with every timestamp after record k moved jump_us later."""
    recs = _records(data)[: n_records or None]
    buf = bytearray(data[: recs[-1][0] + recs[-1][1]])
    for i, (off, _) in enumerate(recs):
        if i > k and buf[off + 2] == 0xBB:
            (ts,) = struct.unpack_from("<I", buf, off + 3)
            struct.pack_into("<I", buf, off + 3, (ts + jump_us) % (1 << 32))
    return bytes(buf)


def test_clock_jump_costs_no_memory(sample: Path, tmp_path: Path) -> None:
    """A 7.9 KB capture whose clock jumps by 2**31 us once made the reader allocate 16 GiB."""
    f = tmp_path / "jump.dat"
    f.write_bytes(_jump_after(sample.read_bytes(), 6, (1 << 31) - 1, n_records=20))
    assert f.stat().st_size < 8_500
    tracemalloc.start()
    try:
        windows = read_intel5300([f])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, f"peak {peak / 1e6:.0f} MB for a {f.stat().st_size} byte capture"
    assert len(windows) == 1 and any(fl.startswith("padded: only") for fl in windows[0].flags)
    with pytest.raises(DataError, match="shorter than one 5.0 s window"):
        read_intel5300([f], short="refuse")


def test_half_hour_gap_gives_no_windows_inside_it(sample: Path, raw, tmp_path: Path) -> None:
    t, _ = raw
    f = tmp_path / "gap.dat"
    f.write_bytes(_jump_after(sample.read_bytes(), 200, 30 * 60 * 1_000_000))
    windows = read_intel5300([f])
    moved = t + np.where(np.arange(len(t)) > 200, 1800.0, 0.0)
    assert len(windows) == _expected_count(moved, 1000) == 10  # 4 before the gap, 6 after it
    assert max(w.start_s for w in windows) > 1800  # windows after the gap sit at their real times
    assert not any(t[200] < w.end_s and w.start_s < moved[201] for w in windows)  # nothing inside the gap


def test_short_capture_padded_or_refused(sample: Path, tmp_path: Path) -> None:
    data = sample.read_bytes()
    recs = _records(data)
    end = recs[30][0]  # first 30 packets, ~3 s
    short = tmp_path / "short.dat"
    short.write_bytes(data[:end])
    windows = read_intel5300([short])
    assert len(windows) == 1
    w = windows[0]
    assert w.wifi.shape == (270, 1000) and np.isfinite(w.wifi).all()
    assert any(f.startswith("padded: only") and "< window 5.0 s" in f for f in w.flags)
    np.testing.assert_array_equal(w.wifi[:, -1], w.wifi[:, -50])  # edge-hold beyond the data
    with pytest.raises(DataError, match="shorter than one 5.0 s window"):
        read_intel5300([short], short="refuse")


def test_timestamp_wraparound_is_undone(sample: Path, tmp_path: Path) -> None:
    data = sample.read_bytes()
    (ts0,) = struct.unpack_from("<I", data, 3)
    # shift the clock so the 32-bit counter wraps ~10 s into the capture
    wrapped = tmp_path / "wrapped.dat"
    wrapped.write_bytes(_with_timestamps(data, lambda ts: ts - ts0 + (1 << 32) - 10_000_000))
    a, b = read_intel5300([sample]), read_intel5300([wrapped])
    assert len(a) == len(b)
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa.wifi, wb.wifi)
    ts = np.array([4294967000, 4294967290, 5, 300], dtype=np.uint32)
    np.testing.assert_array_equal(_unwrap_us(ts), [0, 290, 301, 596])


def test_receivers_must_overlap_unless_aligned_at_start(sample: Path, tmp_path: Path) -> None:
    later = tmp_path / "later.dat"
    later.write_bytes(_with_timestamps(sample.read_bytes(), lambda ts: ts + 100_000_000))  # +100 s
    with pytest.raises(DataError, match="do not overlap.*align='start'"):
        read_intel5300([sample, later])
    windows = read_intel5300([sample, later], align="start")
    assert windows[0].receivers == (True, True, False)
    np.testing.assert_allclose(windows[0].wifi[:90], windows[0].wifi[90:180], rtol=1e-9)


# ------------------------------------------------------------------------------------------ bad input


def test_zero_byte_file(tmp_path: Path) -> None:
    f = tmp_path / "empty.dat"
    f.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.dat: empty file"):
        read_intel5300([f])


def test_random_bytes(tmp_path: Path) -> None:
    f = tmp_path / "noise.dat"
    f.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError) as err:
        read_intel5300([f])
    assert str(f) in str(err.value) and "CSI Tool" in str(err.value)


def test_truncated_copy(sample: Path, tmp_path: Path) -> None:
    data = sample.read_bytes()
    f = tmp_path / "cut.dat"
    f.write_bytes(data[: len(data) // 2 + 37])  # ends inside a record
    with pytest.raises(DataError) as err:
        read_intel5300([f])
    assert str(f) in str(err.value) and "truncated" in str(err.value)


def test_oversized_record_is_refused_before_csiread_sees_it(sample: Path, tmp_path: Path) -> None:
    # csiread 1.4 copies records into a 1024-byte stack buffer unchecked: this file would segfault it.
    data = sample.read_bytes()
    first = _records(data)[0][1]
    big = struct.pack(">H", 3001) + bytes([0xBB]) + bytes(3000)
    f = tmp_path / "big.dat"
    f.write_bytes(data[:first] + big + data[first : 2 * first])
    with pytest.raises(DataError, match=r"big\.dat: record 1 \(code 0xbb\)"):
        read_intel5300([f])


def test_missing_file_and_too_many_paths(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.dat does not exist"):
        read_intel5300([tmp_path / "nope.dat"])
    with pytest.raises(DataError, match="4 capture files given; expected at most 3"):
        read_intel5300([sample] * 4)
    with pytest.raises(DataError, match="no capture file given"):
        read_intel5300([None, None])
    with pytest.raises(ValueError, match="short="):
        read_intel5300([sample], short="drop")


def test_missing_csiread_says_how_to_install(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "csiread", None)  # makes `import csiread` raise ImportError
    with pytest.raises(DataError, match=r"pip install 'rfsense\[recordings\]'"):
        read_intel5300([sample])
