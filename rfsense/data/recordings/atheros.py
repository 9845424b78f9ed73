"""Atheros CSI Tool captures (`.dat` written by recv_csi; AR9580/QCA9558-class NICs) -> XRF55 WiFi windows.

    windows = list(read_atheros(["rx1.dat"]))           # one file per receiver, up to 3
    stream = read_atheros_stream(Path("rx1.dat"))      # Stream: values (n, 90) on the 5300 grid

Record framing (the tool's writer; csiread.Atheros reads the same): [u16 L][25-byte header][CSI: csi_len bytes
of 10-bit I/Q][payload: payload_len bytes] with L = 25 + csi_len + payload_len. Header, in the byte order of
the host that logged it (MIPS routers write big-endian; detected from the first record): u64 timestamp (us,
the NIC's TSF), u16 csi_len, u16 tx_channel (MHz), u8 err_info, noise_floor, rate, bandwidth, num_tones (56
or 114), nr (receive chains), nc (transmit streams), rssi, rssi_1..3, u16 payload_len.

Every record is checked in Python before csiread sees the file (csiread copies CSI and payload into
4096-byte stack buffers and sizes its output from the file length, both without bound checks): a length
field that disagrees with the header or with the file is refused; a partial last record (capture cut while
writing) is dropped and flagged. csiread then parses exactly the records that were checked.

Mapping onto the XRF55 grid (flagged in every window):
- Subcarriers: 56 tones are the HT20 subcarriers -28..-1, 1..28; 114 tones the HT40 subcarriers -58..-2,
  2..58 (312.5 kHz apart, ascending). Their amplitudes are interpolated by frequency onto the 30 groups of
  the 5300 grid (`rfsense.data.recordings.subcarriers`). For 40 MHz the grid is placed on the 20 MHz
  primary channel: tx_channel is the primary's frequency (ath9k's curchan->channel) and the secondary lies
  above or below it by the fixed 5 GHz pairing (36+40, 44+48, ..., 149+153: primary 36 has its secondary
  above) or, at 2.4 GHz, above for channels 1-4 and below for 8-13; channels 5-7 could be either: the
  lower half is assumed and flagged.
- Antennas: receive chain i is antenna i (nr <= 3); chains a record lacks stay zero, flagged. Transmit
  stream 0 only (as for the 5300: XRF55 transmits from one antenna).
- Amplitude: |H| of the raw CSI; the tool reports no RSSI/AGC scaling, so units differ from the 5300's
  scaled CSI.
- Records with a PHY error (err_info != 0) or without CSI (csi_len 0) are dropped and flagged.
- Time: the header timestamp (us). Windowing, gaps and resampling to 200 Hz:
  `rfsense.data.recordings.wifi.wifi_windows`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rfsense.data.recordings.framing import mapped_file, truncated_tail
from rfsense.data.recordings.subcarriers import (
    SUBCARRIER_SPACING_HZ,
    grid_weights,
    ht_vht_subcarriers,
    primary_offset_hz,
    to_grid,
)
from rfsense.data.recordings.timeline import Stream
from rfsense.data.recordings.wifi import (
    N_ANT,
    N_SC,
    CsiWindow,
    chunk_bounds,
    csiread_chunks,
    finish_stream,
    import_csiread,
    receiver_windows,
)
from rfsense.errors import DataError

__all__ = ["read_atheros", "read_atheros_stream", "sniff_atheros"]

_WHAT = "Atheros CSI Tool log ([u16 length][25-byte header][CSI][payload] records)"
_HEADER = 25
_CSIREAD_BUF = 4096  # csiread's stack buffers for one record's CSI and for its payload
_TONES = {56: 20, 114: 40}  # num_tones -> bandwidth (MHz)
_MAX_CHAINS = 3


@dataclass
class _Scan:
    endian: str  # "<" or ">"
    offsets: list[int] = field(default_factory=list)  # of the complete, checked records
    max_tones: int = 0
    flags: list[str] = field(default_factory=list)


def _header(data: bytes, pos: int, e: str) -> tuple[int, int, int, int, int, int]:
    """(L, csi_len, payload_len, num_tones, nr, nc) of the record at pos (needs pos + 27 <= len(data))."""
    (length,) = struct.unpack_from(e + "H", data, pos)
    (csi_len,) = struct.unpack_from(e + "H", data, pos + 2 + 8)
    (payload_len,) = struct.unpack_from(e + "H", data, pos + 2 + 23)
    return length, csi_len, payload_len, data[pos + 2 + 16], data[pos + 2 + 17], data[pos + 2 + 18]


def _header_problem(hdr: tuple[int, int, int, int, int, int]) -> str | None:
    length, csi_len, payload_len, tones, nr, nc = hdr
    if length != _HEADER + csi_len + payload_len:
        return f"length field {length} != 25 + csi_len {csi_len} + payload_len {payload_len}"
    if tones not in _TONES or not (1 <= nr <= _MAX_CHAINS and 1 <= nc <= _MAX_CHAINS):
        return f"num_tones={tones}, nr={nr}, nc={nc} (expected 56 or 114 tones, 1..3 chains and streams)"
    if csi_len > _CSIREAD_BUF or payload_len > _CSIREAD_BUF:
        return f"csi_len {csi_len} / payload_len {payload_len} over csiread's {_CSIREAD_BUF}-byte buffers"
    if csi_len and csi_len * 8 < tones * nr * nc * 20:
        return f"csi_len {csi_len} too short for {tones} tones x {nr} x {nc} of 20 bits"
    return None


def _endian(data: bytes) -> str | None:
    """Byte order under which the first record's header is consistent; None if neither is."""
    if len(data) < 2 + _HEADER:
        return None
    for e in ("<", ">"):
        if _header_problem(_header(data, 0, e)) is None:
            return e
    return None


def sniff_atheros(path: Path, head: bytes) -> bool:
    """The first record's header is self-consistent in either byte order (length, tones, chains)."""
    return _endian(head) is not None


def _scan(path: Path, data: bytes) -> _Scan:
    e = _endian(data)
    if e is None:
        raise DataError(f"{path}: not an {_WHAT}: the first record's header is inconsistent in both byte orders")
    size = len(data)
    scan = _Scan(e)
    pos = largest = 0
    while pos < size:
        avail = size - pos
        declared = struct.unpack_from(e + "H", data, pos)[0] + 2 if avail >= 2 else 2
        if avail < 2 + _HEADER or declared > avail:
            plausible = declared <= 2 + _HEADER + 2 * _CSIREAD_BUF and (
                avail < 2 + _HEADER or _header_problem(_header(data, pos, e)) is None)
            scan.flags.append(truncated_tail(path, _WHAT, index=len(scan.offsets), offset=pos, declared=declared,
                                             available=avail, largest=largest, plausible=plausible))
            break
        hdr = _header(data, pos, e)
        problem = _header_problem(hdr)
        if problem:
            raise DataError(f"{path}: record {len(scan.offsets)} at offset {pos} is corrupt: {problem}; not a valid "
                            f"{_WHAT}")
        scan.max_tones = max(scan.max_tones, hdr[3])
        scan.offsets.append(pos)
        largest = max(largest, declared)
        pos += declared
    return scan


def _primary_sideband(tx_mhz: int) -> tuple[int, bool]:
    """(index of the primary 20 MHz half of an HT40 channel, 0 = lower; whether it had to be assumed)."""
    if tx_mhz >= 4900:
        return (0 if ((tx_mhz - 5000) // 5) % 8 in (4, 5) else 1), False
    ch = (tx_mhz - 2407) // 5
    if ch <= 4:
        return 0, False
    if ch >= 8:
        return 1, False
    return 0, True


def read_atheros_stream(path: Path, rx: int = 1) -> Stream:
    """Parse one Atheros CSI Tool log -> Stream (times in s of the NIC's TSF, values (n, 90) on the 5300 grid).

    Raises:
        DataError: empty, truncated before its first complete record, corrupt framing, not an Atheros log,
            no record with CSI (the message names the file), or csiread missing.
    """
    with mapped_file(path, _WHAT) as data:
        scan = _scan(path, data)
    n = len(scan.offsets)
    csiread = import_csiread("Atheros")
    endian = "little" if scan.endian == "<" else "big"
    bounds = chunk_bounds(n)
    try:
        reader = csiread.Atheros(str(path), nrxnum=_MAX_CHAINS, ntxnum=_MAX_CHAINS, pl_size=0,
                                 tones=114 if scan.max_tones > 56 else 56, if_report=False,
                                 bufsize=max(b - a for a, b in bounds))
    except Exception as err:
        raise DataError(f"{path}: csiread could not open it ({err}); expected an {_WHAT}") from err
    values = np.zeros((n, N_ANT * N_SC))
    t_s = np.zeros(n)
    keep = np.zeros(n, dtype=bool)
    nr = np.zeros(n, dtype=np.int64)
    mapped: dict[str, None] = {}  # mapping notes in first-seen order
    for a, b in csiread_chunks(path, _WHAT, reader, bounds,
                               lambda a, b: reader.seek(str(path), scan.offsets[a], b - a, endian)):
        keep[a:b] = (np.asarray(reader.err_info) == 0) & (np.asarray(reader.csi_len) > 0)
        t_s[a:b] = np.asarray(reader.timestamp, dtype=np.uint64).astype(np.float64) / 1e6
        nr[a:b] = reader.nr
        num_tones, tx_channel = np.asarray(reader.num_tones), np.asarray(reader.tx_channel)
        for nt, ch in sorted(set(zip(num_tones.tolist(), tx_channel.tolist(), strict=True))):
            rows = np.flatnonzero((num_tones == nt) & (tx_channel == ch))
            weights, note = _layout(nt, ch)
            need = np.flatnonzero(weights.any(axis=1))  # the primary channel's tones and their outer neighbours
            csi = np.asarray(reader.csi)[rows[:, None], need, :, 0]  # (rows, tones, 3 rx chains) of tx stream 0
            values[a + rows] = to_grid(np.abs(csi), weights[need])
            mapped[f"rx{rx}: {note}"] = None
        reader.csi[...] = 0  # csiread writes only the chains (and records) that have CSI: no stale values
    flags = [*scan.flags]
    if not keep.any():
        raise DataError(f"{path}: none of its {n} records carries CSI (all have a PHY error or csi_len 0)")
    if not keep.all():
        flags.append(f"rx{rx}: {int((~keep).sum())} record(s) with a PHY error or without CSI dropped")
    flags += list(mapped)
    if nr[keep].min() < N_ANT:
        flags.append(f"rx{rx}: only {int(nr[keep].min())} of {N_ANT} antennas in {int((nr[keep] < N_ANT).sum())} "
                     "record(s) (zeros)")
    return finish_stream(path, rx, t_s[keep], values[keep], flags, "Atheros")


def _layout(num_tones: int, tx_mhz: int) -> tuple[np.ndarray, str]:
    """Grid weights (num_tones, 30) of one tone layout and the note that says how it was mapped."""
    bw = _TONES[num_tones]
    note = ""
    primary = 0.0
    if bw > 20:
        side, assumed = _primary_sideband(int(tx_mhz))
        primary = primary_offset_hz(bw, side)
        note = f"; 20 MHz primary channel ({('lower', 'upper')[side]} half{', assumed' if assumed else ''}) taken"
    weights, n_edge = grid_weights(ht_vht_subcarriers(bw) * SUBCARRIER_SPACING_HZ, primary)
    edge = f", {n_edge} edge-held" if n_edge else ""
    return weights, f"atheros {bw} MHz at {tx_mhz} MHz, {num_tones} subcarriers -> 30 by frequency{edge}{note}"


def read_atheros(paths: list[str | Path | None], **options: Any) -> Iterator[CsiWindow]:
    """Up to three Atheros CSI Tool logs (one per receiver, rx order) -> XRF55 WiFi windows, lazily.

    Arguments and errors as `rfsense.data.recordings.wifi.receiver_windows` (the TSF clocks of separate NICs
    are independent: use align="start" for receivers started together).
    """
    return receiver_windows(paths, read_atheros_stream, what="Atheros CSI Tool", **options)
