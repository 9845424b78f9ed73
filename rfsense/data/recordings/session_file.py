"""The session file: one capture per sensor, their clocks, and the labelled trials (YAML, validated).

    sensors:
      mmwave: {path: adc_Raw_0.bin, radar_config: adc.mmwave.json, start: 0}
      wifi:
        rx1: {path: rx1.dat, format: intel5300, start: 0}     # up to three receivers: rx1, rx2, rx3
      rfid: {path: reads.csv, tag_map: tags.txt, offset_s: -1700000000.0}
    volunteer: 3
    first_trial: 1
    trials:
      - {action: 12, start: 10.0}
      - {action: 12, start: 20.0}
      - {action: 7, start: 2024-05-01T10:00:30, trial: 5}
    windows: {hop_s: 5.0, min_coverage: 0.8, max_gap_s: 0.5}

Paths are relative to the session file. Clock of each sensor (one of, default offset_s 0): `offset_s` is added
to the sensor's own timestamps (session time = device time + offset_s), `start` puts the capture's first
record at that session time (for captures started together, or a clock that is not comparable). Device
times are those the reader gives: Impinj: seconds since the epoch (UTC); DCA1000: seconds from the first
frame; Intel 5300: the NIC's microsecond counter in s; Atheros: the NIC's TSF in s; nexmon: the pcap host
clock; ESP32: real_timestamp, else local_timestamp; PicoScenes: the RxSBasic timestamp. Session times and
trial starts are seconds, or ISO date-times (without a zone: UTC), read as seconds since the epoch.

A trial is the one 5 s window from its start. Its number is given (`trial`) or is its order by start time
among the session's trials of the same volunteer and action, counted from `first_trial` and skipping
numbers other trials of that volunteer and action give explicitly. Any problem is one `ConfigError` line
naming the file and the key.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field

from rfsense.config import (
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    StrictBool,
    StrictInt,
    StrictStr,
    from_data,
    schema,
)
from rfsense.errors import ConfigError
from rfsense.modalities import N_CLASSES

__all__ = [
    "RECEIVERS",
    "WIFI_FORMATS",
    "WINDOW_S",
    "MmwaveSensor",
    "RfidSensor",
    "SensorsConfig",
    "SessionConfig",
    "Trial",
    "TrialConfig",
    "WifiConfig",
    "WifiReceiver",
    "WindowsConfig",
    "load_session_config",
    "resolve_trials",
    "to_seconds",
]

WINDOW_S = 5.0  # XRF55's sample length; the model's input shapes fix it
WIFI_FORMATS = ("intel5300", "atheros", "nexmon", "esp32", "picoscenes")
RECEIVERS = ("rx1", "rx2", "rx3")


def to_seconds(value: Any) -> float:
    """Seconds on the session timeline: a number, or an ISO date-time (no zone: UTC) as seconds since the epoch."""
    if isinstance(value, bool):
        raise ValueError(f"must be seconds (a number) or an ISO date-time such as 2024-05-01T10:00:00, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("must be seconds (a number) or an ISO date-time such as 2024-05-01T10:00:00, "
                             f"got {value!r}") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    raise ValueError(f"must be seconds (a number) or an ISO date-time such as 2024-05-01T10:00:00, got {value!r}")


SessionTime = Annotated[float, BeforeValidator(to_seconds)]


@schema
class _Capture:
    path: StrictStr
    offset_s: float | None = None  # session time = device time + offset_s (default 0)
    start: SessionTime | None = None  # or: the session time of the capture's first record

    def __post_init__(self) -> None:
        if self.offset_s is not None and self.start is not None:
            raise ValueError("give offset_s (added to the device clock) or start (time of the first record), not both")


@schema
class WifiReceiver(_Capture):
    """One WiFi receiver's capture; its 90 channels become rx*90 + antenna*30 + subcarrier."""

    format: Literal["intel5300", "atheros", "nexmon", "esp32", "picoscenes"] | None = None  # None: from content
    chip: StrictStr | None = None  # nexmon only: force the chip (default: from the capture)


@schema
class RfidSensor(_Capture):
    """An Impinj reader CSV log."""

    format: Literal["impinj"] = "impinj"
    tag_map: StrictStr | None = None  # file with the 23 EPCs in row order; None: first 23 read (flagged)
    antenna: StrictInt | None = None  # keep this antenna's reads; None: the busiest antenna
    time_unit: Literal["auto", "us", "ms", "s"] = "auto"  # of numeric timestamps


@schema
class WifiConfig:
    rx1: WifiReceiver | None = None
    rx2: WifiReceiver | None = None
    rx3: WifiReceiver | None = None


@schema
class MmwaveSensor(_Capture):
    """A TI radar + DCA1000 capture (any part of a split capture names it)."""

    format: Literal["dca1000"] = "dca1000"
    radar_config: StrictStr | None = None  # mmWave Studio JSON or YAML; None: <name>.mmwave.json beside it, else XRF55
    clutter_removal: StrictBool | None = None  # subtract the mean over chirps; None: false (or convert.json's)


@schema
class SensorsConfig:
    mmwave: MmwaveSensor | None = None
    wifi: WifiConfig = WifiConfig()
    rfid: RfidSensor | None = None

    def __post_init__(self) -> None:
        if self.mmwave is None and self.rfid is None and all(getattr(self.wifi, r) is None for r in RECEIVERS):
            raise ValueError("no capture given; expected at least one of mmwave, wifi.rx1..rx3, rfid")


@schema
class TrialConfig:
    action: Annotated[int, Field(strict=True, ge=1, le=N_CLASSES)]
    start: SessionTime  # session time the trial's 5 s window starts
    volunteer: NonNegativeInt | None = None  # default: the session's volunteer
    trial: PositiveInt | None = None  # default: order among this volunteer's trials of the action


@schema
class WindowsConfig:
    hop_s: PositiveFloat = WINDOW_S  # step between window starts of `rfsense infer` (not trials)
    # A sensor covering less than this share of a window is absent for it; between it and 1: flagged.
    min_coverage: Annotated[float, Field(gt=0, le=1)] = 0.8
    max_gap_s: PositiveFloat = 0.5  # records further apart split a capture; a window never bridges the gap


@schema
class SessionConfig:
    sensors: SensorsConfig
    name: StrictStr | None = None  # default: the session file's name without suffix
    volunteer: NonNegativeInt | None = None
    first_trial: PositiveInt = 1
    trials: tuple[TrialConfig, ...] = ()
    windows: WindowsConfig = WindowsConfig()


def load_session_config(path: str | os.PathLike[str]) -> SessionConfig:
    """Read and validate a session YAML file.

    Raises:
        ConfigError: unreadable file, not YAML, or a bad key or value (one line naming the file and the key).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"session file {path}: cannot read ({err.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"session file {path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"session file {path}: expected a mapping with a `sensors:` key, got {type(data).__name__}")
    try:
        return from_data(SessionConfig, data)
    except ConfigError as err:
        raise ConfigError(f"session file {path}: {err}") from None


@dataclass(frozen=True)
class Trial:
    """One labelled 5 s window: XRF55 key (volunteer, action, trial), start on the session timeline (s), and
    `index`, its position in the session file's list (for messages: trials.<index>)."""

    volunteer: int | None
    action: int
    trial: int
    start_s: float
    index: int

    @property
    def name(self) -> str:
        return f"{self.volunteer}_{self.action}_{self.trial}"


def resolve_trials(cfg: SessionConfig, source: str = "session") -> list[Trial]:
    """The session's trials with volunteer and trial number filled in, in start-time order.

    Raises:
        ConfigError: two trials with the same volunteer, action and trial number.
    """
    by_key: dict[tuple[int | None, int], list[tuple[int, TrialConfig]]] = {}
    for i, t in enumerate(cfg.trials):
        v = t.volunteer if t.volunteer is not None else cfg.volunteer
        by_key.setdefault((v, t.action), []).append((i, t))
    out: list[Trial] = []
    for (v, a), items in by_key.items():
        taken: dict[int, int] = {}
        for i, t in items:
            if t.trial is not None:
                if t.trial in taken:
                    raise ConfigError(f"{source}: trials.{i}.trial: volunteer {v}, action {a}, trial {t.trial} is "
                                      f"also trials.{taken[t.trial]}")
                taken[t.trial] = i
        number = cfg.first_trial
        for i, t in sorted(items, key=lambda it: (it[1].start, it[0])):
            if t.trial is not None:
                out.append(Trial(v, a, t.trial, t.start, i))
                continue
            while number in taken:
                number += 1
            taken[number] = i
            out.append(Trial(v, a, number, t.start, i))
    return sorted(out, key=lambda t: (t.start_s, t.index))
