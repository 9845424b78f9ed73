"""PicoScenes `.csi` captures (RXS frames; QCA9300 and IWL5300 receivers) -> XRF55 WiFi windows.

    windows = list(read_picoscenes(["rx1.csi"]))          # one file per receiver, up to 3
    stream = read_picoscenes_stream(Path("rx1.csi"))     # Stream: values (n, 90) on the 5300 grid

File: frames of [u32 length][u32 magic 0x20150315][u16 version 1][u8 n segments][segments][802.11 MPDU],
each segment [u32 length][u8 name length][name][u16 version][body] ("RxSBasic": timestamp, channel and
antennas; "CSI": the channel matrix; others). csiread.Picoscenes follows every length field and casts the
bodies to C structs without a bound check, so the whole walk is repeated in Python first, with csiread's own
rules (its name matching, struct sizes and buffer arithmetic): a length that runs outside its frame, a body
shorter than its struct, a CSI buffer too short for its tone/antenna counts, or an antenna count of zero
(csiread divides by it) is refused; a partial last frame is dropped and flagged. csiread 1.4.1 decodes the
CSI of QCA9300 and IWL5300 receivers only (AX200/AX210, USRP and other devices would come back as zeros):
other devices are refused by name. csiread then parses exactly the checked frames, with its per-frame
arrays sized from the largest CSI seen (too small a size makes csiread skip a frame's CSI silently).

Mapping onto the XRF55 grid (flagged in every window):
- Subcarriers: csiread's subcarrier indices for the frame's format and bandwidth (HT/VHT 312.5 kHz, HE
  78.125 kHz: index x the CSI segment's subcarrier bandwidth = frequency), relative to the channel centre.
  The grid is placed on the 20 MHz primary channel (RxSBasic control frequency minus centre frequency; for
  40/80/160 MHz captures flagged; RxSBasic v1/v2 do not record it: the lowest sub-channel is assumed,
  flagged) and amplitudes are interpolated by frequency (`rfsense.data.recordings.subcarriers`).
- Antennas: receive chain i is antenna i (at most 3); fewer than 3 leave zeros, flagged. Transmit stream 0.
- Amplitude: |H| as decoded (no RSSI scaling). Time: RxSBasic timestamp (us, the NIC's clock); a capture whose
  timestamps are all equal (csiread#39) is refused.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rfsense.data.recordings.framing import mapped_file, truncated_tail
from rfsense.data.recordings.subcarriers import grid_weights, primary_offset_hz, to_grid
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

__all__ = ["read_picoscenes", "read_picoscenes_stream", "sniff_picoscenes"]

_WHAT = "PicoScenes .csi capture (RXS frames, magic 0x20150315)"
_MAGIC = 0x20150315
_FRAME_START = struct.pack("<IH", _MAGIC, 1)  # magic + frame version, 4 bytes into every frame
_FRAME_HEADER = 11  # u32 length, u32 magic, u16 version, u8 number of segments
_MAC_HEADER = 24  # csiread reads an 802.11 header after the segments ...
_PS_HEADER = 16  # ... and, when its magic follows, a PicoScenes frame header with optional segments
# Segment names in csiread's test order; it matches with strncmp(name, known, len(name)).
_RX_NAMES = (b"RxSBasic", b"ExtraInfo", b"MVMExtra", b"CSI", b"PilotCSI", b"LegacyCSI", b"BasebandSignal",
             b"PreEQSymbols")
_CSI_NAMES = (b"CSI", b"PilotCSI", b"LegacyCSI")
_RXSBASIC_SIZE = {1: 26, 2: 28, 3: 32}
_CSI_HEADER = {1: 35, 2: 37, 3: 39}  # struct CSIV1..3 up to the payload
_MVM_SIZE = 98
# ExtraInfo v1: bytes of each optional field, by its bit in the 32-bit feature code (csiread's parse order).
_EXTRA_SIZES = {0: 8, 1: 2, 2: 6, 3: 6, 4: 4, 5: 1, 6: 20, 7: 1, 8: 1, 9: 1, 10: 8, 11: 4, 12: 4, 13: 2, 14: 1,
                15: 1, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 21: 8, 22: 4, 23: 4}
_DEVICES = {0x9300: "QCA9300", 0x5300: "IWL5300", 0x2000: "Intel AX200/AX210 (IWLMVM)", 0x1234: "USRP",
            0x802: "mac80211-compatible", 0x1000: "virtual SDR"}
# csiread's QCA9300 subcarrier tables: number of tones per (packet format, bandwidth).
_TONES_9300 = {(0, 20): 52, (1, 20): 56, (1, 40): 114, (2, 20): 56, (2, 40): 114, (2, 80): 242, (2, 160): 484,
               (3, 20): 242, (3, 40): 484, (3, 80): 996, (3, 160): 1992}


@dataclass
class _Scan:
    offsets: list[int] = field(default_factory=list)  # of the complete, checked frames
    end: int = 0  # offset after the last of them
    tones: int = 0  # largest CSI dimensions seen (csiread's pl_size)
    rx: int = 0
    sts: int = 0
    flags: list[str] = field(default_factory=list)


def sniff_picoscenes(path: Path, head: bytes) -> bool:
    """The file opens with an RXS frame header: magic 0x20150315, frame version 1."""
    return len(head) >= _FRAME_HEADER and struct.unpack_from("<IH", head, 4) == (_MAGIC, 1)


@lru_cache(maxsize=256)
def _csiread_name(name: bytes, names: tuple[bytes, ...]) -> bytes | None:
    """The name csiread takes a segment for: strncmp(name, known, len(name)) == 0, first match wins."""
    for known in names:
        if (known.startswith(name) if len(name) <= len(known) else name.startswith(known + b"\0")):
            return known
    return None


@lru_cache(maxsize=256)
def _extra_info_size(code: int) -> int:
    """Bytes of an ExtraInfo v1 body with feature code `code` (the same few codes repeat in a capture)."""
    return 4 + sum(size for bit, size in _EXTRA_SIZES.items() if code >> bit & 1)


def _check_csi(data: bytes, off: int, end: int, version: int, scan: _Scan, used: bool) -> str | None:
    """Problem with a CSI-type segment body at data[off:end], or None; grows the scan's CSI sizes if `used`."""
    head = _CSI_HEADER.get(version)
    if head is None:
        return None  # csiread ignores other versions
    if end - off < head:
        return f"CSI segment body of {end - off} bytes, shorter than its {head}-byte header"
    device, fmt, cbw = struct.unpack_from("<HbH", data, off)
    (sc_bw,) = struct.unpack_from("<I", data, off + 21)
    tones, n_tx, n_rx = struct.unpack_from("<HBB", data, off + 25)
    (buf_len,) = struct.unpack_from("<I", data, off + head - 4)
    if off + head + buf_len > end:
        return f"CSI buffer of {buf_len} bytes runs past its segment"
    if device not in (0x9300, 0x5300):
        name = _DEVICES.get(device, f"device 0x{device:04x}")
        return f"CSI from {name}, which csiread 1.4 does not decode (supported: QCA9300, IWL5300)"
    if n_rx == 0:
        return "CSI with 0 receive antennas"
    if sc_bw not in (312500, 78125):
        return f"subcarrier spacing {sc_bw} Hz (expected 312500 or 78125)"
    if device == 0x9300:
        expect = _TONES_9300.get((fmt, cbw))
        if expect is None or tones != expect:
            return f"QCA9300 CSI: {tones} tones for packet format {fmt} at {cbw} MHz (csiread expects {expect})"
        sts = buf_len // (140 if cbw == 20 else 285) // n_rx
        if sts < 1 or 5 * ((tones * sts * n_rx) >> 1) > buf_len:
            return f"QCA9300 CSI buffer of {buf_len} bytes does not hold {tones} tones x {n_rx} antennas"
    else:
        sts = (buf_len - 12) // 60 // n_rx if buf_len >= 12 else 0
        if cbw not in (20, 40) or tones != N_SC or sts < 1 or buf_len != 60 * n_rx * sts + 12:
            return f"IWL5300 CSI: {tones} tones at {cbw} MHz in {buf_len} bytes for {n_rx} antennas (inconsistent)"
    if used:
        scan.tones = max(scan.tones, tones)
        scan.rx, scan.sts = max(scan.rx, n_rx), max(scan.sts, sts, n_tx)
    return None


def _check_segments(data: bytes, cur: int, end: int, count: int, names: tuple[bytes, ...], scan: _Scan) -> tuple[
        int, str | None]:
    """Walk `count` segments from `cur` inside a frame ending at `end` -> (offset after them, problem or None)."""
    for i in range(count):
        if cur + 7 > end:
            return cur, f"segment {i} header runs past the frame"
        seg_len, name_len = struct.unpack_from("<IB", data, cur)
        seg_end = cur + 4 + seg_len
        if seg_end > end or 7 + name_len > 4 + seg_len:
            return cur, f"segment {i} length {seg_len} runs past the frame or cannot hold its name"
        name = data[cur + 5 : cur + 5 + name_len]
        (version,) = struct.unpack_from("<H", data, cur + 5 + name_len)
        body, size = cur + 7 + name_len, seg_end - (cur + 7 + name_len)
        kind = _csiread_name(name, names)
        problem = None
        if kind == b"RxSBasic" and version in _RXSBASIC_SIZE and size < _RXSBASIC_SIZE[version]:
            problem = f"RxSBasic v{version} body of {size} bytes (needs {_RXSBASIC_SIZE[version]})"
        elif kind == b"ExtraInfo" and version == 1 and (
                size < 4 or size < _extra_info_size(struct.unpack_from("<I", data, body)[0])):
            problem = f"ExtraInfo body of {size} bytes shorter than its fields"
        elif kind == b"MVMExtra" and version == 1 and size < _MVM_SIZE:
            problem = f"MVMExtra body of {size} bytes (needs {_MVM_SIZE})"
        elif kind in _CSI_NAMES:
            problem = _check_csi(data, body, seg_end, version, scan, used=kind == b"CSI")
        elif kind in (b"BasebandSignal", b"PreEQSymbols") and version == 1:
            ndim = data[body + 4] if size >= 5 else 0
            width = 4 if size >= 4 and data[body + 3] == ord("1") else 8
            if size < 5 or ndim > 3 or size < 5 + ndim * width + 4:
                problem = f"{kind.decode()} body of {size} bytes with {ndim} dimensions"
        if problem:
            return cur, f"segment {i} ({name.decode(errors='replace')}): {problem}"
        cur = seg_end
    return cur, None


def _scan(path: Path, data: bytes) -> _Scan:
    size = len(data)
    scan = _Scan()
    pos = largest = 0
    while pos < size:
        avail = size - pos
        declared = struct.unpack_from("<I", data, pos)[0] + 4 if avail >= 4 else 4
        if avail < _FRAME_HEADER or declared > avail:
            plausible = avail < _FRAME_HEADER or struct.unpack_from("<IH", data, pos + 4) == (_MAGIC, 1)
            scan.flags.append(truncated_tail(path, _WHAT, index=len(scan.offsets), offset=pos, declared=declared,
                                             available=avail, largest=largest, plausible=plausible))
            break
        where = f"{path}: frame {len(scan.offsets)} at offset {pos}"
        magic, version, n_seg = struct.unpack_from("<IHB", data, pos + 4)
        if (magic, version) != (_MAGIC, 1):
            raise DataError(f"{where}: magic 0x{magic:08x} version {version}; expected a {_WHAT} (corrupt length "
                            "field before it?)")
        end = pos + declared
        cur, problem = _check_segments(data, pos + _FRAME_HEADER, end, n_seg, _RX_NAMES, scan)
        if problem is None and cur + _MAC_HEADER + 4 > end:
            problem = "no 802.11 header after its segments"
        if problem is None:
            ps = cur + _MAC_HEADER
            if struct.unpack_from("<I", data, ps)[0] == _MAGIC:
                if ps + _PS_HEADER > end:
                    problem = "PicoScenes frame header runs past the frame"
                else:
                    _, problem = _check_segments(data, ps + _PS_HEADER, end, data[ps + 10], (b"ExtraInfo",), scan)
        if problem is None:
            # An overlong length swallows the next frames into this one's MPDU: their headers give it away.
            inner = data.find(_FRAME_START, cur + _MAC_HEADER + 4, end)
            if inner >= 0:
                problem = f"another frame header inside it at offset {inner - 4} (corrupt length field)"
        if problem:
            raise DataError(f"{where} is corrupt: {problem}; not a valid {_WHAT}")
        largest = max(largest, declared)
        scan.offsets.append(pos)
        pos = scan.end = end
    if scan.tones == 0:
        raise DataError(f"{path}: no CSI segment in {len(scan.offsets)} frame(s); expected a {_WHAT}")
    return scan


def read_picoscenes_stream(path: Path, rx: int = 1) -> Stream:
    """Parse one PicoScenes .csi file -> Stream (times in s of the NIC's clock, values (n, 90) on the 5300 grid).

    Raises:
        DataError: empty, corrupt or truncated framing, a device csiread does not decode, no CSI, constant
            timestamps (the message names the file), or csiread missing.
    """
    with mapped_file(path, _WHAT) as data:
        return _read(path, rx, data)


def _read(path: Path, rx: int, data: bytes) -> Stream:
    scan = _scan(path, data)
    n = len(scan.offsets)
    bounds = chunk_bounds(n)
    csiread = import_csiread("PicoScenes")
    try:
        reader = csiread.Picoscenes(str(path), {"CSI": [scan.tones, scan.rx, scan.sts]}, if_report=False,
                                    bufsize=max(b - a for a, b in bounds))
    except Exception as err:
        raise DataError(f"{path}: csiread could not open it ({err}); expected a {_WHAT}") from err
    t_us = np.zeros(n)
    values = np.zeros((n, N_ANT * N_SC))
    n_rx = np.zeros(n, dtype=np.int64)
    mapped: dict[str, None] = {}  # mapping notes in first-seen order
    with tempfile.TemporaryDirectory(prefix="rfsense-picoscenes-") as tmp:
        part = Path(tmp) / "chunk.csi"

        def parse(a: int, b: int) -> None:
            # csiread 1.4.1's Picoscenes.seek reads from the start of the file whatever position it is given:
            # a capture longer than one chunk is handed over one chunk file at a time (frames are self-contained).
            if len(bounds) == 1:
                reader.seek(str(path), 0, b - a)
                return
            part.write_bytes(data[scan.offsets[a] : scan.offsets[b] if b < n else scan.end])
            reader.seek(str(part), 0, b - a)

        for a, b in csiread_chunks(path, _WHAT, reader, bounds, parse):
            raw = reader.raw
            t_us[a:b] = raw["RxSBasic"]["Timestamp"]
            n_rx[a:b] = raw["CSI"]["Info"]["NumRx"]
            for note in _map_frames(path, raw, values[a:b]):
                mapped[f"rx{rx}: {note}"] = None
            raw.view(np.uint8)[:] = 0  # csiread fills only the segments a frame has: no stale values next chunk
    if n > 1 and np.all(t_us == t_us[0]):
        raise DataError(f"{path}: all {n} RxSBasic timestamps are {int(t_us[0])}; cannot place the records in time")
    flags = [*scan.flags, *mapped]
    has_csi = n_rx > 0
    if has_csi.any() and n_rx[has_csi].min() < N_ANT:
        flags.append(f"rx{rx}: only {int(n_rx[has_csi].min())} of {N_ANT} antennas in "
                     f"{int((n_rx[has_csi] < N_ANT).sum())} record(s) (zeros)")
    return finish_stream(path, rx, t_us / 1e6, values, flags, "PicoScenes")


def _map_frames(path: Path, raw: np.ndarray, out: np.ndarray) -> list[str]:
    """csiread's frames -> out (n, 90) on the 5300 grid (rows without CSI stay zero); returns the mapping notes.

    Raises:
        DataError: a control frequency outside its channel.
    """
    basic, csi_seg = raw["RxSBasic"], raw["CSI"]
    info = csi_seg["Info"]
    n_tones = info["NumTones"].astype(np.int64)
    ctrl = basic["ControlFreq"].astype(np.int64) - basic["CenterFreq"].astype(np.int64)
    keys = np.c_[n_tones, info["CBW"], info["SubcarrierBandwidth"], ctrl, csi_seg["SubcarrierIndex"]]
    groups, inverse = _layouts(keys)
    notes = []
    for g, key in enumerate(groups):
        rows = np.flatnonzero((inverse == g) & (n_tones > 0))
        if not len(rows):
            continue
        nt, cbw, sc_bw, ctrl_mhz = (int(v) for v in key[:4])
        freq = key[4 : 4 + nt].astype(np.float64) * sc_bw
        note = ""
        primary = 0.0
        if cbw > 20:
            if ctrl_mhz == 0:
                primary = primary_offset_hz(cbw, 0)
                note = "; 20 MHz primary channel not recorded (RxSBasic v1/v2): lowest sub-channel assumed"
            elif abs(ctrl_mhz) <= cbw // 2 - 10:
                primary = ctrl_mhz * 1e6
                note = f"; 20 MHz primary channel ({ctrl_mhz:+d} MHz from the centre) taken"
            else:
                raise DataError(f"{path}: RxSBasic control frequency {ctrl_mhz:+d} MHz from the centre lies outside "
                                f"its {cbw} MHz channel; corrupt capture")
        weights, n_edge = grid_weights(freq, primary)
        need = np.flatnonzero(weights.any(axis=1))  # the primary channel's tones and their outer neighbours
        n_ant = min(N_ANT, csi_seg["CSI"].shape[2])
        amp = np.zeros((len(rows), len(need), N_ANT))
        amp[:, :, :n_ant] = np.abs(csi_seg["CSI"][rows[:, None], need, :n_ant, 0])
        out[rows] = to_grid(amp, weights[need])
        edge = f", {n_edge} edge-held" if n_edge else ""
        notes.append(f"picoscenes {cbw} MHz, {nt} subcarriers -> 30 by frequency{edge}{note}")
    return notes


def _layouts(keys: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of keys (n, k) and each row's group; frames come in runs of one layout, so only run starts
    are compared (np.unique(axis=0) would sort every row)."""
    starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)])
    ids: dict[bytes, int] = {}
    run_group = np.array([ids.setdefault(keys[i].tobytes(), len(ids)) for i in starts])
    groups = [keys[starts[run_group.tolist().index(g)]] for g in range(len(ids))]
    return groups, np.repeat(run_group, np.diff(np.r_[starts, len(keys)]))


def read_picoscenes(paths: list[str | Path | None], **options: Any) -> Iterator[CsiWindow]:
    """Up to three PicoScenes captures (one per receiver, rx order) -> XRF55 WiFi windows, lazily.

    Arguments and errors as `rfsense.data.recordings.wifi.receiver_windows`.
    """
    return receiver_windows(paths, read_picoscenes_stream, what="PicoScenes", **options)
