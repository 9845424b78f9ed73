"""WiFi CSI captures of up to three receivers -> XRF55 WiFi windows (270 channels x 1000 packets at 200 Hz).

Every WiFi reader (one module per format) gives one `Stream` per receiver file whose values are the
amplitudes of 3 antennas x 30 subcarriers on the Intel 5300 grid (channel = antenna*30 + subcarrier).
`wifi_windows` puts the receivers on one clock, cuts 5 s windows where every given receiver has records
without a long gap (`rfsense.data.recordings.timeline`), and resamples each window onto the 200 Hz grid.

Channel order is XRF55's: rx*90 + antenna*30 + subcarrier (rx = position in the list of streams); a
receiver without a file leaves its 90 channels at zero and is flagged.

Shared by the format readers: `import_csiread` (the optional dependency, with install advice),
`csiread_chunks` (csiread parses a checked capture a chunk of records at a time, so memory holds the
(n, 90) grid values, not csiread's full per-record CSI buffers), `finish_stream` (drops records without CSI
and out-of-order records, flagged; refuses a capture whose CSI is all zero instead of passing silent zeros
on) and `receiver_windows` (one file per receiver -> windows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from rfsense.data.recordings.timeline import (
    Stream,
    WindowPlan,
    common_spans,
    interp_onto,
    keep_increasing,
    segments,
    spans_to_windows,
)
from rfsense.errors import DataError

__all__ = [
    "N_ANT",
    "N_RX",
    "N_SC",
    "WIFI_FS",
    "CSIREAD_CHUNK",
    "CsiWindow",
    "chunk_bounds",
    "csiread_chunks",
    "finish_stream",
    "import_csiread",
    "receiver_flags",
    "receiver_windows",
    "wifi_windows",
]

_log = logging.getLogger(__name__)

N_RX = 3  # receivers (files) in XRF55
N_ANT = 3  # antennas per receiver
N_SC = 30  # subcarrier groups of the Intel 5300 grid
WIFI_FS = 200.0  # XRF55 packet rate
CSIREAD_CHUNK = 2048  # records csiread parses at once: its buffers hold up to ~9 KB of CSI per record
ALIGNS = ("clock", "start")


@dataclass
class CsiWindow:
    """One XRF55-shaped WiFi sample cut from a capture.

    wifi: (270, round(window_s * fs)) float64 amplitude, (270, 1000) with the defaults; channel
        rx*90 + antenna*30 + subcarrier; rows of a receiver without data are zeros.
    receivers: which of rx 1..3 had data.
    start_s, end_s: window bounds in seconds from the start of the first common span (end exclusive,
        end_s - start_s == window_s, also for a padded window).
    flags: human-readable notes: "rx2 missing: no file given", "padded: ...", "rx1: packet rate 9.8 Hz
        < 100 Hz, mostly interpolated", reader flags, ...
    sources: the receiver files, in rx order.
    """

    wifi: np.ndarray
    receivers: tuple[bool, bool, bool]
    start_s: float
    end_s: float
    flags: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    modality = "wifi"  # duck-types as timeline.Window for the format registry

    @property
    def array(self) -> np.ndarray:
        return self.wifi


def _check_args(fs: float, window_s: float, hop_s: float | None, max_gap_s: float, align: str) -> None:
    if fs <= 0 or window_s <= 0 or max_gap_s <= 0 or (hop_s is not None and hop_s <= 0):
        raise ValueError(f"fs={fs}, window_s={window_s}, hop_s={hop_s}, max_gap_s={max_gap_s}: all must be > 0")
    if align not in ALIGNS:
        raise ValueError(f"align={align!r}; expected one of {', '.join(ALIGNS)}")


def wifi_windows(
    streams: Sequence[Stream | None],
    *,
    fs: float = WIFI_FS,
    window_s: float = 5.0,
    hop_s: float | None = None,
    short: str = "pad",
    max_gap_s: float = 0.5,
    align: str = "clock",
) -> Iterator[CsiWindow]:
    """Windows of up to three receivers' streams (rx order; None = no file for that receiver).

    Args:
        streams: per receiver, values (n, 90) = antenna*30 + subcarrier on the 5300 grid, times in seconds.
        fs: output rate (XRF55: 200 Hz). window_s: window length (5 s -> 1000 samples).
        hop_s: step between window starts; None = window_s (no overlap).
        short: a gap-free stretch shorter than one window: "pad" (edge-hold, flagged) or "refuse" (skip it;
            DataError when nothing is left).
        max_gap_s: records further apart than this split the capture: no window bridges such a gap (the
            health check's max_gap_fraction of a 5 s window is 0.5 s).
        align: "clock" takes the streams' times as one clock; "start" puts each stream's first record at 0
            (independent device clocks started together).

    Raises:
        DataError: more than 3 streams, none at all, receivers that never overlap in time, or nothing long
            enough with short="refuse". ValueError: bad fs/window_s/hop_s/max_gap_s/align/short.
    """
    streams = list(streams)
    if len(streams) > N_RX:
        raise DataError(f"{len(streams)} capture files given; expected at most {N_RX} (one per receiver, rx1..rx3)")
    streams += [None] * (N_RX - len(streams))
    present = [s for s in streams if s is not None]
    if not present:
        raise DataError("no capture file given; expected 1 to 3 WiFi captures (one per receiver)")
    _check_args(fs, window_s, hop_s, max_gap_s, align)
    if align == "start":
        for s in present:
            s.t_s = s.t_s - s.t_s[0]
    per_stream = [segments(s.t_s, max_gap_s) for s in present]
    spans = common_spans(per_stream)
    if not spans:
        listing = ", ".join(f"{s.source} {s.t_s[0]:.2f}..{s.t_s[-1]:.2f} s" for s in present)
        raise DataError(
            f"receiver captures do not overlap in time ({listing}); their clocks are not comparable: "
            "use align='start' if the captures were started together"
        )
    origin = spans[0].start
    base_flags: list[str] = []
    for r, s in enumerate(streams, start=1):
        if s is None:
            base_flags.append(f"rx{r} missing: no file given")
            continue
        base_flags.extend(receiver_flags(r, s, fs))
    n_split = sum(len(p) - 1 for p in per_stream)
    if n_split:
        _log.info("%s: split at %d gap(s) longer than %.2f s; windows never bridge them",
                  ", ".join(s.source for s in present), n_split, max_gap_s)
    # Plan every window now, so bad arguments and an empty capture fail here, not at the first next().
    sources = [s.source for s in present]
    plans = list(spans_to_windows(spans, fs=fs, window_s=window_s, hop_s=hop_s, short=short, what=", ".join(sources)))
    return _windows(streams, plans, fs, window_s, origin, base_flags, sources)


def receiver_flags(rx: int, stream: Stream, fs: float = WIFI_FS) -> list[str]:
    """The flags every window of receiver `rx` carries: the reader's, plus a note when its packet rate is far
    below the output rate `fs` (the window is then mostly interpolated)."""
    flags = list(stream.flags)
    if len(stream.t_s) > 1:
        rate = 1.0 / float(np.median(np.diff(stream.t_s)))
        if rate < fs / 2:  # XRF55 sends 200 packets/s; far fewer means mostly interpolation
            flags.append(f"rx{rx}: packet rate {rate:.1f} Hz < {fs / 2:g} Hz, mostly interpolated")
    return flags


def _windows(streams: list[Stream | None], plans: list[WindowPlan], fs: float, window_s: float, origin: float,
             base_flags: list[str], sources: list[str]) -> Iterator[CsiWindow]:
    """Interpolate each planned window when it is asked for (one window in memory at a time)."""
    win = int(round(window_s * fs))
    receivers = tuple(s is not None for s in streams)
    for plan in plans:
        grid = plan.grid(win, fs)
        start = plan.start(fs)
        wifi = np.zeros((N_RX * N_ANT * N_SC, win))
        for r, s in enumerate(streams):
            if s is not None:
                wifi[r * 90 : (r + 1) * 90] = interp_onto(s.t_s, s.values, grid)
        flags = list(base_flags)
        if plan.covered_s < window_s:
            flags.append(f"padded: only {plan.covered_s:.2f} s of records < window {window_s:.1f} s (edge-hold)")
        yield CsiWindow(wifi, receivers, start - origin, start - origin + window_s, flags, sources)  # type: ignore[arg-type]


def import_csiread(what: str) -> ModuleType:
    """csiread, or a DataError that says how to install it (it is the optional `recordings` extra)."""
    try:
        import csiread
    except ImportError as err:
        raise DataError(f"reading {what} captures needs csiread: pip install 'rfsense[recordings]'") from err
    return csiread


def chunk_bounds(n: int, starts: np.ndarray | None = None, size: int | None = None) -> list[tuple[int, int]]:
    """Record ranges [(a, b)] of about `size` (default CSIREAD_CHUNK) records covering 0..n; with `starts` (n,)
    bool, every range begins where starts is True (e.g. at the first packet of a frame, so no frame is split)."""
    size = size or CSIREAD_CHUNK
    allowed = np.flatnonzero(starts) if starts is not None else np.arange(n)
    bounds, a = [], 0
    while a < n:
        j = int(np.searchsorted(allowed, a + size))
        b = int(allowed[j]) if j < len(allowed) else n
        bounds.append((a, b))
        a = b
    return bounds


def csiread_chunks(path: Path, what: str, reader: object, bounds: list[tuple[int, int]],
                   parse: Callable[[int, int], None]) -> Iterator[tuple[int, int]]:
    """Have csiread parse each range of checked records in turn (`parse(a, b)` parses records a..b-1); yields
    (a, b). The reader's arrays are overwritten by the next chunk: use them before the next iteration.

    Raises:
        DataError: csiread raised, or parsed another number of records than the framing check counted.
    """
    for a, b in bounds:
        try:
            parse(a, b)
        except Exception as err:  # csiread raises ValueError or a bare Exception
            raise DataError(f"{path}: csiread could not parse it ({err}); expected a {what}") from err
        if reader.count != b - a:  # type: ignore[attr-defined]
            raise DataError(f"{path}: csiread parsed {reader.count} records where the framing check counted "  # type: ignore[attr-defined]
                            f"{b - a} (records {a}..{b - 1}); not a valid {what}")
        yield a, b


def finish_stream(path: Path, rx: int, t_s: np.ndarray, values: np.ndarray, flags: list[str], what: str) -> Stream:
    """A receiver's records (t_s (n,) seconds, values (n, 90) amplitude) -> Stream, after dropping what cannot be used.

    Records whose amplitudes are all zero or not finite carry no CSI (csiread leaves zeros where it decoded
    nothing) and records that do not advance the clock would break interpolation: both are dropped and
    flagged. A capture with no record left is refused, never passed on as silent zeros.

    Raises:
        DataError: no record with CSI (the message names the file and the format).
    """
    flags = list(flags)
    n = len(t_s)
    ok = np.isfinite(values).all(axis=1) & (values != 0).any(axis=1) & np.isfinite(t_s)
    if not ok.any():
        raise DataError(f"{path}: none of its {n} {what} record(s) carries CSI (all zero or invalid); refusing "
                        "to pass zeros on as a measurement")
    if not ok.all():
        flags.append(f"rx{rx}: {int((~ok).sum())} record(s) without CSI (all zero) dropped")
        t_s, values = t_s[ok], values[ok]
    keep = keep_increasing(t_s)
    if not keep.all():
        flags.append(f"rx{rx}: {int((~keep).sum())} duplicate/out-of-order record(s) dropped")
        t_s, values = t_s[keep], values[keep]
    _log.debug("rx%d %s: %d records over %.3f s", rx, path, len(t_s), float(t_s[-1] - t_s[0]))
    return Stream(np.asarray(t_s, dtype=np.float64), values, flags, str(path))


def receiver_windows(
    paths: Sequence[str | Path | None],
    read_stream: Callable[[Path, int], Stream],
    *,
    what: str,
    **options: Any,
) -> Iterator[CsiWindow]:
    """Read up to three captures of one format (one per receiver, rx order; None = absent) into windows.

    `read_stream(path, rx)` parses one file into a Stream on its device clock (seconds). The other arguments
    are those of `wifi_windows`.

    Raises:
        DataError: more than 3 files, none, or whatever `read_stream` / `wifi_windows` refuse.
    """
    paths = list(paths)
    if len(paths) > N_RX:
        raise DataError(f"{len(paths)} {what} captures given; expected at most {N_RX} (one per receiver, rx1..rx3)")
    if not any(p is not None for p in paths):
        raise DataError(f"no capture file given; expected 1 to {N_RX} {what} captures (one per receiver)")
    streams: list[Stream | None] = []
    for r, p in enumerate(paths, start=1):
        if p is None:
            streams.append(None)
            continue
        path = Path(p)
        if not path.is_file():
            raise DataError(f"rx{r}: {path} does not exist or is not a file; expected a {what} capture")
        streams.append(read_stream(path, r))
    return wifi_windows(streams, **options)
