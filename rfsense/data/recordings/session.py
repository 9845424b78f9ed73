"""Sessions: several sensors on one timeline, cut into 5 s windows of every sensor at the same times.

    session = open_session("session.yaml")                      # file format: `session_file`
    for w in session_windows(session, grid_starts(session)):    # `rfsense infer SESSION.yaml`
        w.arrays["wifi"], w.flags, w.absent                     # (270, 1000) or None, notes, reasons
    for w in session_windows(session, [t.start_s for t in session.trials]):   # `rfsense convert`

Per window and sensor (`tracks.Track.coverage`): a sensor covering less than `windows.min_coverage` of the
window (default 80 %) is absent for it, with the reason; one covering more but not all is used, the rest
edge-held, and flagged. WiFi receivers count one by one: an absent receiver's 90 channels are zero (flagged)
and WiFi is absent only when every receiver is. Arrays: mmwave (17, 256, 128) float32 (dca1000), wifi (270,
1000) float64 (channel rx*90 + antenna*30 + subcarrier, 200 Hz, linear interpolation of one gap-free stretch
of records), rfid (23, 148) float64 wrapped phase (impinj's zero-order hold on 29.6 Hz slots).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rfsense.data.recordings.dca1000 import capture_windows
from rfsense.data.recordings.impinj import N_SLOTS, rfid_window, tag_rows
from rfsense.data.recordings.mapping import read_mapping
from rfsense.data.recordings.session_file import (
    RECEIVERS,
    WINDOW_S,
    SessionConfig,
    Trial,
    load_session_config,
    resolve_trials,
)
from rfsense.data.recordings.timeline import WindowPlan, interp_onto
from rfsense.data.recordings.tracks import Coverage, Track, open_tracks, overlap_report
from rfsense.data.recordings.wifi import N_ANT, N_SC, WIFI_FS
from rfsense.modalities import MODALITIES

__all__ = ["Session", "SessionWindow", "grid_starts", "open_session", "session_windows"]

_log = logging.getLogger(__name__)
_RX_CHANNELS = N_ANT * N_SC


@dataclass
class Session:
    """An opened session: its file, config, tracks (modality order), resolved trials and overlap report."""

    path: Path
    name: str
    config: SessionConfig
    tracks: list[Track]
    trials: list[Trial]
    report: list[str]
    common_s: tuple[float, float] | None  # the time every sensor covers, if any
    mapping_source: str | None = None

    def track(self, key: str) -> Track | None:
        return next((t for t in self.tracks if t.key == key), None)


def open_session(path: str | os.PathLike[str], mapping: str | os.PathLike[str] | None = None) -> Session:
    """Read a session file and every capture it names, and check that the sensors overlap in time.

    Args:
        path: the session YAML. mapping: an earlier conversion's convert.json whose mappings fill in what
            the session leaves open (see `tracks`), or None.

    Raises:
        ConfigError: a bad session file (one line naming the key) or a value contradicting the mapping.
        DataError: a missing or unreadable capture, or a sensor that overlaps no other in time.
    """
    path = Path(path)
    cfg = load_session_config(path)
    source = f"session file {path}"
    mapped = read_mapping(mapping) if mapping is not None else None
    tracks = open_tracks(cfg, path.parent, source, mapped, str(mapping) if mapping is not None else "")
    report, common = overlap_report(tracks, source)
    for line in report:
        _log.info("%s: %s", path.name, line)
    trials = resolve_trials(cfg, source)
    name = cfg.name or path.stem
    return Session(path, name, cfg, tracks, trials, report, common, str(mapping) if mapping is not None else None)


def grid_starts(session: Session, hop_s: float | None = None) -> list[float]:
    """Window starts every `hop_s` (default: the session's windows.hop_s) from the first record of any sensor,
    keeping the windows at least one sensor covers enough to be used."""
    hop = hop_s if hop_s is not None else session.config.windows.hop_s
    if hop <= 0:
        raise ValueError(f"hop_s={hop}: must be > 0")
    lo = min(t.range_s[0] for t in session.tracks)
    hi = max(t.range_s[1] for t in session.tracks)
    need = session.config.windows.min_coverage
    starts = [float(s) for s in lo + hop * np.arange(int(np.floor((hi - lo) / hop)) + 1)]
    kept = [s for s in starts if any(t.coverage(s).enough(need) for t in session.tracks)]
    if len(kept) < len(starts):
        _log.info("%s: %d of %d windows every %.2f s have no sensor covering %.0f %% of them; skipped",
                  session.name, len(starts) - len(kept), len(starts), hop, 100 * need)
    return kept


@dataclass
class SessionWindow:
    """One 5 s window of a session at session time [start_s, end_s).

    arrays: per modality the XRF55 array, or None when the modality is absent; coverage: per sensor key
    ("mmwave", "wifi.rx1", ..., "rfid") the share of the window it covers; flags: what was mapped, invented
    or edge-held; absent: per sensor key that is not used in this window, why.
    """

    start_s: float
    end_s: float
    arrays: dict[str, np.ndarray | None]
    coverage: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    absent: dict[str, str] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        """Flags, then each absent sensor with its reason."""
        return self.flags + [f"{k} absent: {r}" for k, r in self.absent.items()]


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %" if 0.995 > x > 0.005 or x in (0.0, 1.0) else f"{100 * x:.1f} %"


def _absent_reason(track: Track, cov: Coverage, need: float) -> str | None:
    """None when the track is used for the window, else why not."""
    if cov.span is None:
        a, b = track.range_s
        return f"no records in this window (its records: {a:.2f} .. {b:.2f} s)"
    if not cov.enough(need):
        return f"covers {_pct(cov.share)} of the window < {_pct(need)} (min_coverage)"
    return None


def _partial_flag(track: Track, cov: Coverage) -> str:
    parts = []
    if cov.before_s > 1e-9:
        parts.append(f"{cov.before_s:.2f} s before its records begin")
    if cov.after_s > 1e-9:
        parts.append(f"{cov.after_s:.2f} s after they end")
    where = ", ".join(parts) or "a gap"
    return f"{track.key} covers {_pct(cov.share)} of the window ({where}, edge-held)"


def _wifi_rows(track: Track, cov: Coverage, start: float) -> np.ndarray:
    """(90, 1000) amplitudes of one receiver on the window's 200 Hz grid, from its records in `cov.span` only."""
    s = track.data
    assert cov.span is not None
    lo = int(np.searchsorted(s.t_s, cov.span.start - 1e-9))
    hi = int(np.searchsorted(s.t_s, cov.span.end + 1e-9, side="right"))
    grid = start + np.arange(int(round(WINDOW_S * WIFI_FS))) / WIFI_FS
    return interp_onto(s.t_s[lo:hi], s.values[lo:hi], grid)


def session_windows(session: Session, starts: Sequence[float]) -> Iterator[SessionWindow]:
    """The windows of every sensor at the given session times (sorted ascending), one at a time.

    The radar capture is streamed frame by frame across all windows (`dca1000.capture_windows`), so memory
    holds one window per modality, plus one map sum per overlapping radar window.

    Raises:
        ValueError: starts not sorted.
    """
    starts = [float(s) for s in starts]
    if any(b < a for a, b in zip(starts, starts[1:], strict=False)):
        raise ValueError("window starts must be sorted")
    need = session.config.windows.min_coverage
    covs = [{t.key: t.coverage(s) for t in session.tracks} for s in starts]
    # per window: sensor key -> why it is absent (None: used)
    why = [{t.key: _absent_reason(t, cov[t.key], need) for t in session.tracks} for cov in covs]
    radar_iter: Iterator[Any] | None = None
    radar = session.track("mmwave")
    if radar is not None:
        plans = [WindowPlan(0.0, radar.frame_offset(s), covs[i]["mmwave"].share * WINDOW_S)
                 for i, s in enumerate(starts) if why[i]["mmwave"] is None]
        radar_iter = capture_windows(radar.data, plans, window_s=WINDOW_S,
                                     clutter_removal=bool(radar.mapping["clutter_removal"]))
    rfid = session.track("rfid")
    rfid_rows = tag_rows(rfid.data) if rfid is not None else None
    for s, cov, absent in zip(starts, covs, why, strict=True):
        w = SessionWindow(s, s + WINDOW_S, dict.fromkeys(MODALITIES), {k: c.share for k, c in cov.items()})
        w.absent = {k: r for k, r in absent.items() if r is not None}
        for track in session.tracks:
            c = cov[track.key]
            if track.key in w.absent:
                continue
            w.flags.extend(track.flags)
            if not c.full:
                w.flags.append(_partial_flag(track, c))
            if track.modality == "mmwave":
                assert radar_iter is not None
                w.arrays["mmwave"] = next(radar_iter).array  # its only own flag is the padding this window notes
            elif track.modality == "rfid":
                assert c.span is not None
                grid = s + np.arange(N_SLOTS) * (WINDOW_S / N_SLOTS)
                w.arrays["rfid"], extra = rfid_window(track.data, c.span, grid, window_s=WINDOW_S, by_tag=rfid_rows)
                w.flags.extend(extra)
        _fill_wifi(session, w, cov)
        yield w


def _fill_wifi(session: Session, w: SessionWindow, cov: dict[str, Coverage]) -> None:
    """The (270, 1000) WiFi array from the receivers used in `w` (zeros for the others, flagged)."""
    receivers = [session.track(f"wifi.{r}") for r in RECEIVERS]
    if not any(t is not None and t.key not in w.absent for t in receivers):
        return
    wifi = np.zeros((len(RECEIVERS) * _RX_CHANNELS, int(round(WINDOW_S * WIFI_FS))))
    for r, track in enumerate(receivers):
        if track is None:
            w.flags.append(f"rx{r + 1} missing: no receiver in the session")
        elif track.key not in w.absent:
            wifi[r * _RX_CHANNELS : (r + 1) * _RX_CHANNELS] = _wifi_rows(track, cov[track.key], w.start_s)
        else:
            w.flags.append(f"rx{r + 1} absent in this window: its 90 channels are zero")
    w.arrays["wifi"] = wifi
