"""Captures for session tests: two simulated trials recorded back to back by a radar and an RFID reader
(`rfsense synth --raw`), plus the vendored real Intel 5300 capture as a WiFi receiver.

    caps = session_captures(tmp_path_factory)
    write_session(caps.folder / "s.yaml", {"mmwave": {...}, ...}, trials=[...])

`caps.folder` holds:
- radar_Raw_0.bin, radar_Raw_1.bin: the DCA1000 captures of synth samples 1_1_1 and 1_2_1 (links), one split
  capture of 200 frames = 10 s, plus radar.mmwave.json (XRF55's profile);
- reads.csv: one Impinj log of both trials (trial 1 from RFID_T0 epoch seconds on the reader's clock, trial 2
  5 s later), written by the generator's Impinj writer; tags.txt: the tag map;
- rx1.dat: the real Intel 5300 capture (59.6 s, ~10 packets/s, a 0.6 s gap at 33.9 s of it).
The .npy ground truth of both trials is under caps.synth (XRF55 layout).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rfsense.data.synth import SynthConfig, synthesize
from rfsense.data.synth.config import RAW_STREAM, rng_for
from rfsense.data.synth.raw_rfid import write_raw_rfid
from rfsense.data.synth.sample import world
from rfsense.data.synth.writer import raw_paths, tag_map_path
from tests.conftest import RECORDINGS

RFID_T0 = 1_700_000_060.0  # the reader's clock (epoch s) when trial 1 starts
_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class SessionCaptures:
    folder: Path
    synth: Path


def _combined_log(synth: Path, cfg: SynthConfig) -> str:
    """One reader log of both trials, trial 2 starting 5 s after trial 1 on the reader's clock.

    Each is written by the generator's Impinj writer from its simulated scene; both use one random stream,
    so they share the reader's per-channel phase offsets, as one recording session of a real reader does.
    """
    parts = []
    for action in (1, 2):
        path = synth / f"trial{action}.csv"
        write_raw_rfid(world(cfg, 1, action, 1), rng_for(cfg.seed, RAW_STREAM, 1, 1, 1, 0), path, seed=cfg.seed,
                       scene=1, start_s=RFID_T0 - 1_700_000_000.0 + 5.0 * (action - 1))
        lines = path.read_text().splitlines(keepends=True)
        parts += lines if action == 1 else lines[1:]
    return "".join(parts)


def session_captures(tmp_path_factory) -> SessionCaptures:
    """Build the captures once per test run (two raw synth samples: ~7 s and 160 MB)."""
    if "caps" in _CACHE:
        return _CACHE["caps"]
    root = tmp_path_factory.mktemp("session_captures")
    synth = root / "synth"
    cfg = SynthConfig(volunteers=1, actions=2, trials=1, seed=0)
    synthesize(synth, cfg, raw=True)
    folder = root / "captures"
    folder.mkdir()
    one, two = raw_paths(synth, 1, 1, 1), raw_paths(synth, 1, 2, 1)
    (folder / "radar_Raw_0.bin").symlink_to(one["mmwave_bin"])
    (folder / "radar_Raw_1.bin").symlink_to(two["mmwave_bin"])
    shutil.copy(one["mmwave_config"], folder / "radar.mmwave.json")
    (folder / "reads.csv").write_text(_combined_log(synth, cfg))
    shutil.copy(tag_map_path(synth, 1), folder / "tags.txt")
    shutil.copy(RECORDINGS / "intel5300" / "sample_0x1_ap.dat", folder / "rx1.dat")
    _CACHE["caps"] = SessionCaptures(folder, synth)
    return _CACHE["caps"]


def write_session(path: Path, sensors: dict[str, Any], **top: Any) -> Path:
    """A session YAML at `path` with these sensors and top-level keys (volunteer, trials, windows, ...)."""
    path.write_text(yaml.safe_dump({"sensors": sensors, **top}, sort_keys=False))
    return path


def all_sensors(caps: SessionCaptures, **changes: dict[str, Any]) -> dict[str, Any]:
    """The three sensors with the known clocks that put trial 1 at session time 0 and trial 2 at 5 s."""
    f = caps.folder
    sensors: dict[str, Any] = {
        "mmwave": {"path": str(f / "radar_Raw_0.bin"), "start": 0.0},
        "wifi": {"rx1": {"path": str(f / "rx1.dat"), "start": 0.0}},
        "rfid": {"path": str(f / "reads.csv"), "tag_map": str(f / "tags.txt"), "offset_s": -RFID_T0},
    }
    for key, change in changes.items():
        if change is None:
            sensors.pop(key)
        else:
            sensors[key] = {**sensors[key], **change}
    return sensors
