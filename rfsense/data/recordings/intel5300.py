"""Raw Intel 5300 CSI captures (Linux 802.11n CSI Tool `.dat`) -> XRF55-style WiFi windows.

    windows = list(read_intel5300(["rx1.dat", "rx2.dat", "rx3.dat"]))  # one file per receiver
    windows = read_intel5300(["rx1.dat", None, "rx3.dat"], hop_s=1.0)  # rx2 absent: zeros, flagged
    x = np.stack([w.wifi for w in windows])                              # (N, 270, 1000)

Per receiver file: records are framed and checked in Python first (csiread 1.4's C reader copies each
record into a 1024-byte stack buffer without a bound check, so an oversized or corrupt record crashes
the interpreter, and a truncated tail is dropped silently), then parsed by csiread. The scaled CSI
(`get_scaled_csi`: RSSI/AGC/noise-calibrated, antenna permutation undone) of the FIRST transmit
stream gives the amplitude |H| of 3 antennas x 30 subcarriers. XRF55 transmits from one antenna, so
there the first stream is the only one.

Timing: `timestamp_low` is the NIC's 1 MHz clock (32 bit, wraps every ~71.6 min; unwrapped here).
With several receivers the files' timestamps are taken as one clock (e.g. NICs in one host with a
common time base); their first timestamps are compared modulo 2**32, so a file that starts after the
counter wrapped still lands after one that started just before it. Separate NICs count from their own
power-up, so for independent cards started together use `align="start"`, which puts each file's
first packet at t=0. Windowing, gaps and resampling: `rfsense.data.recordings.wifi.wifi_windows`.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rfsense.data.recordings.timeline import Stream, keep_increasing, unwrap_counter
from rfsense.data.recordings.wifi import N_ANT, N_SC, CsiWindow, wifi_windows
from rfsense.errors import DataError

__all__ = ["read_intel5300", "read_intel5300_stream"]

_log = logging.getLogger(__name__)

_CODE_BFEE = 0xBB  # beamforming (CSI) record
_CODE_MAC = 0xC1  # MAC header record (connector_log=0x4)
_BFEE_HEADER = 20  # bytes before the CSI payload in a 0xbb record
_CSIREAD_BUF = 1024  # csiread copies a record's body into `unsigned char buf[1024]`
_WRAP = 1 << 32  # timestamp_low is a 32-bit microsecond counter
_FORMAT = "Linux 802.11n CSI Tool log: records of [2-byte big-endian length][code 0xbb/0xc1][body]"


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
    """32-bit microsecond counter -> int64 microseconds relative to the first value, wraps undone."""
    return unwrap_counter(ts, 32)


def read_intel5300_stream(path: str | Path, rx: int = 1) -> tuple[Stream, int]:
    """Parse one receiver file -> (Stream with times in s from its first packet, raw first timestamp in us).

    Stream values are (n, 90) amplitudes, channel = antenna*30 + subcarrier.

    Raises:
        DataError: missing, empty, truncated, oversized or non-CSI-tool file (the message names it),
            csiread missing, or fewer than 2 usable packets.
    """
    try:
        import csiread
    except ImportError as err:
        raise DataError("reading Intel 5300 .dat files needs csiread: pip install 'rfsense[recordings]'") from err
    path = Path(path)
    if not path.is_file():
        raise DataError(f"rx{rx}: {path} does not exist or is not a file; expected an Intel 5300 .dat capture")
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
    keep = keep_increasing(t_us)
    if not keep.all():
        flags.append(f"rx{rx}: {int((~keep).sum())} duplicate/out-of-order packet(s) dropped")
        t_us, amp = t_us[keep], amp[keep]
    _log.debug("rx%d %s: %d packets over %.2f s", rx, path, len(t_us), (t_us[-1] - t_us[0]) / 1e6)
    return Stream(t_us / 1e6, amp, flags, str(path)), int(ts[0])


def read_intel5300(paths: list[str | Path | None], **options: Any) -> Iterator[CsiWindow]:
    """Read up to three Intel 5300 captures (one per receiver) into XRF55-shaped WiFi windows, lazily.

    Args:
        paths: receiver files in rx order (rx1, rx2, rx3); fewer than 3 or `None` entries leave
            those receivers' 90 channels at zero and flag them.
        fs, window_s, hop_s, short, max_gap_s, align: see `rfsense.data.recordings.wifi.wifi_windows`.

    Returns:
        Windows in time order (see `CsiWindow`), made one at a time as the iterator is consumed.

    Raises:
        DataError: no file, more than 3, a missing/empty/truncated/non-CSI-tool file (the message
            names it), receivers that do not overlap in time, or no window with short="refuse".
        ValueError: non-positive fs/window_s/hop_s/max_gap_s or an unknown `short`/`align`.
    """
    paths = list(paths)
    if len(paths) > 3:
        raise DataError(f"{len(paths)} capture files given; expected at most 3 (one per receiver, rx1..rx3)")
    if not any(p is not None for p in paths):
        raise DataError("no capture file given; expected 1 to 3 Intel 5300 .dat files (one per receiver)")
    streams: list[Stream | None] = []
    ref: int | None = None
    for r, p in enumerate(paths, start=1):
        if p is None:
            streams.append(None)
            continue
        stream, ts0 = read_intel5300_stream(p, r)
        ref = ts0 if ref is None else ref
        # One clock: offsets between files' first raw timestamps, modulo 2**32 read as signed.
        stream.t_s = stream.t_s + ((ts0 - ref + _WRAP // 2) % _WRAP - _WRAP // 2) / 1e6
        streams.append(stream)
    return wifi_windows(streams, **options)
