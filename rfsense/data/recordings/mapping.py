"""convert.json: every mapping a conversion used, so later captures of the same set-up are read the same way.

`rfsense convert` writes it beside the XRF55 tree it makes; `rfsense infer SESSION.yaml --mapping convert.json`
(and `rfsense convert --mapping`) read it back: each sensor's entry (tag map, antenna, radar configuration,
clutter removal, receiver format and chip, clock setting) fills in what the new session leaves open
(`rfsense.data.recordings.tracks`). Its `samples` list (flags per written window) and `skipped` list (why a
trial was not written) are a record for the user; reading it uses only `format` and `sensors`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rfsense.errors import DataError

__all__ = ["FORMAT", "MAPPING_FILE", "read_mapping"]

FORMAT = "rfsense-convert/1"
MAPPING_FILE = "convert.json"
_KEYS = ("mmwave", "wifi.rx1", "wifi.rx2", "wifi.rx3", "rfid")


def read_mapping(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The per-sensor mappings of a convert.json (sensor key -> entry).

    Raises:
        DataError: missing or unreadable file, not JSON, another format, or a malformed `sensors` section.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise DataError(f"mapping {path}: cannot read ({err.strerror}); expected the convert.json of an "
                        "earlier `rfsense convert`") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"mapping {path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DataError(f"mapping {path}: format {got!r}; expected {FORMAT!r} (the convert.json `rfsense convert` "
                        "writes)")
    sensors = data.get("sensors")
    if not isinstance(sensors, dict) or not all(isinstance(v, dict) for v in sensors.values()):
        raise DataError(f"mapping {path}: `sensors` must map sensor keys to mappings")
    unknown = sorted(set(sensors) - set(_KEYS))
    if unknown:
        raise DataError(f"mapping {path}: unknown sensor {unknown[0]!r}; expected any of {', '.join(_KEYS)}")
    for key, entry in sensors.items():
        problem = _entry_problem(entry)
        if problem:
            raise DataError(f"mapping {path}: sensors.{key}.{problem}")
    return sensors


def _entry_problem(entry: dict[str, Any]) -> str | None:
    """What is wrong with the fields of one sensor entry that reading captures uses, or None."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    clock = entry.get("clock", {})
    if not isinstance(clock, dict) or len(clock) > 1 or not all(
            k in ("offset_s", "start") and number(v) for k, v in clock.items()):
        return f"clock must be {{}}, {{offset_s: seconds}} or {{start: seconds}}; got {clock!r}"
    tags = entry.get("tag_map")
    if tags is not None and (not isinstance(tags, list) or len(tags) != 23 or not all(isinstance(e, str) for e in tags)):
        return "tag_map must list the 23 tag EPCs in row order"
    for name, ok, want in (("antenna", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
                           ("chip", lambda v: isinstance(v, str), "a string"),
                           ("format", lambda v: isinstance(v, str), "a string"),
                           ("clutter_removal", lambda v: isinstance(v, bool), "true or false"),
                           ("radar_config", lambda v: isinstance(v, dict), "a mapping of radar settings"),
                           ("subcarriers", lambda v: isinstance(v, list), "a list of notes")):
        if entry.get(name) is not None and not ok(entry[name]):
            return f"{name} must be {want}; got {entry[name]!r}"
    return None
