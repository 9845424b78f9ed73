"""Each sensor of a session on the session timeline: its records, the gap-free stretches they cover, and how
much of a window each covers.

A `Track` is one capture read by its format's reader, its times moved onto the session timeline by its clock
(`offset_s`, or `start` for the first record; see `session_file`). A record stands for the time until the
next output sample, so a stretch of records covers [first record, last record + one output period]: WiFi
1/200 s, RFID 5/148 s, mmWave one frame. A window is measured from ONE such stretch (the one overlapping it
most), never across a gap longer than max_gap_s; the part of the window outside that stretch is edge-held
and its share is the sensor's coverage of the window. mmWave frames have no timestamps: a window starts at
the frame nearest its start time (at most half a frame, 25 ms at 20 frames/s, early or late).

`mapping` (the sensor's entry in an earlier conversion's convert.json, `rfsense.data.recordings.mapping`)
fills in what the session leaves open, so new captures of the same set-up are read the way the training
data was: the tag map and antenna, the radar configuration and clutter removal, each receiver's format and
chip, and the clock. A session value that contradicts it is a `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfsense.data.recordings.dca1000 import Capture, capture_flags, open_capture
from rfsense.data.recordings.formats import detect
from rfsense.data.recordings.impinj import N_SLOTS, load_tag_map, read_impinj_log
from rfsense.data.recordings.radar_config import RadarConfig, load_radar_config
from rfsense.data.recordings.session_file import (
    RECEIVERS,
    WIFI_FORMATS,
    WINDOW_S,
    MmwaveSensor,
    RfidSensor,
    SessionConfig,
    WifiReceiver,
)
from rfsense.data.recordings.timeline import Span, Stream, segments
from rfsense.data.recordings.wifi import WIFI_FS, receiver_flags
from rfsense.errors import ConfigError, DataError

__all__ = ["Coverage", "Track", "open_tracks", "overlap_report"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Coverage:
    """How much of one window [start, start + window_s) a track covers: `share` in [0, 1], the stretch of
    records it is measured from (None: no records in the window), the seconds of the window before that
    stretch begins and after it ends (edge-held when the track is used), and `full`: less than one output
    sample period is missing (a first read a few ms after the window starts is not a partial window)."""

    share: float
    span: Span | None
    before_s: float
    after_s: float
    full: bool

    def enough(self, min_share: float) -> bool:
        """At least `min_share` of the window is covered (up to rounding: 4 s of 5 is 80 %, not 79.99...)."""
        return self.span is not None and self.share >= min_share - 1e-9


@dataclass
class Track:
    """One sensor's capture on the session timeline.

    key: "mmwave", "wifi.rx1".."wifi.rx3" or "rfid"; offset_s: session time = device time + offset_s;
    clock: the clock setting it was given ({"offset_s": x}, {"start": t} or {}); period_s: output sample
    period; spans: gap-free stretches of records (session time, first to last record); flags: what every
    window of it carries (reader flags); data: a Stream (WiFi, times on the session timeline), an ImpinjLog
    (RFID, same) or a Capture (mmWave); mapping: how the capture was mapped, as convert.json records it.
    """

    key: str
    modality: str
    format: str
    path: str
    offset_s: float
    clock: dict[str, float]
    period_s: float
    spans: list[Span]
    flags: list[str]
    data: Any
    mapping: dict[str, Any] = field(default_factory=dict)

    @property
    def range_s(self) -> tuple[float, float]:
        """First record to the end of the last one (one output period after it), session time."""
        return self.spans[0].start, self.spans[-1].end + self.period_s

    def frame_offset(self, start: float) -> int:
        """mmWave: index of the frame nearest to session time `start` (may be negative or past the end)."""
        return int(round((start - self.offset_s) / self.period_s))

    def coverage(self, start: float, window_s: float = WINDOW_S) -> Coverage:
        """The share of [start, start + window_s) covered by the stretch of records overlapping it most."""
        if self.modality == "mmwave":  # frames sit on their own grid: measure the window the frames fill
            start = self.offset_s + self.frame_offset(start) * self.period_s
        end = start + window_s
        best, best_len = None, 0.0
        for span in self.spans:
            length = min(end, span.end + self.period_s) - max(start, span.start)
            if length > best_len + 1e-12:
                best, best_len = span, length
        if best is None:
            return Coverage(0.0, None, window_s, 0.0, False)
        before = max(0.0, best.start - start)
        after = max(0.0, end - (best.end + self.period_s))
        return Coverage(min(1.0, best_len / window_s), best, before, after, before + after < self.period_s - 1e-9)


def _path(base: Path, value: str, where: str, source: str) -> Path:
    p = Path(value).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise DataError(f"{source}: {where}: {p} does not exist or is not a file")
    return p


def _clock(sensor: Any, mapped: dict[str, Any]) -> dict[str, float]:
    """The clock setting: the session's own, else the earlier conversion's, else none (offset 0)."""
    if sensor.offset_s is not None:
        return {"offset_s": float(sensor.offset_s)}
    if sensor.start is not None:
        return {"start": float(sensor.start)}
    return dict(mapped.get("clock", {}))


def _offset(clock: dict[str, float], first_device_s: float) -> float:
    if "start" in clock:
        return clock["start"] - first_device_s
    return clock.get("offset_s", 0.0)


def _conflict(source: str, key: str, what: str, detail: str) -> None:
    raise ConfigError(f"{source}: sensors.{key}.{what}: {detail}; a model trained on that conversion expects its "
                      f"{what}: leave it out of the session or make the two agree")


# ------------------------------------------------------------------------------------------------ WiFi
def _read_wifi(fmt: str, path: Path, rx: int, chip: str | None) -> Stream:
    """One receiver file -> Stream on its device clock (seconds)."""
    if fmt == "intel5300":
        from rfsense.data.recordings.intel5300 import read_intel5300_stream

        stream, ts0 = read_intel5300_stream(path, rx)
        stream.t_s = stream.t_s + ts0 * 1e-6  # the NIC's microsecond counter
        return stream
    if fmt == "nexmon":
        from rfsense.data.recordings.nexmon import read_nexmon_stream

        return read_nexmon_stream(path, rx, chip=chip)
    from rfsense.data.recordings import atheros, esp32, picoscenes

    read = {"atheros": atheros.read_atheros_stream, "esp32": esp32.read_esp32_stream,
            "picoscenes": picoscenes.read_picoscenes_stream}[fmt]
    return read(path, rx)


def _subcarrier_notes(flags: list[str]) -> list[str]:
    """The reader's notes on how subcarriers were mapped onto the 30-group grid ("... -> 30 by frequency")."""
    return [f.split(": ", 1)[-1] for f in flags if "->" in f]


def _open_wifi(name: str, sensor: WifiReceiver, cfg: SessionConfig, base: Path, source: str,
               mapped: dict[str, Any], mapping_source: str) -> Track:
    rx = int(name[-1])
    key = f"wifi.{name}"
    path = _path(base, sensor.path, f"sensors.{key}.path", source)
    fmt = sensor.format or mapped.get("format")
    if sensor.format and mapped.get("format") and sensor.format != mapped["format"]:
        _conflict(source, key, "format", f"{sensor.format!r} here, {mapped['format']!r} in {mapping_source}")
    if fmt is None:
        found = detect(path)
        if found is None or found.modality != "wifi":
            what = "no format rfsense reads" if found is None else f"a {found.name} ({found.modality}) capture"
            raise DataError(f"{source}: sensors.{key}.path: {path} is {what}; expected a WiFi capture of "
                            "intel5300, atheros, nexmon, esp32 or picoscenes (or set format:)")
        fmt = found.name
    if fmt not in WIFI_FORMATS:  # only a mapping file can name another
        raise DataError(f"{mapping_source}: sensors.{key}.format {fmt!r}; expected one of {', '.join(WIFI_FORMATS)}")
    chip = sensor.chip if sensor.chip is not None else mapped.get("chip")
    if chip is not None and fmt != "nexmon":
        raise ConfigError(f"{source}: sensors.{key}.chip: only nexmon captures take a chip; {path.name} is {fmt}")
    stream = _read_wifi(fmt, path, rx, chip)
    clock = _clock(sensor, mapped)
    offset = _offset(clock, float(stream.t_s[0]))
    flags = receiver_flags(rx, stream, WIFI_FS)
    notes = _subcarrier_notes(stream.flags)
    if "subcarriers" in mapped and notes != mapped["subcarriers"]:
        flags.append(f"rx{rx}: subcarrier mapping differs from the conversion's ({'; '.join(notes) or 'native 5300 grid'}"
                     f" here, {'; '.join(mapped['subcarriers']) or 'native 5300 grid'} in {mapping_source})")
    t = stream.t_s + offset
    on_timeline = Stream(t, stream.values, stream.flags, stream.source)
    return Track(key, "wifi", fmt, str(path), offset, clock, 1.0 / WIFI_FS, segments(t, cfg.windows.max_gap_s), flags,
                 on_timeline, {"rx": rx, "chip": chip, "subcarriers": notes,
                               "antennas": [f.split(": ", 1)[-1] for f in stream.flags if "antenna" in f or "cores" in f]})


# ------------------------------------------------------------------------------------------------ RFID
def _open_rfid(sensor: RfidSensor, cfg: SessionConfig, base: Path, source: str, mapped: dict[str, Any],
               mapping_source: str) -> Track:
    path = _path(base, sensor.path, "sensors.rfid.path", source)
    tag_map: list[str] | Path | None = None
    tag_source = ""
    if sensor.tag_map is not None:
        tag_path = _path(base, sensor.tag_map, "sensors.rfid.tag_map", source)
        tag_map, tag_source = load_tag_map(tag_path), str(tag_path)
        if mapped.get("tag_map") and tag_map != mapped["tag_map"]:
            _conflict(source, "rfid", "tag_map", f"{tag_path} lists other EPCs or another order than {mapping_source}")
    elif mapped.get("tag_map"):
        tag_map, tag_source = list(mapped["tag_map"]), f"{mapping_source} ({mapped.get('tag_map_source', '')})"
    antenna = sensor.antenna if sensor.antenna is not None else mapped.get("antenna")
    log = read_impinj_log(path, tag_map=tag_map, antenna=antenna, time_unit=sensor.time_unit)
    clock = _clock(sensor, mapped)
    offset = _offset(clock, float(log.t_s[0]))
    on_timeline = dataclasses.replace(log, t_s=log.t_s + offset)
    mapping = {"tag_map": list(log.epcs), "tag_map_source": tag_source or "none: the first EPCs read (a guess, flagged)",
               "antenna": log.antenna, "time_unit": sensor.time_unit, "columns": log.columns,
               "row_order": "row k of the (23, 148) array is tag_map[k]"}
    return Track("rfid", "rfid", "impinj", str(path), offset, clock, WINDOW_S / N_SLOTS,
                 segments(on_timeline.t_s, cfg.windows.max_gap_s), list(log.flags), on_timeline, mapping)


# ---------------------------------------------------------------------------------------------- mmWave
def _radar_config(data: Any, mapping_source: str) -> RadarConfig:
    if not isinstance(data, dict):
        raise DataError(f"{mapping_source}: sensors.mmwave.radar_config must be a mapping; got {data!r}")
    try:
        cfg = RadarConfig(**data)
    except TypeError as err:
        raise DataError(f"{mapping_source}: sensors.mmwave.radar_config: {err}") from None
    cfg.check(f"{mapping_source}: sensors.mmwave.radar_config")
    return cfg


def _open_mmwave(sensor: MmwaveSensor, base: Path, source: str, mapped: dict[str, Any], mapping_source: str) -> Track:
    path = _path(base, sensor.path, "sensors.mmwave.path", source)
    radar: RadarConfig | None = None
    config_source = ""
    if sensor.radar_config is not None:
        cfg_path = _path(base, sensor.radar_config, "sensors.mmwave.radar_config", source)
        radar, config_source = load_radar_config(cfg_path), str(cfg_path)
    if mapped.get("radar_config") is not None:
        used = _radar_config(mapped["radar_config"], mapping_source)
        if radar is not None and radar != used:
            diff = [f.name for f in dataclasses.fields(RadarConfig) if getattr(radar, f.name) != getattr(used, f.name)]
            _conflict(source, "mmwave", "radar_config", f"{config_source} differs from {mapping_source} in "
                      f"{', '.join(diff)}")
        if radar is None:
            radar, config_source = used, f"{mapping_source} ({mapped.get('radar_config_source', '')})"
    cap: Capture = open_capture(path, radar)
    config_source = config_source or cap.config_source or "none: XRF55's profile assumed (flagged)"
    clutter = sensor.clutter_removal if sensor.clutter_removal is not None else bool(mapped.get("clutter_removal", False))
    clock = _clock(sensor, mapped)
    offset = _offset(clock, 0.0)  # frames have no timestamps: the device clock starts at the first frame
    fr = cap.config.frame_rate
    mapping = {"radar_config": dataclasses.asdict(cap.config), "radar_config_source": config_source,
               "clutter_removal": clutter, "n_frames": cap.n_frames, "files": [str(p) for p in cap.files]}
    span = Span(offset, offset + (cap.n_frames - 1) / fr)
    return Track("mmwave", "mmwave", "dca1000", str(path), offset, clock, 1.0 / fr, [span], capture_flags(cap), cap,
                 mapping)


def open_tracks(cfg: SessionConfig, base: Path, source: str, mapping: dict[str, Any] | None = None,
                mapping_source: str = "convert.json") -> list[Track]:
    """Read every capture of a session onto the session timeline, in modality order (mmwave, wifi rx1..rx3, rfid).

    Args:
        cfg: the session; base: the folder its relative paths start from; source: its name for messages.
        mapping: the `sensors` entries of an earlier conversion's convert.json (key -> entry), or None.

    Raises:
        DataError: a missing or unreadable capture, tag map or radar config (the message names the key).
        ConfigError: a session value that contradicts the mapping.
    """
    mapping = mapping or {}
    tracks: list[Track] = []
    s = cfg.sensors
    if s.mmwave is not None:
        tracks.append(_open_mmwave(s.mmwave, base, source, mapping.get("mmwave", {}), mapping_source))
    for name in RECEIVERS:
        r = getattr(s.wifi, name)
        if r is not None:
            tracks.append(_open_wifi(name, r, cfg, base, source, mapping.get(f"wifi.{name}", {}), mapping_source))
    if s.rfid is not None:
        tracks.append(_open_rfid(s.rfid, cfg, base, source, mapping.get("rfid", {}), mapping_source))
    return tracks


def overlap_report(tracks: list[Track], source: str) -> tuple[list[str], tuple[float, float] | None]:
    """Each track's time range, and the range all of them cover; lines for the log and convert's summary.

    Raises:
        DataError: a track whose range overlaps no other track's (its clock offset is almost surely wrong).
    """
    lines = []
    for t in tracks:
        a, b = t.range_s
        covered = sum(s.end - s.start + t.period_s for s in t.spans)
        gaps = f", {len(t.spans) - 1} gap(s)" if len(t.spans) > 1 else ""
        lines.append(f"{t.key:<9} {t.format:<10} {a:.3f} .. {b:.3f} s ({covered:.1f} s of records{gaps}; "
                     f"offset {t.offset_s:+.3f} s)  {t.path}")
    if len(tracks) > 1:
        for t in tracks:
            a, b = t.range_s
            others = [o for o in tracks if o is not t and min(b, o.range_s[1]) > max(a, o.range_s[0])]
            if not others:
                listing = "; ".join(f"{o.key} {o.range_s[0]:.3f}..{o.range_s[1]:.3f} s" for o in tracks)
                raise DataError(f"{source}: {t.key} overlaps no other sensor in time ({listing}); set each sensor's "
                                "offset_s (added to its clock) or start (time of its first record) in the session")
    lo = max(t.range_s[0] for t in tracks)
    hi = min(t.range_s[1] for t in tracks)
    common = (lo, hi) if hi > lo else None
    lines.append(f"all sensors overlap {lo:.3f} .. {hi:.3f} s ({hi - lo:.1f} s)" if common
                 else "the sensors never all record at once")
    return lines, common
