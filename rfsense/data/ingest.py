"""Raw Intel 5300 CSI captures (Linux 802.11n CSI Tool `.dat`) -> XRF55-style WiFi windows.

    windows = read_intel5300(["rx1.dat", "rx2.dat", "rx3.dat"])        # one file per receiver
    windows = read_intel5300(["rx1.dat", None, "rx3.dat"], hop_s=1.0)  # rx2 absent: zeros, flagged
    x = np.stack([w.wifi for w in windows])                              # (N, 270, 1000)

Per receiver file: records are framed and checked in Python first (csiread 1.4's C reader copies each
record into a 1024-byte stack buffer without a bound check, so an oversized or corrupt record crashes
the interpreter, and a truncated tail is dropped silently), then parsed by csiread. The scaled CSI
(`get_scaled_csi`: RSSI/AGC/noise-calibrated, antenna permutation undone) of the FIRST transmit
stream gives the amplitude |H| of 3 antennas x 30 subcarriers. XRF55 transmits from one antenna, so
there the first stream is the only one.

Timing: `timestamp_low` is the NIC's 1 MHz clock (32 bit, wraps every ~71.6 min; unwrapped here).
Packets arrive irregularly, so each receiver's amplitudes are linearly interpolated onto a uniform
`fs` grid (edge-hold outside the data); gaps between packets longer than `max_gap_s` are flagged.
With several receivers the grid covers their COMMON time span, which assumes the files' timestamps
share one clock (e.g. NICs in one host with a common time base). Separate NICs count from their own
power-up, so for independent cards started together use `align="start"`, which puts each file's
first packet at t=0.

Channel order is XRF55's: rx*90 + antenna*30 + subcarrier (rx = position in `paths`).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rfsense.errors import DataError

__all__ = ["CsiWindow", "read_intel5300"]

_log = logging.getLogger(__name__)

N_RX = 3  # receivers (files) in XRF55
N_ANT = 3  # antennas per Intel 5300
N_SC = 30  # subcarrier groups reported by the CSI tool
_CODE_BFEE = 0xBB  # beamforming (CSI) record
_CODE_MAC = 0xC1  # MAC header record (connector_log=0x4)
_BFEE_HEADER = 20  # bytes before the CSI payload in a 0xbb record
_CSIREAD_BUF = 1024  # csiread copies a record's body into `unsigned char buf[1024]`
_WRAP = 1 << 32  # timestamp_low is a 32-bit microsecond counter
_FORMAT = "Linux 802.11n CSI Tool log: records of [2-byte big-endian length][code 0xbb/0xc1][body]"


@dataclass
class CsiWindow:
    """One XRF55-shaped WiFi sample cut from a capture.

    wifi: (270, round(window_s * fs)) float64 amplitude, (270, 1000) with the defaults; channel
        rx*90 + antenna*30 + subcarrier; rows of a receiver without data are zeros.
    receivers: which of rx 1..3 had data.
    start_s, end_s: window bounds in seconds from the start of the common time span (end exclusive,
        end_s - start_s == window_s, also for a padded window).
    flags: human-readable notes: "rx2 missing: no file given", "padded: ...", "gap 0.60 s
        interpolated at 12.31 s (rx1)", "rx1: packet rate 9.8 Hz < 100 Hz, mostly interpolated", ...
    sources: the receiver files, in rx order.
    """

    wifi: np.ndarray
    receivers: tuple[bool, bool, bool]
    start_s: float
    end_s: float
    flags: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass
class _Rx:
    """One parsed receiver file: packet times (us, int64, unwrapped) and amplitudes (n, 90)."""

    path: Path
    t_us: np.ndarray
    amp: np.ndarray
    flags: list[str]


def _scan_records(path: Path, data: bytes) -> int:
    """Walk the record framing of a CSI-tool log; returns the number of 0xbb records.

    Raises DataError for anything csiread would misread or crash on: truncation, zero-length or
    oversized records, or a 0xbb header whose antenna counts and payload size disagree.
    """
    size = len(data)
    pos = n_bfee = k = 0
    while pos < size:
        if pos + 3 > size:
            raise DataError(
                f"{path}: truncated: {size - pos} stray byte(s) at offset {pos} after record {k}; expected a {_FORMAT}"
            )
        (field_len,) = struct.unpack_from(">H", data, pos)
        code = data[pos + 2]
        end = pos + 2 + field_len
        if field_len == 0:
            raise DataError(f"{path}: record {k} at offset {pos} has length 0; not a {_FORMAT}")
        if end > size:
            raise DataError(
                f"{path}: truncated or not a CSI-tool file: record {k} at offset {pos} declares {field_len} "
                f"bytes but only {size - pos - 2} remain; expected a {_FORMAT}"
            )
        if code in (_CODE_BFEE, _CODE_MAC) and field_len - 1 > _CSIREAD_BUF:
            raise DataError(
                f"{path}: record {k} (code 0x{code:x}) at offset {pos} has {field_len - 1} bytes; csiread reads "
                f"at most {_CSIREAD_BUF} (a valid 0xbb record has at most 572); corrupt file, or MAC payloads "
                "too long: log with connector_log=0x1"
            )
        if code == _CODE_BFEE:
            body = field_len - 1
            if body < _BFEE_HEADER:
                raise DataError(
                    f"{path}: 0xbb record {k} at offset {pos} has {body} bytes; a CSI header needs 20"
                )
            nrx, ntx = data[pos + 3 + 8], data[pos + 3 + 9]
            (csi_len,) = struct.unpack_from("<H", data, pos + 3 + 16)
            if not (1 <= nrx <= N_ANT and 1 <= ntx <= 3 and csi_len == 60 * nrx * ntx + 12):
                raise DataError(
                    f"{path}: 0xbb record {k} at offset {pos} is corrupt: Nrx={nrx}, Ntx={ntx}, CSI length "
                    f"{csi_len} (expected Nrx in 1..3, Ntx in 1..3, length 60*Nrx*Ntx+12)"
                )
            if body < _BFEE_HEADER + csi_len:
                raise DataError(f"{path}: 0xbb record {k} at offset {pos} is shorter than its CSI payload")
            n_bfee += 1
        pos = end
        k += 1
    if n_bfee == 0:
        raise DataError(
            f"{path}: no CSI (0xbb) records in {size} bytes; expected a {_FORMAT} captured with connector_log=0x1"
        )
    return n_bfee


def _unwrap_us(ts: np.ndarray) -> np.ndarray:
    """32-bit microsecond counter -> int64 microseconds relative to the first value, wraps undone.

    Consecutive steps are taken modulo 2**32 and read as signed, so a backward step (reordered
    packet) stays small and negative instead of becoming +71 minutes.
    """
    d = np.diff(ts.astype(np.int64))
    d = (d + _WRAP // 2) % _WRAP - _WRAP // 2
    return np.concatenate([[0], np.cumsum(d)])


def _read_rx(path: Path, rx: int) -> tuple[_Rx, int]:
    """Parse one receiver file -> (_Rx with times relative to its first packet, raw first timestamp)."""
    try:
        import csiread
    except ImportError as err:
        raise DataError("reading Intel 5300 .dat files needs csiread: pip install csiread") from err
    if not path.is_file():
        raise DataError(
            f"rx{rx}: {path} does not exist or is not a file; expected an Intel 5300 .dat capture"
        )
    data = path.read_bytes()
    if not data:
        raise DataError(f"{path}: empty file (0 bytes); expected a {_FORMAT}")
    n_scan = _scan_records(path, data)
    try:
        # ntxnum=3 so csiread accepts every stream count the 5300 can report; only stream 0 is used.
        reader = csiread.Intel(str(path), nrxnum=N_ANT, ntxnum=3, if_report=False)
        reader.read()
        # Call get_scaled_csi exactly once per reader: csiread 1.4 keeps RSS state in the reader and a
        # second call returns slightly different values.
        scaled = np.asarray(reader.get_scaled_csi())  # (n, 30 sc, 3 ant, 3 tx) complex
    except Exception as err:  # csiread raises ValueError, or a bare Exception for broken packets
        raise DataError(f"{path}: csiread could not parse it ({err}); expected a {_FORMAT}") from err
    if reader.count != n_scan:
        raise DataError(f"{path}: csiread parsed {reader.count} CSI records but the file frames {n_scan}")
    flags: list[str] = []
    amp = np.abs(scaled[:, :, :, 0]).transpose(0, 2, 1).reshape(len(scaled), N_ANT * N_SC)  # (n, ant*30+sc)
    ts = np.asarray(reader.timestamp_low, dtype=np.uint32)
    nrx = np.asarray(reader.Nrx)
    if nrx.min() < N_ANT:
        flags.append(f"rx{rx}: only {int(nrx.min())} of {N_ANT} antennas reported in some packets (zeros)")
    # An all-zero CSI report makes the RSSI scaling divide by zero (NaN); drop such packets.
    ok = np.isfinite(amp).all(axis=1)
    if not ok.all():
        flags.append(f"rx{rx}: {int((~ok).sum())} packet(s) with invalid CSI dropped")
        amp, ts = amp[ok], ts[ok]
    if len(ts) < 2:
        raise DataError(f"{path}: {len(ts)} usable CSI packet(s); need at least 2 to resample")
    t_us = _unwrap_us(ts)
    # Duplicate or reordered packets would break interpolation; keep the first of each strictly
    # increasing run (reordering on the netlink path is rare and a few ms at most).
    keep = np.concatenate([[True], t_us[1:] > np.maximum.accumulate(t_us)[:-1]])
    if not keep.all():
        flags.append(f"rx{rx}: {int((~keep).sum())} duplicate/out-of-order packet(s) dropped")
        t_us, amp = t_us[keep], amp[keep]
    _log.debug("rx%d %s: %d packets over %.2f s", rx, path, len(t_us), (t_us[-1] - t_us[0]) / 1e6)
    return _Rx(path, t_us, amp, flags), int(ts[0])


def _interp_grid(t: np.ndarray, amp: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of amp (n, C) at sorted times t (n,) onto grid (m,); edge-hold outside.

    -> (C, m). One searchsorted for all channels instead of C calls to np.interp.
    """
    g = np.clip(grid, t[0], t[-1])
    i = np.clip(np.searchsorted(t, g, side="right") - 1, 0, len(t) - 2)
    w = (g - t[i]) / (t[i + 1] - t[i])
    return (amp[i] * (1.0 - w)[:, None] + amp[i + 1] * w[:, None]).T


def read_intel5300(
    paths: list[str | Path | None],
    *,
    fs: float = 200.0,
    window_s: float = 5.0,
    hop_s: float | None = None,
    short: str = "pad",
    max_gap_s: float = 0.5,
    align: str = "clock",
) -> list[CsiWindow]:
    """Read up to three Intel 5300 captures (one per receiver) into XRF55-shaped WiFi windows.

    Args:
        paths: receiver files in rx order (rx1, rx2, rx3); fewer than 3 or `None` entries leave
            those receivers' 90 channels at zero and flag them.
        fs: output sample rate in Hz (XRF55: 200).
        window_s: window length in seconds (XRF55: 5 s -> 1000 samples).
        hop_s: step between window starts; None = window_s (non-overlapping). A tail shorter than
            a window is dropped (logged).
        short: policy for a common span shorter than one window: "pad" (edge-hold to full length,
            flagged) or "error" (DataError).
        max_gap_s: packet gaps longer than this are flagged in every window they touch (they are
            still linearly interpolated).
        align: "clock" uses the files' timestamps as one clock and cuts the common span; "start"
            treats each file's first packet as t=0 (independent NIC clocks started together).

    Returns:
        Windows in time order; see `CsiWindow` (wifi is (270, 1000) float64 with the defaults).

    Raises:
        DataError: no file, more than 3, a missing/empty/truncated/non-CSI-tool file (the message
            names it), receivers that do not overlap in time, or a short capture with short="error".
        ValueError: non-positive fs/window_s/hop_s/max_gap_s or an unknown `short`/`align`.
    """
    paths = list(paths)
    if len(paths) > N_RX:
        raise DataError(
            f"{len(paths)} capture files given; expected at most {N_RX} (one per receiver, rx1..rx3)"
        )
    if not any(p is not None for p in paths):
        raise DataError("no capture file given; expected 1 to 3 Intel 5300 .dat files (one per receiver)")
    if fs <= 0 or window_s <= 0 or max_gap_s <= 0 or (hop_s is not None and hop_s <= 0):
        raise ValueError(
            f"fs={fs}, window_s={window_s}, hop_s={hop_s}, max_gap_s={max_gap_s}: all must be > 0"
        )
    if short not in ("pad", "error"):
        raise ValueError(f"short={short!r}; expected 'pad' or 'error'")
    if align not in ("clock", "start"):
        raise ValueError(f"align={align!r}; expected 'clock' or 'start'")
    win = int(round(window_s * fs))
    hop = int(round((hop_s if hop_s is not None else window_s) * fs))
    if win < 2 or hop < 1:
        raise ValueError(f"window_s={window_s} and hop_s={hop_s} at fs={fs} give {win} / {hop} samples")

    paths = paths + [None] * (N_RX - len(paths))
    rxs: list[_Rx | None] = []
    first_raw: list[int] = []
    for r, p in enumerate(paths, start=1):
        if p is None:
            rxs.append(None)
            continue
        rx, ts0 = _read_rx(Path(p), r)
        rxs.append(rx)
        first_raw.append(ts0)

    # Put all receivers on one time axis in seconds. With align="clock", offsets between the files'
    # first raw timestamps are taken modulo 2**32 (signed), so a file that starts after the counter
    # wrapped still lands after one that started just before it.
    present = [rx for rx in rxs if rx is not None]
    ref = first_raw[0]
    for rx, ts0 in zip(present, first_raw, strict=True):
        offset = 0 if align == "start" else ((ts0 - ref + _WRAP // 2) % _WRAP - _WRAP // 2)
        rx.t_us = rx.t_us + offset
    t0_us = max(int(rx.t_us[0]) for rx in present)
    t1_us = min(int(rx.t_us[-1]) for rx in present)
    if t1_us < t0_us:
        spans = ", ".join(
            f"{rx.path.name} {rx.t_us[0] / 1e6:.2f}..{rx.t_us[-1] / 1e6:.2f} s" for rx in present
        )
        raise DataError(
            f"receiver captures do not overlap in time ({spans}); their NIC clocks are not comparable: "
            "use align='start' if the captures were started together"
        )
    if len(present) > 1:
        lost = max(float(rx.t_us[-1] - rx.t_us[0]) for rx in present) / 1e6 - (t1_us - t0_us) / 1e6
        if lost > 0:
            _log.info(
                "aligned %d receivers on their common span %.2f s (%.2f s outside it dropped)",
                len(present),
                (t1_us - t0_us) / 1e6,
                lost,
            )

    span_s = (t1_us - t0_us) / 1e6
    n_grid = int(np.floor(span_s * fs + 1e-9)) + 1
    base_flags: list[str] = []
    for r, rx in enumerate(rxs, start=1):
        if rx is None:
            base_flags.append(f"rx{r} missing: no file given")
        else:
            base_flags.extend(rx.flags)
            # XRF55 sends 200 packets/s; far fewer means the windows are mostly interpolation.
            rate = 1e6 / float(np.median(np.diff(rx.t_us)))
            if rate < fs / 2:
                base_flags.append(f"rx{r}: packet rate {rate:.1f} Hz < {fs / 2:g} Hz, mostly interpolated")
    if n_grid < win:
        if short == "error":
            raise DataError(
                f"capture {span_s:.2f} s ({', '.join(str(rx.path) for rx in present)}) is shorter than one "
                f"{window_s:.1f} s window; use short='pad' to edge-hold it to full length"
            )
        base_flags.append(f"padded: capture {span_s:.2f} s < window {window_s:.1f} s (edge-hold)")
        starts = [0]
        n_grid = win  # grid times past the data are clipped -> edge-hold
    else:
        starts = list(range(0, n_grid - win + 1, hop))
        tail = (n_grid - (starts[-1] + win)) / fs
        if tail > 0:
            _log.info("dropped the last %.2f s of the capture (shorter than a window)", tail)

    grid_s = np.arange(n_grid) / fs  # seconds from the common start
    stacked = np.zeros((N_RX * N_ANT * N_SC, n_grid))
    gaps: list[tuple[float, float, int]] = []  # (start_s, length_s, rx)
    for r, rx in enumerate(rxs):
        if rx is None:
            continue
        t_s = (rx.t_us - t0_us) / 1e6
        stacked[r * 90 : (r + 1) * 90] = _interp_grid(t_s, rx.amp, grid_s)
        dt = np.diff(t_s)
        for i in np.flatnonzero(dt > max_gap_s):
            gaps.append((float(t_s[i]), float(dt[i]), r + 1))

    receivers = tuple(rx is not None for rx in rxs)
    sources = [str(p) for p in paths if p is not None]
    out: list[CsiWindow] = []
    for s in starts:
        ws, we = s / fs, s / fs + window_s
        flags = list(base_flags)
        for g0, glen, r in gaps:
            if g0 < we and g0 + glen > ws:
                flags.append(f"gap {glen:.2f} s interpolated at {g0:.2f} s (rx{r})")
        out.append(
            CsiWindow(
                wifi=stacked[:, s : s + win].copy(),
                receivers=receivers,  # type: ignore[arg-type]
                start_s=ws,
                end_s=we,
                flags=flags,
                sources=sources,
            )
        )
    _log.info("%s: %d window(s) of %.1f s at %g Hz", ", ".join(sources), len(out), window_s, fs)
    return out
