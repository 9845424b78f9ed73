"""Impinj reader logs (CSV) -> XRF55 RFID windows: 23 tags x 148 phase slots over 5 s (29.6 Hz).

    windows = read_impinj(["session.csv"], tag_map="tags.txt")
    x = np.stack([w.array for w in windows])        # (N, 23, 148) wrapped phase in [0, 2*pi)

Columns, as LLRP loggers used in RFID sensing research write them (`EPC, Timestamp, Antenna, TxPower,
Frequency(MHz), RSS(dbm), PhaseAngle(Radian), PhaseAngle(Degree), DopplerShift(Hz), Velocity`; XRF55's
read_rfid.py reads `EPC` and `PhaseAngle(Radian)`), matched case- and punctuation-insensitively with common
alternative spellings (`COLUMNS`): EPC, a timestamp and a phase column are required; antenna and frequency
are used when present. The phase is radians in [0, 2*pi) (the reader's 0..4096 per turn times 2*pi / 4096),
degrees, or raw 0..4096 units; a column named just `Phase`/`PhaseAngle` gets its unit from its values.
Timestamps are microseconds since the epoch (Impinj FirstSeenTimestampUTC); other units are recognised
from their size (epoch ms or s; relative times by the typical read interval) or given with `time_unit`;
ISO date-times are accepted too. The columns found are logged and kept in `ImpinjLog.columns`.

Tags: a tag map (a text file with the 23 EPCs in XRF55 row order, one per line, `#` comments) gives each
tag its row. Without one the first 23 distinct EPCs in order of first appearance are used and every window
is flagged (the model's tag order is then a guess). Reads of EPCs outside the map are dropped (flagged).
Several antennas: the one with the most reads is kept (or `antenna`), flagged.

Frequency hopping: each (antenna, channel) pair adds its own phase offset (reference notes, sllurp #127),
so a tag's phase jumps at every hop. Consecutive reads of one tag on two channels (at most 0.25 s apart)
measure the offset difference of that channel pair; pooled over all tags, the offsets follow from the
leading eigenvector of the matrix of these phasors (angular synchronisation), and every read is referred
to the most-read channel. What remains is the tag-dependent part (4*pi*d*(f - f_ref)/c varies by
~0.1 rad over a 4 MHz band when tag distances differ by 0.5 m) and the estimation noise.

Resampling: per tag, slot i of a window holds the tag's latest read at or before the slot's end, slots
before its first read hold that read (zero-order hold, as the generator's synth.json documents; averaging
wrapped phase would invent values across wraps). Gaps: `timeline.segments` splits the log where no tag
was read for longer than max_gap_s; windows never bridge such a gap and reads are never held across one.
A tag with no read in a window is lost: its row holds its last earlier read in the segment (or 0.0) and
the window is flagged.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from rfsense.data.recordings.timeline import Span, Window, WindowPlan, segments, spans_to_windows
from rfsense.errors import DataError
from rfsense.modalities import SHAPES

__all__ = ["COLUMNS", "ImpinjLog", "load_tag_map", "read_impinj", "read_impinj_log", "rfid_window", "sniff_impinj",
           "tag_rows"]

_log = logging.getLogger(__name__)

N_TAGS, N_SLOTS = SHAPES["rfid"]  # 23 tags, 148 slots
WINDOW_S = 5.0
_TWO_PI = 2 * np.pi
_PAIR_GAP_S = 0.25  # consecutive reads of a tag further apart than this say nothing about a hop
_RUN_READS = 5  # reads averaged on each side of a hop


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# Accepted spellings per role, after _norm (lower case, letters and digits only); first match wins.
COLUMNS: dict[str, tuple[str, ...]] = {
    "epc": ("epc", "epc96", "epcid", "tagepc", "tagid", "epcvalue", "tag"),
    "time": ("timestamp", "firstseentimestamputc", "firstseentimestamp", "firstseentime", "lastseentimestamputc",
             "lastseentimestamp", "lastseentime", "timestampus", "timestamputc", "readtime", "time"),
    "phase_rad": ("phaseangleradian", "phaseangleinradians", "phaseradian", "phaseanglerad", "phaserad"),
    "phase_deg": ("phaseangledegree", "phaseangleindegrees", "phasedegree", "phaseangledeg", "phasedeg"),
    "phase_raw": ("impinjphase", "phaseraw", "rawphase"),
    "phase_any": ("phaseangle", "phase"),
    "antenna": ("antenna", "antennaid", "antennaport", "antennaportnumber", "ant"),
    "frequency": ("frequencymhz", "frequency", "freqmhz", "freq", "channelmhz", "channelinmhz", "channelfrequency",
                  "channelindex", "channel"),
    "rssi": ("rssdbm", "rssi", "peakrssi", "peakrssiindbm", "rssidbm", "rss"),
    "doppler": ("dopplershifthz", "dopplershift", "dopplerfrequency", "rfdopplerfrequency", "doppler"),
}
_PHASE_ROLES = ("phase_rad", "phase_deg", "phase_raw", "phase_any")
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _columns(header: list[str]) -> dict[str, int]:
    """Role -> column index for the roles found in `header`."""
    normed = [_norm(h) for h in header]
    found: dict[str, int] = {}
    for role, names in COLUMNS.items():
        for name in names:
            if name in normed:
                found[role] = normed.index(name)
                break
    return found


def _header(lines: list[str]) -> tuple[int, str, list[str]] | None:
    """(line index, delimiter, fields) of the first of `lines` that names an EPC and a phase column."""
    for i, line in enumerate(lines[:10]):
        delim = max(",;\t", key=line.count)
        fields = next(csv.reader([line], delimiter=delim), [])
        roles = _columns(fields)
        if "epc" in roles and any(r in roles for r in _PHASE_ROLES):
            return i, delim, fields
    return None


def sniff_impinj(path: Path, head: bytes) -> bool:
    """True when the file's first lines hold a CSV header with an EPC column and a phase column."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    return _header(text.splitlines()[:10]) is not None


def load_tag_map(path: str | Path) -> list[str]:
    """The 23 EPCs (upper-case hex, XRF55 row order) of a tag-map file: one per line (first CSV field),
    blank lines and `#` comments ignored.

    Raises:
        DataError: missing/unreadable file, not 23 EPCs, or an EPC listed twice.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"tag map {path}: cannot read ({err.strerror if isinstance(err, OSError) else err}); "
                        f"expected a text file with the {N_TAGS} tag EPCs, one per line") from None
    epcs = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            epcs.append(_epc(line.split(",")[0]))
    if len(epcs) != N_TAGS:
        raise DataError(f"tag map {path}: {len(epcs)} EPCs; expected {N_TAGS} (one per XRF55 tag row, in order)")
    dup = sorted({e for e in epcs if epcs.count(e) > 1})
    if dup:
        raise DataError(f"tag map {path}: EPC {dup[0]} is listed more than once")
    return epcs


def _epc(value: str) -> str:
    return re.sub(r"[\s:-]", "", value.strip().strip('"')).upper()


@dataclass
class ImpinjLog:
    """One Impinj log, parsed: reads sorted by time, mapped to tag rows, hop offsets removed.

    t_s (n,) seconds on the log's clock; tag (n,) row 0..22; phase (n,) radians (corrected, not wrapped);
    epcs: the 23 EPCs by row; columns: role -> header name found; flags: what was assumed or dropped;
    antenna: the antenna whose reads were kept (None: the log has no antenna column).
    """

    path: str
    t_s: np.ndarray
    tag: np.ndarray
    phase: np.ndarray
    epcs: list[str]
    columns: dict[str, str]
    flags: list[str] = field(default_factory=list)
    antenna: int | None = None


def _floats(values: list[str], path: Path, column: str, first_line: int) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        for i, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                raise DataError(f"{path}: line {first_line + i}: {column} {v!r} is not a number") from None
        raise


def _times(values: list[str], path: Path, column: str, first_line: int, unit: str) -> np.ndarray:
    """Timestamps -> seconds (float64); units per the module docstring."""
    try:
        raw = np.array(values, dtype=np.float64)
    except ValueError:
        try:
            return np.array([datetime.fromisoformat(v.strip()).timestamp() for v in values])
        except ValueError:
            _floats(values, path, column, first_line)  # names the first bad line
            raise
    if unit != "auto":
        return raw * _TIME_UNITS[unit]
    top = np.abs(raw).max()
    if top > 1e14:  # epoch microseconds (Impinj FirstSeenTimestampUTC): now ~1.7e15
        return raw * 1e-6
    if top > 1e11:  # epoch milliseconds
        return raw * 1e-3
    if top > 1e8:  # epoch seconds
        return raw
    step = np.median(np.diff(np.sort(raw))) if len(raw) > 1 else 0.0
    # relative clock: a few tags read at ~30 Hz each give a read every ~1-30 ms
    return raw * (1e-6 if step > 50 else 1e-3 if step > 0.05 else 1.0)


def _phase(values: list[str], role: str, path: Path, column: str, first_line: int) -> tuple[np.ndarray, str]:
    x = _floats(values, path, column, first_line)
    if role == "phase_any":
        top = np.nanmax(x) if len(x) else 0.0
        role = "phase_rad" if top <= _TWO_PI + 1e-6 else "phase_deg" if top <= 360 else "phase_raw"
    scale = {"phase_rad": 1.0, "phase_deg": np.pi / 180, "phase_raw": _TWO_PI / 4096}[role]
    return x * scale, role[6:]


def _parse(path: Path, time_unit: str) -> tuple[dict[str, np.ndarray], list[str], dict[str, str], list[str]]:
    """Read the columns rfsense uses: (arrays by role, EPC strings, role -> header name, notes)."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    lines = text.splitlines()
    head = _header(lines)
    if head is None:
        first = lines[0][:120] if lines else "(empty file)"
        raise DataError(
            f"{path}: no Impinj CSV header with an EPC and a phase column in its first lines (first line: "
            f"{first!r}); expected e.g. EPC, Timestamp, Antenna, Frequency(MHz), PhaseAngle(Radian)"
        )
    h_line, delim, header = head
    roles = _columns(header)
    if "time" not in roles:
        raise DataError(f"{path}: header {header} has no timestamp column; expected one of "
                        f"{', '.join(COLUMNS['time'])} (case and punctuation ignored)")
    phase_role = next(r for r in _PHASE_ROLES if r in roles)
    names = {r: header[i] for r, i in roles.items() if r in ("epc", "time", "antenna", "frequency") or r == phase_role}
    cols: dict[str, list[str]] = {r: [] for r in names}
    idx = {r: roles[r] for r in names}
    n_fields = len(header)
    body = lines[h_line + 1 :]
    for k, row in enumerate(csv.reader(io.StringIO("\n".join(body)), delimiter=delim)):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != n_fields:
            last = " (the last line: the log was cut while being written?)" if h_line + 2 + k == len(lines) else ""
            raise DataError(f"{path}: line {h_line + 2 + k} has {len(row)} fields, the header {n_fields}; truncated "
                            f"or corrupt log{last}")
        for r, i in idx.items():
            cols[r].append(row[i])
    if not cols["epc"]:
        raise DataError(f"{path}: header but no reads")
    first = h_line + 2
    out = {"time": _times(cols["time"], path, names["time"], first, time_unit)}
    out["phase"], unit = _phase(cols[phase_role], phase_role, path, names[phase_role], first)
    notes = [] if phase_role != "phase_any" else [f"phase unit of {names[phase_role]!r} taken from its values: {unit}"]
    if "antenna" in cols:
        out["antenna"] = _floats(cols["antenna"], path, names["antenna"], first)
    if "frequency" in cols:
        out["frequency"] = _floats(cols["frequency"], path, names["frequency"], first)
    return out, [_epc(e) for e in cols["epc"]], names, notes


def _hop_offsets(tag: np.ndarray, t: np.ndarray, phase: np.ndarray, chan: np.ndarray, n_chan: int) -> np.ndarray:
    """Phase offset (rad) of each channel relative to the most-read one; NaN where no hop links it.

    Each hop of a tag (a run of reads on channel a, then a run on channel b, at most _PAIR_GAP_S apart)
    gives exp(j(o_b - o_a)) as the phase of the mean of the first _RUN_READS reads on b minus that of the
    last _RUN_READS reads on a; the offsets are the leading eigenvector of the summed phasor matrix.
    """
    order = np.lexsort((t, tag))
    tg, tt, ch = tag[order], t[order], chan[order]
    z = np.exp(1j * phase[order])
    new = np.r_[True, (tg[1:] != tg[:-1]) | (ch[1:] != ch[:-1])]
    run = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(tg)] - 1
    pos = np.arange(len(tg)) - starts[run]
    from_end = ends[run] - np.arange(len(tg))

    def run_sums(mask: np.ndarray) -> np.ndarray:  # per run, the sum of the selected reads' phasors
        return np.bincount(run, (z * mask).real, len(starts)) + 1j * np.bincount(run, (z * mask).imag, len(starts))

    head, tail = run_sums(pos < _RUN_READS), run_sums(from_end < _RUN_READS)
    pair = (tg[starts[1:]] == tg[ends[:-1]]) & (tt[starts[1:]] - tt[ends[:-1]] < _PAIR_GAP_S)
    a, b = ch[starts[:-1]][pair], ch[starts[1:]][pair]
    obs = head[1:][pair] * np.conj(tail[:-1][pair])
    h = np.zeros((n_chan, n_chan), np.complex128)
    np.add.at(h, (b, a), obs / np.maximum(np.abs(obs), 1e-12))  # ~ n * exp(j (o_b - o_a))
    h = h + h.conj().T
    ref = int(np.bincount(chan, minlength=n_chan).argmax())
    # channels linked to the reference through observed hops (its connected component)
    adj = np.abs(h) > 0
    linked = np.zeros(n_chan, bool)
    linked[ref] = True
    for _ in range(n_chan):
        grown = linked | adj[:, linked].any(axis=1)
        if (grown == linked).all():
            break
        linked = grown
    idx = np.flatnonzero(linked)
    v = np.linalg.eigh(h[np.ix_(idx, idx)])[1][:, -1]  # leading eigenvector: v_c ~ exp(j o_c)
    offsets = np.full(n_chan, np.nan)
    offsets[idx] = np.angle(v * np.conj(v[np.searchsorted(idx, ref)]))
    return offsets


def read_impinj_log(
    path: str | Path, *, tag_map: str | Path | list[str] | None = None, antenna: int | None = None,
    time_unit: str = "auto",
) -> ImpinjLog:
    """Parse one Impinj CSV log: columns, tag rows, antenna, hop offsets (see the module docstring).

    Args:
        path: the CSV log.
        tag_map: a tag-map file or a list of 23 EPCs in row order; None: first 23 EPCs seen (flagged).
        antenna: keep reads of this antenna; None: the antenna with the most reads.
        time_unit: "auto", "us", "ms" or "s" for numeric timestamps.

    Raises:
        DataError: missing/empty/truncated file, no recognisable header or a missing required column, a bad
            value (the message names line and column), a bad tag map, or no read of the mapped tags.
    """
    path = Path(path)
    if time_unit not in ("auto", *_TIME_UNITS):
        raise ValueError(f"time_unit={time_unit!r}; expected auto, us, ms or s")
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file; expected an Impinj reader CSV log")
    cols, epc_str, names, flags = _parse(path, time_unit)
    columns = dict(names)
    _log.info("%s: columns %s", path, ", ".join(f"{r}={n!r}" for r, n in columns.items()))
    keep = np.ones(len(epc_str), bool)
    kept_antenna = None
    if "antenna" in cols:
        ants, counts = np.unique(cols["antenna"], return_counts=True)
        chosen = float(ants[counts.argmax()]) if antenna is None else float(antenna)
        if chosen not in ants:
            raise DataError(f"{path}: no read on antenna {antenna}; the log has antennas {ants.astype(int).tolist()}")
        if len(ants) > 1:
            flags.append(f"{path.name}: reads from antennas {ants.astype(int).tolist()}: kept antenna {int(chosen)} "
                         f"({counts[ants == chosen][0]} of {len(keep)} reads)")
        keep &= cols["antenna"] == chosen
        kept_antenna = int(chosen)
    # Tag rows.
    if tag_map is None:
        seen: dict[str, None] = {}
        for e, k in zip(epc_str, keep, strict=True):
            if k and e not in seen:
                seen[e] = None
        epcs = list(seen)[:N_TAGS]
        flags.append(f"{path.name}: no tag map: rows are the first {len(epcs)} EPCs in order of first read, "
                     "which need not be the order the model was trained with")
        if len(epcs) < N_TAGS:
            flags.append(f"{path.name}: only {len(epcs)} distinct EPCs; rows {len(epcs)}..{N_TAGS - 1} are empty")
    else:
        epcs = load_tag_map(tag_map) if not isinstance(tag_map, list) else [_epc(e) for e in tag_map]
    row_of = {e: i for i, e in enumerate(epcs)}
    tag = np.array([row_of.get(e, -1) for e in epc_str])
    unknown = keep & (tag < 0)
    if unknown.any():
        n_unknown = len({e for e, u in zip(epc_str, unknown, strict=True) if u})
        if unknown.sum() == keep.sum():
            raise DataError(f"{path}: none of the {len(epcs)} tag-map EPCs was read (the log has EPCs such as "
                            f"{epc_str[int(np.flatnonzero(unknown)[0])]}); wrong tag map?")
        where = "outside the tag map" if tag_map is not None else f"beyond the first {N_TAGS}"
        flags.append(f"{path.name}: {int(unknown.sum())} reads of {n_unknown} EPCs {where} dropped")
        keep &= ~unknown
    t, phase, tag = cols["time"][keep], cols["phase"][keep], tag[keep]
    order = np.argsort(t, kind="stable")
    t, phase, tag = t[order], phase[order], tag[order]
    if "frequency" in cols:
        freq = cols["frequency"][keep][order]
        chans, chan = np.unique(freq, return_inverse=True)
        if len(chans) > 1:
            offsets = _hop_offsets(tag, t, phase, chan, len(chans))
            bad = np.isnan(offsets)
            phase = phase - np.where(bad, 0.0, offsets)[chan]
            ref = chans[np.nanargmin(np.abs(offsets))]
            flags.append(f"{path.name}: frequency hopping over {len(chans)} channels: per-channel phase offsets "
                         f"removed (reference {ref:g})")
            if bad.any():
                flags.append(f"{path.name}: no hop links channels {chans[bad].tolist()} to the others: their "
                             "offsets are not removed")
    return ImpinjLog(str(path), t, tag, phase, epcs, columns, flags, kept_antenna)


def read_impinj(
    paths: list[str | Path],
    *,
    tag_map: str | Path | list[str] | None = None,
    window_s: float = WINDOW_S,
    hop_s: float | None = None,
    short: str = "pad",
    max_gap_s: float = 0.5,
    antenna: int | None = None,
    time_unit: str = "auto",
) -> Iterator[Window]:
    """Read Impinj CSV logs into XRF55 RFID windows (23, 148) float64 wrapped phase, lazily.

    Args:
        paths: CSV logs, each its own recording (windows of one log, then the next).
        tag_map, antenna, time_unit: see `read_impinj_log`.
        window_s: window length (148 slots at 148 / 5 s); hop_s: step between window starts (default
            window_s); short: a log shorter than one window: "pad" (flagged) or "refuse" (DataError);
            max_gap_s: no read of any tag for longer than this splits the log.

    Raises:
        DataError: see `read_impinj_log`; a log shorter than one window with short="refuse".
        ValueError: bad window_s/hop_s/max_gap_s/short/time_unit.
    """
    if window_s <= 0 or max_gap_s <= 0 or (hop_s is not None and hop_s <= 0):
        raise ValueError(f"window_s={window_s}, hop_s={hop_s}, max_gap_s={max_gap_s}: all must be > 0")
    fs = N_SLOTS / WINDOW_S
    logs, plans = [], []
    for p in paths:  # parse and plan every log first, so bad input fails before the first window
        log = read_impinj_log(p, tag_map=tag_map, antenna=antenna, time_unit=time_unit)
        spans = segments(log.t_s, max_gap_s)
        if len(spans) > 1:
            _log.info("%s: split at %d gap(s) longer than %.2f s; windows never bridge them", p, len(spans) - 1,
                      max_gap_s)
        logs.append((log, spans))
        plans.append(list(spans_to_windows(spans, fs=fs, window_s=window_s, hop_s=hop_s, short=short, what=str(p))))
    return _windows(logs, plans, fs, window_s)


def _windows(logs: list[tuple[ImpinjLog, list[Span]]], plans: list[list[WindowPlan]], fs: float,
             window_s: float) -> Iterator[Window]:
    n = int(round(window_s * fs))
    for (log, spans), log_plans in zip(logs, plans, strict=True):
        by_tag = tag_rows(log)
        origin = spans[0].start
        for plan in log_plans:
            start = plan.start(fs)
            span = next(s for s in spans if s.start <= start + 1e-9 <= s.end + 1e-9)
            out, window_flags = rfid_window(log, span, plan.grid(n, fs), window_s=window_s, by_tag=by_tag)
            flags = list(log.flags) + window_flags
            if plan.covered_s < window_s:
                flags.append(f"padded: only {plan.covered_s:.2f} s of reads < window {window_s:.1f} s (edge-hold)")
            yield Window("rfid", out, start - origin, start - origin + window_s, flags, [log.path])


def tag_rows(log: ImpinjLog) -> list[np.ndarray]:
    """Per tag row 0..22, the indices of its reads in `log` (time order)."""
    return [np.flatnonzero(log.tag == k) for k in range(N_TAGS)]


def rfid_window(log: ImpinjLog, span: Span, grid: np.ndarray, *, window_s: float = WINDOW_S,
                by_tag: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[str]]:
    """One window of a parsed log: (23, len(grid)) float64 wrapped phase, and its window flags (lost/sparse tags).

    `grid` (n,) holds the slot start times on the log's clock (slot i ends at grid[i] + 1 / fs); only reads
    inside `span` (one gap-free stretch of the log) are used, so nothing is held across a long gap: slots
    before the span's first read of a tag hold that read, slots after its last read hold the last one.
    `by_tag` (from `tag_rows`) saves recomputing the per-tag read indices for every window of a log.
    """
    fs = N_SLOTS / WINDOW_S
    by_tag = tag_rows(log) if by_tag is None else by_tag
    start = float(grid[0])
    slot_end = grid + 1 / fs
    expected = window_s * 30.0  # XRF55's reader: ~30 reads per tag per second
    out = np.zeros((N_TAGS, len(grid)))
    lost, sparse = [], []
    for k, rows in enumerate(by_tag):
        t = log.t_s[rows]
        lo, hi = np.searchsorted(t, [span.start, span.end + 1e-9])
        t_seg, ph_seg = t[lo:hi], log.phase[rows[lo:hi]]
        inside = np.count_nonzero((t_seg >= start) & (t_seg < start + window_s))
        if len(t_seg) == 0:
            lost.append(k)
            continue
        last = np.searchsorted(t_seg, slot_end, side="right") - 1
        out[k] = ph_seg[np.maximum(last, 0)]
        if inside == 0:
            lost.append(k)
        elif inside < expected / 4:
            sparse.append(k)
    out = np.mod(out, 2 * np.pi)
    out[out >= 2 * np.pi] = 0.0
    flags = []
    if lost:
        flags.append(f"lost tags (no read in this window, rows held): {lost}")
    if sparse:
        flags.append(f"tags read fewer than {expected / 4:.0f} times in this window: {sparse}")
    return out, flags
