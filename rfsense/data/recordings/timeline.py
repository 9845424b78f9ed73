"""Irregular sensor records -> fixed-rate windows of the XRF55 contract, without inventing data.

A reader turns one capture file into a `Stream`: record times in seconds on the device's clock and one
row of values per record. `segments` splits a stream where records stop for longer than `max_gap_s`;
windows are cut inside segments only (several streams: inside the intersection of their segments), so a
window never bridges a long gap and never exists where no record was taken. Each window is interpolated
onto its own fixed-rate grid when it is yielded, so memory stays a constant times the bytes of the real
records, whatever the timestamps claim (a corrupt clock jump makes a new segment, not a huge grid).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rfsense.errors import DataError

__all__ = [
    "SHORT_POLICIES",
    "Span",
    "Stream",
    "Window",
    "WindowPlan",
    "common_spans",
    "interp_onto",
    "keep_increasing",
    "segments",
    "spans_to_windows",
    "unwrap_counter",
]

_log = logging.getLogger(__name__)

# What to do with a segment shorter than one window: edge-hold it to full length (flagged) or skip it.
SHORT_POLICIES = ("pad", "refuse")


@dataclass
class Stream:
    """One device's records: times `t_s` (n,) float64 seconds, strictly increasing; `values` (n, C) float64."""

    t_s: np.ndarray
    values: np.ndarray
    flags: list[str] = field(default_factory=list)
    source: str = ""


@dataclass
class Window:
    """One XRF55-shaped sample of one modality cut from a recording.

    array: (*SHAPES[modality]) float64; start_s, end_s: bounds in seconds on the recording's clock (end
    exclusive); flags: what the reader had to invent or could not map; sources: the files it came from.
    """

    modality: str
    array: np.ndarray
    start_s: float
    end_s: float
    flags: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Span:
    """A stretch of time [start, end] (s) covered by records without a long gap."""

    start: float
    end: float


def unwrap_counter(ts: np.ndarray, bits: int = 32) -> np.ndarray:
    """A wrapping `bits`-bit tick counter -> int64 ticks relative to the first value, wraps undone.

    Consecutive steps are taken modulo 2**bits and read as signed, so a backward step (reordered record)
    stays small and negative instead of becoming a whole wrap period.
    """
    wrap = 1 << bits
    d = np.diff(np.asarray(ts).astype(np.int64))
    d = (d + wrap // 2) % wrap - wrap // 2
    return np.concatenate([[0], np.cumsum(d)])


def keep_increasing(t: np.ndarray) -> np.ndarray:
    """Boolean mask keeping the first record of each strictly increasing run of times `t` (n,).

    Duplicate or reordered records would break interpolation; the caller drops the rest and flags how many.
    """
    if len(t) == 0:
        return np.zeros(0, dtype=bool)
    return np.concatenate([[True], t[1:] > np.maximum.accumulate(t)[:-1]])


def segments(t_s: np.ndarray, max_gap_s: float) -> list[Span]:
    """Spans of consecutive records with no gap longer than `max_gap_s` (a lone record is a zero-length span)."""
    if len(t_s) == 0:
        return []
    cut = np.flatnonzero(np.diff(t_s) > max_gap_s)
    starts = np.concatenate([[0], cut + 1])
    ends = np.concatenate([cut, [len(t_s) - 1]])
    return [Span(float(t_s[a]), float(t_s[b])) for a, b in zip(starts, ends, strict=True)]


def common_spans(per_stream: Sequence[list[Span]]) -> list[Span]:
    """Intersection of several streams' spans: the times every stream covers."""
    out = list(per_stream[0])
    for spans in per_stream[1:]:
        merged: list[Span] = []
        i = j = 0
        while i < len(out) and j < len(spans):
            lo, hi = max(out[i].start, spans[j].start), min(out[i].end, spans[j].end)
            if lo <= hi:
                merged.append(Span(lo, hi))
            if out[i].end < spans[j].end:
                i += 1
            else:
                j += 1
        out = merged
    return out


def interp_onto(t: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of values (n, C) at sorted times t (n,) onto grid (m,); edge-hold outside -> (C, m).

    One searchsorted for all channels instead of C calls to np.interp.
    """
    if len(t) == 1:
        return np.repeat(values[:1].T, len(grid), axis=1)
    g = np.clip(grid, t[0], t[-1])
    i = np.clip(np.searchsorted(t, g, side="right") - 1, 0, len(t) - 2)
    w = (g - t[i]) / (t[i + 1] - t[i])
    return (values[i] * (1.0 - w)[:, None] + values[i + 1] * w[:, None]).T


@dataclass(frozen=True)
class WindowPlan:
    """Where one window lies on the common clock, and how many of its seconds hold records (`covered_s`,
    less than the window when a short span is edge-held to full length)."""

    origin: float  # start of the span the window was cut from
    offset: int  # first grid index of the window on the span's fs grid
    covered_s: float

    def grid(self, n: int, fs: float) -> np.ndarray:
        """The window's n sample times; overlapping windows of one span share them exactly."""
        return self.origin + (self.offset + np.arange(n)) / fs

    def start(self, fs: float) -> float:
        return self.origin + self.offset / fs


def spans_to_windows(
    spans: list[Span], *, fs: float, window_s: float, hop_s: float | None, short: str, what: str
) -> Iterator[WindowPlan]:
    """Window start times inside `spans`, every `hop_s` while a whole window fits (the rest of a span is
    dropped). A capture with no span as long as a window gives one edge-held window from its longest span
    (short="pad", flagged by the caller through `covered_s`) or an error (short="refuse").

    Raises:
        DataError: no whole window and short="refuse" (the message names `what` and the longest span).
    """
    if short not in SHORT_POLICIES:
        raise ValueError(f"short={short!r}; expected one of {', '.join(SHORT_POLICIES)}")
    win = int(round(window_s * fs))
    hop = int(round((hop_s if hop_s is not None else window_s) * fs))
    if win < 2 or hop < 1:
        raise ValueError(f"window_s={window_s} and hop_s={hop_s} at fs={fs} give {win} / {hop} samples")
    n_yielded = 0
    for span in spans:
        n_grid = int(np.floor((span.end - span.start) * fs + 1e-9)) + 1
        for s in range(0, n_grid - win + 1, hop):
            n_yielded += 1
            yield WindowPlan(span.start, s, window_s)
    if n_yielded:
        return
    longest = max(spans, key=lambda s: s.end - s.start)
    length = longest.end - longest.start
    if short == "refuse":
        raise DataError(
            f"{what}: capture is shorter than one {window_s:.1f} s window (longest stretch without a gap "
            f"{length:.2f} s); use short='pad' (--short pad) to edge-hold it to full length"
        )
    yield WindowPlan(longest.start, 0, length)
