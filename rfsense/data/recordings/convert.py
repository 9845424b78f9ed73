"""`rfsense convert SESSION.yaml OUT`: a session's labelled trials -> an XRF55-layout tree to train on.

    summary = convert_session("session.yaml", "data/mine/session1")
    # data/mine/session1/{mmWave,WiFi,RFID}/<volunteer>_<action>_<trial>.npy + convert.json

Each trial is the 5 s window from its start (`session.session_windows`), written for every modality the
session records: mmWave (1, 17, 256, 128) float32 as XRF55 stores it, WiFi (270, 1000) float64, RFID (23, 148)
float64. A trial for which any sensor (each WiFi receiver counts) is absent is not written, so every written
sample has all its partner files and `rfsense data check` accepts the tree; it is listed in convert.json's
`skipped` with the reason. Partly covered windows are written and their flags kept in `samples`.
convert.json (`rfsense.data.recordings.mapping`) also holds every mapping used, for `--mapping` later.

The tree is written into a temporary folder beside OUT and renamed onto it at the end, so OUT never holds a
half conversion. OUT must be new or empty; an earlier conversion there is replaced only with overwrite=True,
and a folder holding anything else is never deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rfsense import __version__
from rfsense._io import atomic_write_json
from rfsense.config import to_data
from rfsense.data.recordings.mapping import FORMAT, MAPPING_FILE
from rfsense.data.recordings.session import Session, open_session, session_windows
from rfsense.errors import ConfigError, DataError
from rfsense.modalities import FOLDERS, MODALITIES

__all__ = ["LAYOUT", "convert_session"]

_log = logging.getLogger(__name__)

# What each written array holds; convert.json repeats it so the tree documents itself.
LAYOUT = {
    "mmwave": "(1, 17, 256, 128) float32: 17 steps of 5 or 6 frames (frame j of the window -> step j * 17 // 100) x "
              "256 range bins x 128 Doppler bins around zero velocity, |FFT| over window gains, mean over RX",
    "wifi": "(270, 1000) float64 |H|: channel rx*90 + antenna*30 + subcarrier, the 30 subcarrier groups of the "
            "Intel 5300 grid over the 20 MHz primary channel, receivers rx1..rx3 of the session, 200 Hz",
    "rfid": "(23, 148) float64 wrapped phase (rad): row k is tag_map[k], slot i = latest read before its end "
            "(5 / 148 s slots)",
}


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"output {out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not (out / MAPPING_FILE).is_file():
        raise DataError(f"output {out} holds other files; refusing to write into it or delete it: give a new or "
                        "empty folder")
    if not overwrite:
        raise DataError(f"output {out} holds an earlier conversion ({out / MAPPING_FILE}); use --overwrite to "
                        "replace it, or give another folder")


def _sensor_entries(session: Session) -> dict[str, Any]:
    out = {}
    for t in session.tracks:
        a, b = t.range_s
        out[t.key] = {"format": t.format, "path": t.path, "clock": t.clock, "offset_s": t.offset_s,
                      "range_s": [a, b], "gaps": len(t.spans) - 1, "flags": t.flags, **t.mapping}
    return out


def convert_session(session_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
                    mapping: str | os.PathLike[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Write the session's labelled trials as an XRF55-layout tree with convert.json at `out`.

    Args:
        session_path: the session YAML (`session_file`); it must list trials and give every trial a volunteer.
        out: output folder (new, empty, or an earlier conversion with overwrite=True).
        mapping: an earlier conversion's convert.json whose mappings fill in what the session leaves open.

    Returns:
        The convert.json content: {"format", "session", "sensors", "overlap", "samples", "skipped", ...}.

    Raises:
        ConfigError: bad session file, no trials, a trial without volunteer, a conflict with `mapping`.
        DataError: unreadable captures, sensors that do not overlap, no trial every sensor covers, or an
            output folder that may not be written.
    """
    out = Path(out)
    _check_out(out, overwrite)
    session = open_session(session_path, mapping)
    source = f"session file {session.path}"
    if not session.trials:
        raise ConfigError(f"{source}: trials: none listed, nothing to convert; list each trial's action and start")
    for t in session.trials:
        if t.volunteer is None:
            raise ConfigError(f"{source}: trials.{t.index}.volunteer: no volunteer for this trial; set `volunteer:` at "
                              "the top of the session or on the trial")
    out.parent.mkdir(parents=True, exist_ok=True)
    modalities = [m for m in MODALITIES if any(t.modality == m for t in session.tracks)]
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".converting", dir=out.parent))
    try:
        for m in modalities:
            (tmp / FOLDERS[m]).mkdir()
        samples, skipped = _write_trials(session, tmp)
        if not samples:
            raise DataError(f"{source}: none of the {len(skipped)} trials is covered by every sensor (e.g. trial "
                            f"{skipped[0]['name']} at {skipped[0]['start_s']:.2f} s: {skipped[0]['reason']})")
        meta = {
            "format": FORMAT,
            "created_by": f"rfsense {__version__}",
            "session": str(session.path),
            "name": session.name,
            "window_s": 5.0,
            "min_coverage": session.config.windows.min_coverage,
            "max_gap_s": session.config.windows.max_gap_s,
            "layout": {m: LAYOUT[m] for m in modalities},
            "sensors": _sensor_entries(session),
            "overlap": session.report,
            "common_s": list(session.common_s) if session.common_s else None,
            "mapping_from": session.mapping_source,
            "samples": samples,
            "skipped": skipped,
        }
        atomic_write_json(tmp / MAPPING_FILE, to_data(meta))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _log.info("%s: wrote %d samples to %s (%d trials skipped)", session.name, len(samples), out, len(skipped))
    return to_data({**meta, "out": str(out)})


def _write_trials(session: Session, folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    samples, skipped = [], []
    trials = session.trials
    for trial, w in zip(trials, session_windows(session, [t.start_s for t in trials]), strict=True):
        key = {"name": trial.name, "volunteer": trial.volunteer, "action": trial.action, "trial": trial.trial,
               "start_s": trial.start_s}
        if w.absent:
            reason = "; ".join(f"{k} absent: {r}" for k, r in w.absent.items())
            skipped.append({**key, "reason": reason})
            _log.warning("trial %s at %.2f s not written: %s", trial.name, trial.start_s, reason)
            continue
        for m, arr in w.arrays.items():
            if arr is None:
                continue
            arr = arr[None].astype(np.float32) if m == "mmwave" else arr
            _save(folder / FOLDERS[m] / f"{trial.name}.npy", arr)
        samples.append({**key, "file": f"{trial.name}.npy", "coverage": w.coverage, "flags": w.flags})
    return samples, skipped


def _save(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr)
