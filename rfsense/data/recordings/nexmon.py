"""nexmon_csi captures (Broadcom NICs: bcm43455c0 on a Raspberry Pi, bcm4358, bcm4366c0) -> XRF55 WiFi windows.

    windows = list(read_nexmon(["rx1.pcap"]))          # tcpdump of UDP port 5500, one file per receiver
    stream = read_nexmon_stream(Path("rx1.pcap"))     # Stream: values (n, 90) on the 5300 grid

File: a libpcap capture (Ethernet link type) of the UDP packets nexmon_csi sends, one packet per (frame,
receive core, spatial stream): Ethernet source "NEXMON", 42 bytes of Ethernet/IP/UDP headers, then magic
0x11111111 (or 0x1111 + RSSI + frame control in the pull-46 variant), source MAC, u16 sequence number, u16
core (bits 0-2) and spatial stream (bits 3-5), u16 chanspec, u16 chip version, and 4 bytes per FFT bin.

The pcap framing and every nexmon header are checked in Python before csiread sees the file (csiread reads
each packet into a 4096-byte stack buffer and trusts every length): records shorter than the headers, CSI
sizes that disagree with the chanspec's bandwidth, mixed bandwidths or chips, and corrupt length fields are
refused; a partial last record is dropped and flagged. The chip and bandwidth come from the data (chip
version and chanspec), not from the user: csiread returns all-zero CSI for a chip it does not know, so an
unknown chip version is refused, and a capture whose CSI decodes to zeros anyway is refused too.

Mapping onto the XRF55 grid (flagged in every window):
- Subcarriers: bins are in FFT order (bin i is subcarrier i, or i - nfft for i >= nfft/2; checked against the
  empty guard band, flagged if the data disagree). Only the occupied data subcarriers are used (pilots and
  nulls left out: nexmon reports the pilot bins with a different gain). The grid is placed on the 20 MHz
  primary channel named by the chanspec's control sideband (for 40/80 MHz captures, flagged) and amplitudes
  are interpolated by frequency (`rfsense.data.recordings.subcarriers`).
- Records: the packets of one received frame (same sequence number, consecutive) form one record. Receive
  cores are the antennas, lowest core first; a capture with more than 3 cores (bcm4366c0 has 4) keeps cores
  0-2 and flags the rest; fewer than 3 leave zeros, flagged. Spatial stream 0 only. Frames missing one of the
  used cores are dropped and flagged (nexmon drops CSI under load, nexmon_csi#390).
- Amplitude: |H| as decoded by csiread (no RSSI scaling). Time: the pcap timestamp of the frame's first
  packet (host clock, so receivers on NTP-synchronised hosts share one clock).
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
    CsiWindow,
    chunk_bounds,
    csiread_chunks,
    finish_stream,
    import_csiread,
    receiver_windows,
)
from rfsense.errors import DataError

__all__ = ["CHIPS", "read_nexmon", "read_nexmon_stream", "sniff_nexmon"]

_WHAT = "nexmon_csi pcap (tcpdump of UDP port 5500 on an Ethernet link)"
_PCAP_MAGIC = {  # magic bytes -> (struct byte order, fractional timestamp unit in s)
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_LINKTYPE_ETHERNET = 1
_NET_HEADERS = 42  # Ethernet + IPv4 + UDP: csiread skips exactly these
_NEX_HEADER = 18  # magic .. chip version
_CSIREAD_BUF = 4096  # csiread's stack buffer for one packet's CSI
# Chip version field -> csiread chip name (csiread's infer_chip_bw table).
CHIPS = {0x0065: "43455c0", 0xDEAD: "4358", 0xE834: "4366c0"}
_BW_BITS = {0x1000: 20, 0x1800: 40, 0x2000: 80, 0x2800: 160, 0x3000: 160}  # chanspec bits 11-13


@dataclass
class _Scan:
    """The checked NEXMON packets: pcap record offsets and the header fields csiread will report."""

    offsets: np.ndarray  # (n,) file offset of each packet's pcap record
    seq: np.ndarray  # (n,) sequence number
    core: np.ndarray  # (n,) receive core
    spatial: np.ndarray  # (n,) spatial stream
    pull46: bool
    chanspec: int
    chip_version: int
    flags: list[str] = field(default_factory=list)


def sniff_nexmon(path: Path, head: bytes) -> bool:
    """A pcap file (any of the four magics) whose first bytes hold a packet from the "NEXMON" source address."""
    return head[:4] in _PCAP_MAGIC and b"NEXMON" in head


def _scan(path: Path, data: bytes) -> _Scan:
    size = len(data)
    if size < 24 or data[:4] not in _PCAP_MAGIC:
        raise DataError(f"{path}: not a pcap file (magic {data[:4].hex() or 'missing'}); expected a {_WHAT}")
    e, _ = _PCAP_MAGIC[data[:4]]
    snaplen, linktype = struct.unpack_from(e + "II", data, 16)
    if linktype != _LINKTYPE_ETHERNET:
        raise DataError(f"{path}: pcap link type {linktype}, expected 1 (Ethernet): capture nexmon_csi with "
                        "`tcpdump -i wlan0 dst port 5500 -w FILE` (not -i any)")
    flags: list[str] = []
    nex: list[tuple[int, int, int]] = []  # (pcap record index, offset, caplen) of each NEXMON packet
    pos, k, largest = 24, 0, 0
    max_len = max(snaplen, 65535)
    caplen_at = struct.Struct(e + "I").unpack_from
    while pos < size:
        avail = size - pos
        caplen = caplen_at(data, pos + 8)[0] if avail >= 16 else 0
        if avail < 16 or 16 + caplen > avail:
            plausible = avail < 16 or _NET_HEADERS <= caplen <= max_len
            flags.append(truncated_tail(path, _WHAT, index=k, offset=pos, declared=16 + caplen, available=avail,
                                        largest=largest, plausible=plausible))
            break
        if caplen > max_len or caplen < _NET_HEADERS:
            raise DataError(f"{path}: pcap record {k} at offset {pos} has a corrupt length ({caplen} bytes; "
                            f"csiread needs at least {_NET_HEADERS} and the snap length is {snaplen}); not a valid "
                            f"{_WHAT}")
        if data[pos + 22 : pos + 28] == b"NEXMON":  # Ethernet source address
            nex.append((k, pos, caplen))
        largest = max(largest, 16 + caplen)
        pos += 16 + caplen
        k += 1
    if not nex:
        raise DataError(f"{path}: no nexmon_csi packet (Ethernet source 'NEXMON') among {k} pcap records; "
                        f"expected a {_WHAT}")
    scan = _check_nexmon_packets(path, data, np.asarray(nex, dtype=np.int64))
    scan.flags = flags
    return scan


def _check_nexmon_packets(path: Path, data: bytes, nex: np.ndarray) -> _Scan:
    """Check every NEXMON packet's header against the first one's and its CSI size against the bandwidth.

    nex: (n, 3) pcap record index, offset, caplen. Vectorised: the fields are gathered at their offsets.
    """
    caplen = nex[:, 2]

    def where(i: int) -> str:
        return f"{path}: nexmon packet (pcap record {nex[i, 0]} at offset {nex[i, 1]})"

    short = np.flatnonzero(caplen < _NET_HEADERS + _NEX_HEADER)
    if len(short):
        i = int(short[0])
        raise DataError(f"{where(i)} has {caplen[i]} bytes, fewer than its headers ({_NET_HEADERS + _NEX_HEADER})")
    h = nex[:, 1] + 16 + _NET_HEADERS  # nexmon header of each packet
    # A copy of the headers (n, 18): no view of the (memory-mapped) file outlives this expression.
    head = np.frombuffer(data, dtype=np.uint8)[h[:, None] + np.arange(_NEX_HEADER)].astype(np.int64)

    def u16(off: int) -> np.ndarray:
        return head[:, off] | head[:, off + 1] << 8

    m_lo, m_hi, chanspec, chip = u16(0), u16(2), u16(14), u16(16)
    pull46 = ~((m_lo == 0x1111) & (m_hi == 0x1111))
    bad = np.flatnonzero(m_lo != 0x1111)
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{where(i)}: magic {data[h[i]:h[i] + 4].hex()} is neither 11111111 nor 1111 (pull-46 "
                        "variant)")
    bw = np.array([_BW_BITS.get(int(c) & 0x3800, 0) for c in chanspec])
    bad = np.flatnonzero((bw == 0) | (bw > 80))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{where(i)}: chanspec 0x{chanspec[i]:04x} gives bandwidth {bw[i] or 'unknown'}; csiread 1.4 "
                        "decodes 20/40/80 MHz nexmon CSI")
    bad = np.flatnonzero((bw > 20) & ((chanspec >> 8) & 0x7 >= bw // 20))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{where(i)}: chanspec 0x{chanspec[i]:04x} names control sub-channel "
                        f"{(chanspec[i] >> 8) & 0x7} of a {bw[i]} MHz channel (which has {bw[i] // 20})")
    n_csi = caplen - _NET_HEADERS - _NEX_HEADER
    want = 4 * (bw * 16 // 5)  # 4 bytes per FFT bin, bw * 3.2 bins
    bad = np.flatnonzero((n_csi != want) | (n_csi > _CSIREAD_BUF))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{where(i)}: {n_csi[i]} CSI bytes, expected {want[i]} for {bw[i]} MHz (4 bytes per FFT bin)")
    bad = np.flatnonzero((pull46 != pull46[0]) | ((chanspec & 0x3F00) != (chanspec[0] & 0x3F00)) | (chip != chip[0]))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{where(i)}: header variant, bandwidth/sideband or chip differs from the first packet's "
                        f"(chanspec 0x{chanspec[i]:04x} vs 0x{chanspec[0]:04x}, chip 0x{chip[i]:04x} vs "
                        f"0x{chip[0]:04x}); split the capture per channel")
    core_ss = head[:, 12] | head[:, 13]  # as csiread reads them
    return _Scan(nex[:, 1], u16(10), core_ss & 0x7, (core_ss >> 3) & 0x7, bool(pull46[0]), int(chanspec[0]),
                 int(chip[0]))


def read_nexmon_stream(path: Path, rx: int = 1, *, chip: str | None = None) -> Stream:
    """Parse one nexmon_csi pcap -> Stream (times in s of the capturing host, values (n, 90) on the 5300 grid).

    Args:
        chip: csiread chip name ("4339", "43455c0", "4358", "4366c0") for a chip version the table does not
            know; by default the chip comes from the packets' chip version.

    Raises:
        DataError: empty, not a pcap, wrong link type, corrupt framing or headers, no nexmon packet, unknown
            chip, CSI that decodes to zeros (the message names the file), or csiread missing.
    """
    with mapped_file(path, _WHAT) as data:
        scan = _scan(path, data)
        frac = _PCAP_MAGIC[data[:4]][1]
    chip = chip or CHIPS.get(scan.chip_version)
    if chip is None:
        known = ", ".join(f"0x{v:04x} bcm{c}" for v, c in CHIPS.items())
        raise DataError(f"{path}: nexmon chip version 0x{scan.chip_version:04x} is not one csiread decodes "
                        f"(known: {known}); it would return all-zero CSI")
    bw = _BW_BITS[scan.chanspec & 0x3800]
    flags = list(scan.flags)
    cores = np.unique(scan.core[scan.spatial == 0])
    if not len(cores):
        raise DataError(f"{path}: no packet of spatial stream 0 among {len(scan.spatial)} nexmon packets")
    if len(cores) > N_ANT:
        flags.append(f"rx{rx}: cores {', '.join(map(str, cores[N_ANT:]))} dropped (3 antennas kept)")
        cores = cores[:N_ANT]
    if len(cores) < N_ANT:
        flags.append(f"rx{rx}: only {len(cores)} of {N_ANT} receive cores captured (zeros for the rest)")
    # Subcarriers: FFT order; occupied data bins only, and of those the primary channel's and their neighbours.
    nfft = bw * 16 // 5
    sideband = (scan.chanspec >> 8) & 0x7
    k = ht_vht_subcarriers(bw, pilots=False)
    weights, n_edge = grid_weights(k * SUBCARRIER_SPACING_HZ, primary_offset_hz(bw, sideband) if bw > 20 else 0.0)
    need = np.flatnonzero(weights.any(axis=1))
    guard = np.setdiff1d(np.arange(nfft), ht_vht_subcarriers(bw) % nfft)
    bounds = chunk_bounds(len(scan.offsets), np.r_[True, scan.seq[1:] != scan.seq[:-1]])  # never split a frame
    csiread = import_csiread("nexmon")
    cls = csiread.NexmonPull46 if scan.pull46 else csiread.Nexmon
    try:
        reader = cls(str(path), chip=chip, bw=bw, if_report=False, bufsize=max(b - a for a, b in bounds))
    except Exception as err:
        raise DataError(f"{path}: csiread could not open it ({err}); expected a {_WHAT}") from err
    times, values, n_incomplete = [], [], 0
    for a, b in csiread_chunks(path, _WHAT, reader, bounds,
                               lambda a, b: reader.seek(str(path), int(scan.offsets[a]), b - a)):
        csi = np.asarray(reader.csi)
        if a == 0:
            probe = np.abs(csi[:1000])
            if probe[:, guard].mean() > 0.25 * probe[:, k % nfft].mean():
                flags.append(f"rx{rx}: guard band not empty: FFT bin order unconfirmed")
        t = np.asarray(reader.sec, dtype=np.float64) + np.asarray(reader.usec, dtype=np.float64) * frac
        t_f, v, bad = _frames(t, scan.seq[a:b], scan.core[a:b], scan.spatial[a:b], csi, cores,
                              (k % nfft)[need], weights[need])
        times.append(t_f)
        values.append(v)
        n_incomplete += bad
    if n_incomplete:
        flags.append(f"rx{rx}: {n_incomplete} frame(s) missing a receive core dropped")
    edge = f", {n_edge} edge-held" if n_edge else ""
    note = f"; 20 MHz primary channel (sub-channel {sideband + 1} of {bw // 20}) taken" if bw > 20 else ""
    flags.append(f"rx{rx}: nexmon {bw} MHz, {len(k)} data subcarriers -> 30 by frequency{edge}{note}")
    return finish_stream(path, rx, np.concatenate(times), np.concatenate(values), flags, "nexmon")


def _frames(t: np.ndarray, seq: np.ndarray, core: np.ndarray, spatial: np.ndarray, csi: np.ndarray,
            cores: np.ndarray, bins: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Packets (CSI (n, nfft) complex) -> (frame times, values (m, 90), frames dropped for a missing core).

    A frame is a run of consecutive spatial-stream-0 packets with one sequence number; `cores` are the
    antennas in order; `bins`/`weights` the FFT bins used and their grid weights.
    """
    sel = np.flatnonzero(spatial == 0)
    if not len(sel):
        return np.zeros(0), np.zeros((0, N_ANT * weights.shape[1])), 0
    t, seq, core = t[sel], seq[sel], core[sel]
    slot = np.searchsorted(cores, core)
    used = np.isin(core, cores)
    fid = np.concatenate([[0], np.cumsum(seq[1:] != seq[:-1])])
    n_frames = int(fid[-1]) + 1
    first = np.flatnonzero(np.r_[True, fid[1:] != fid[:-1]])
    grid = np.zeros((n_frames, N_ANT, len(bins)))  # antenna-major: each packet fills one contiguous row
    have = np.zeros((n_frames, N_ANT), dtype=bool)
    grid[fid[used], slot[used]] = np.abs(csi[np.ix_(sel[used], bins)])
    have[fid[used], slot[used]] = True
    complete = have[:, : len(cores)].all(axis=1)
    return t[first][complete], to_grid(grid[complete].transpose(0, 2, 1), weights), int((~complete).sum())


def read_nexmon(paths: list[str | Path | None], **options: Any) -> Iterator[CsiWindow]:
    """Up to three nexmon_csi pcaps (one per receiver, rx order) -> XRF55 WiFi windows, lazily.

    Arguments and errors as `rfsense.data.recordings.wifi.receiver_windows`.
    """
    return receiver_windows(paths, read_nexmon_stream, what="nexmon_csi", **options)
