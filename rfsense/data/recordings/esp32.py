"""ESP32 CSI serial logs (ESP32-CSI-Tool, esp-csi `csi_recv`) -> XRF55 WiFi windows (numpy only, no csiread).

    windows = list(read_esp32(["rx1.csv"]))           # one log per receiver, up to 3
    stream = read_esp32_stream(Path("rx1.csv"))      # Stream: values (n, 90) on the 5300 grid

File: the text a board prints over serial, one `CSI_DATA,...,[v v v ...]` line per received frame. Columns
follow the file's header line when it has one (`type,role,mac,...` or esp-csi's `type,id,mac,...`), else
ESP32-CSI-Tool's fixed 26 columns (type, role, mac, rssi, rate, sig_mode, mcs, bandwidth, smoothing,
not_sounding, aggregation, stbc, fec_coding, sgi, noise_floor, ampdu_cnt, channel, secondary_channel,
local_timestamp, ant, sig_len, rx_state, real_time_set, real_timestamp, len, CSI_DATA). The bracket holds
int8 (imaginary, real) pairs, space- or comma-separated; `len` counts them (ESP32-CSI-Tool prints only the
first 128 of a longer buffer). csiread's ESP32 parser is not used: it splits every line blindly, so one
boot message or garbled serial line breaks it. Here lines that are not `CSI_DATA` are skipped, and a
`CSI_DATA` line that is cut off, has the wrong number of columns or values, a `len` that disagrees with its
values, or a value outside int8 is dropped and counted in a flag (serial logs lose bytes). A file without a
single usable line is refused.

Mapping onto the XRF55 grid (flagged in every window):
- Subcarriers: the first 64 pairs, the legacy long training field (LLTF), which every frame carries and which
  always spans the 20 MHz primary channel (also on a 40 MHz channel, flagged). Its 52 data subcarriers
  -26..-1, 1..26 are interpolated by frequency onto the 30 groups (`rfsense.data.recordings.subcarriers`);
  the grid's -28, 27, 28 lie outside them and are edge-held (flagged). The bin order differs between chips
  and firmware (classic ESP32: 0..31, -32..-1; others centred: -32..31); it is read from the data (the
  guard bins are exactly zero under one order and carry signal under the other), falling back to the
  order ESP-IDF documents for the secondary channel, flagged. The first two pairs are skipped (the ESP32's
  first four CSI bytes are invalid, a hardware limitation ESP-IDF documents).
- Antennas: an ESP32 has one antenna (antenna 1); antennas 2 and 3 are zero, flagged.
- Amplitude: |H| of the int8 CSI (no RSSI scaling).
- Time: real_timestamp (s) where every line has real_time_set=1 (a wall clock shared between boards), else
  local_timestamp (us since boot, 32-bit, wraps undone): boards started together need align="start".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rfsense.data.recordings.subcarriers import SUBCARRIER_SPACING_HZ, grid_weights, to_grid
from rfsense.data.recordings.timeline import Stream, unwrap_counter
from rfsense.data.recordings.wifi import N_ANT, CsiWindow, finish_stream, receiver_windows
from rfsense.errors import DataError

__all__ = ["read_esp32", "read_esp32_stream", "sniff_esp32"]

_WHAT = "ESP32 CSI log (CSI_DATA,...,[...] lines)"
_TOOL_COLUMNS = (
    "type", "role", "mac", "rssi", "rate", "sig_mode", "mcs", "bandwidth", "smoothing", "not_sounding",
    "aggregation", "stbc", "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel", "secondary_channel",
    "local_timestamp", "ant", "sig_len", "rx_state", "real_time_set", "real_timestamp", "len", "CSI_DATA",
)
_LLTF = 128  # int8 values of the LLTF: 64 (imag, real) pairs
_LLTF_SC = np.r_[-26:0, 1:27]  # its data subcarriers
_SKIP_BINS = 2  # the first 4 bytes (2 pairs) are invalid on the ESP32
_BLOCK = 2048  # lines whose tokens are converted to numbers together
# Bins that are guard (zero) under one order and data under the other (see _bins).
_NULL_IF_CENTRED = np.r_[2:5, 60:64]  # subcarriers -30..-28, 28..31 when centred
_NULL_IF_CLASSIC = np.r_[28:32, 33:37]  # subcarriers 28..31, -31..-28 in classic order
_REAL_TIME = ("real_time_set", "real_timestamp")


def sniff_esp32(path: Path, head: bytes) -> bool:
    """Some line in the first bytes starts with `CSI_DATA,` (not the suffix: .csv is shared with RFID logs)."""
    return head.startswith(b"CSI_DATA,") or b"\nCSI_DATA," in head


def _bins(order: str) -> np.ndarray:
    """Buffer bin of each LLTF data subcarrier under a bin order ("centred" or "classic")."""
    return _LLTF_SC + 32 if order == "centred" else _LLTF_SC % 64


def _parse_lines(path: Path, lines: Iterable[str]) -> tuple[dict[str, list[str]], np.ndarray, int, int]:
    """Log lines -> (metadata columns as strings, LLTF values (n, 128) in int8 range, n_csi_lines, n_dropped).

    A `type,...` header counts when it comes before the first CSI_DATA line. Tokens are converted to numbers a
    block of lines at a time, so memory holds numbers, not strings, for a long log.
    """
    columns: tuple[str, ...] | None = None
    meta_rows: list[list[str]] = []
    tokens_rows: list[list[str]] = []
    blocks: list[np.ndarray] = []
    n_csi = 0
    for line in lines:
        if not line.startswith("CSI_DATA"):
            if columns is None and line.startswith("type,"):
                columns = tuple(c.strip() for c in line.rstrip("\r\n").split(","))
            continue
        if n_csi == 0:
            columns = columns or _TOOL_COLUMNS
            need = [c for c in ("local_timestamp", "len") if c not in columns]
            if need:
                raise DataError(f"{path}: header has no {', '.join(need)} column; expected an {_WHAT}")
            n_meta = len(columns) - 1  # the last column is the CSI bracket
            keep_cols = [c for c in ("local_timestamp", "secondary_channel", "len", *_REAL_TIME) if c in columns]
            col_idx = [columns.index(c) for c in keep_cols]
            i_len = columns.index("len")
        n_csi += 1
        head, bracket, rest = line.partition("[")
        body, closed, _ = rest.partition("]")
        fields = head.rstrip().rstrip('"').rstrip(",").split(",")
        tokens = body.replace(",", " ").split()
        if not (bracket and closed and len(fields) == n_meta and len(tokens) >= _LLTF):
            continue
        declared = fields[i_len].strip()
        if not (declared == str(len(tokens)) or (len(tokens) == _LLTF and declared.isdigit()
                                                 and int(declared) > _LLTF and int(declared) % _LLTF == 0)):
            continue
        tokens_rows.append(tokens[:_LLTF])
        meta_rows.append([fields[i] for i in col_idx])
        if len(tokens_rows) == _BLOCK:
            blocks.append(_to_int(tokens_rows))
            tokens_rows = []
    if n_csi == 0:
        return {}, np.zeros((0, _LLTF)), 0, 0
    values = np.concatenate([*blocks, _to_int(tokens_rows)])  # (n, 128), NaN rows where a token is bad
    ok = np.isfinite(values).all(axis=1) & (values >= -128).all(axis=1) & (values <= 127).all(axis=1)
    meta = {c: [m[j] for m, good in zip(meta_rows, ok, strict=True) if good] for j, c in enumerate(keep_cols)}
    return meta, values[ok], n_csi, n_csi - int(ok.sum())


def _to_int(rows: list[list[str]]) -> np.ndarray:
    """Token rows -> float64 (n, 128); one C-level conversion, row by row only when some token is bad."""
    if not rows:
        return np.zeros((0, _LLTF))
    try:
        return np.array(rows, dtype=np.int64).astype(np.float64)
    except ValueError:
        out = np.full((len(rows), _LLTF), np.nan)
        for i, r in enumerate(rows):
            try:
                out[i] = np.array(r, dtype=np.int64)
            except ValueError:
                pass
        return out


def _times(path: Path, meta: dict[str, list[str]]) -> tuple[np.ndarray, str]:
    """Record times in seconds and which clock they come from."""
    try:
        if all(c in meta for c in _REAL_TIME) and all(v.strip() == "1" for v in meta["real_time_set"]):
            return np.asarray(meta["real_timestamp"], dtype=np.float64), "real_timestamp"
        ts = np.asarray(meta["local_timestamp"], dtype=np.int64)
    except ValueError as err:
        raise DataError(f"{path}: unreadable timestamp ({err}); expected an {_WHAT}") from None
    return (int(ts[0]) + unwrap_counter(ts % (1 << 32), 32)) / 1e6, "local_timestamp"


def read_esp32_stream(path: Path, rx: int = 1) -> Stream:
    """Parse one ESP32 CSI log -> Stream (times in s, values (n, 90): antenna 1 on the 5300 grid, 2-3 zero).

    Raises:
        DataError: empty, no usable CSI_DATA line, a header without local_timestamp/len, unreadable
            timestamps, or CSI that is all zero (the message names the file).
    """
    if not path.stat().st_size:
        raise DataError(f"{path}: empty file (0 bytes); expected an {_WHAT}")
    with open(path, encoding="utf-8", errors="replace") as f:
        meta, lltf, n_csi, dropped = _parse_lines(path, f)
    if not len(lltf):
        raise DataError(f"{path}: no usable CSI_DATA line ({n_csi} found, all cut off or malformed); "
                        f"expected an {_WHAT}")
    flags = []
    if dropped:
        flags.append(f"rx{rx}: {dropped} of {n_csi} CSI_DATA line(s) cut off or malformed, dropped")
    t_s, clock = _times(path, meta)
    amp = np.hypot(lltf[:, 0::2], lltf[:, 1::2])  # (n, 64) bins; bins < _SKIP_BINS are never used
    secondary = np.asarray(meta.get("secondary_channel", ["0"]), dtype=object)
    wide = bool(np.any(secondary != "0"))
    order = _bin_order(amp)
    if order is None:
        order = "centred" if wide else "classic"
        flags.append(f"rx{rx}: esp32 subcarrier order not evident from the guard bins; {order} assumed")
    bins = _bins(order)
    keep = bins >= _SKIP_BINS
    weights, n_edge = grid_weights(_LLTF_SC[keep] * SUBCARRIER_SPACING_HZ)
    per_ant = np.zeros((len(amp), int(keep.sum()), N_ANT))
    per_ant[:, :, 0] = amp[:, bins[keep]]
    values = to_grid(per_ant, weights)
    note = "; 40 MHz channel: LLTF of the 20 MHz primary channel" if wide else ""
    flags.append(f"rx{rx}: esp32 LLTF ({order} order), {int(keep.sum())} subcarriers -> 30 by frequency, "
                 f"{n_edge} edge-held{note}")
    flags.append(f"rx{rx}: esp32 has one antenna: antennas 2-3 zero")
    if clock == "local_timestamp":
        flags.append(f"rx{rx}: esp32 time from local_timestamp (board clock since boot)")
    return finish_stream(path, rx, t_s, values, flags, "ESP32")


def _bin_order(amp: np.ndarray) -> str | None:
    """'centred' or 'classic' when exactly one order's guard bins are empty in the mean amplitude."""
    mean = amp.mean(axis=0)
    level = mean[_SKIP_BINS:].mean()
    if not level > 0:
        return None
    centred_null = bool(mean[_NULL_IF_CENTRED].max() <= 0.05 * level)
    classic_null = bool(mean[_NULL_IF_CLASSIC].max() <= 0.05 * level)
    if centred_null != classic_null:
        return "centred" if centred_null else "classic"
    return None


def read_esp32(paths: list[str | Path | None], **options: Any) -> Iterator[CsiWindow]:
    """Up to three ESP32 CSI logs (one per receiver board, rx order) -> XRF55 WiFi windows, lazily.

    Arguments and errors as `rfsense.data.recordings.wifi.receiver_windows`.
    """
    return receiver_windows(paths, read_esp32_stream, what="ESP32 CSI", **options)
