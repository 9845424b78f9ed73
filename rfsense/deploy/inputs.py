"""Turn what users have on disk into inference samples (numpy only; no torch).

- an XRF55-layout folder (any layout) or one `.npy` of a sample (its partners are found by key),
- `.npz` bundles with keys `mmwave`, `wifi`, `rfid` (any may be missing),
- raw captures in any registered format (`rfsense.data.recordings.formats`, recognised by content), cut
  into windows; files of one format given together form one recording (WiFi: one per receiver, up to 3),
- session files (`.yaml`/`.yml`, `rfsense.data.recordings.session`): every sensor's capture on one timeline,
  cut into windows at the same times; a sensor covering too little of a window is absent for it (the note
  says why). `CaptureOptions.hop_s` overrides the session's hop; `extra["mapping"]` names a convert.json.

A file that cannot be read does not stop the others: its modality becomes None and a note says why,
so the runtime's health report carries it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rfsense.data.layout import discover, parse_key
from rfsense.data.recordings.formats import FORMATS, CaptureOptions, detect, get_format
from rfsense.data.validate import load_npy, load_npz
from rfsense.errors import DataError
from rfsense.modalities import FOLDERS, MODALITIES

__all__ = ["InferSample", "iter_inputs"]

_NPZ_KEYS = set(MODALITIES)


@dataclass
class InferSample:
    id: str
    arrays: dict[str, np.ndarray | None]
    notes: list[str] = field(default_factory=list)


def _load_npy(path: Path, notes: list[str]) -> np.ndarray | None:
    try:
        return load_npy(path)
    except DataError as err:
        notes.append(f"unreadable: {err}")
        return None


def _from_files(sample_id: str, files: dict[str, Path]) -> InferSample:
    notes: list[str] = []
    arrays = {m: (_load_npy(files[m], notes) if m in files else None) for m in MODALITIES}
    return InferSample(sample_id, arrays, notes)


def _single_npy(path: Path) -> InferSample:
    """One `<v>_<a>_<t>.npy` inside a modality folder: find its partners by key in sibling folders."""
    key = parse_key(path.name)
    folder_to_mod = {v.lower(): k for k, v in FOLDERS.items()}
    if key is None or path.parent.name.lower() not in folder_to_mod:
        raise DataError(f"{path}: a single .npy input must be <volunteer>_<action>_<trial>.npy inside a "
                        f"{'/'.join(FOLDERS.values())} folder")
    files: dict[str, Path] = {}
    for sibling in path.parent.parent.iterdir():
        mod = folder_to_mod.get(sibling.name.lower())
        if mod is None or not sibling.is_dir():
            continue
        for candidate in sibling.glob("*.npy"):
            if parse_key(candidate.name) == key:
                files[mod] = candidate
                break
    return _from_files(str(key), files)


def _npz(path: Path) -> InferSample:
    bundle = load_npz(path)
    unknown = set(bundle) - _NPZ_KEYS
    if unknown:
        raise DataError(f"{path}: unknown arrays {sorted(unknown)}; expected any of mmwave, wifi, rfid")
    return InferSample(path.stem, {m: bundle.get(m) for m in MODALITIES})


_SESSION_SUFFIXES = (".yaml", ".yml")


def _is_capture(p: Path) -> bool:
    return p.is_file() and p.suffix not in (".npy", ".npz") and p.suffix.lower() not in _SESSION_SUFFIXES


def _session(path: Path, options: CaptureOptions) -> Iterator[InferSample]:
    """Windows of every sensor of a session file, one sample per window (absent sensors' arrays are None)."""
    from rfsense.data.recordings.session import grid_starts, open_session, session_windows

    session = open_session(path, options.extra.get("mapping"))
    for w in session_windows(session, grid_starts(session, options.hop_s)):
        yield InferSample(f"{session.name}@{w.start_s:.1f}-{w.end_s:.1f}s", dict(w.arrays), w.notes)


def iter_inputs(
    paths: list[str | os.PathLike[str]], *, options: CaptureOptions | None = None, input_format: str | None = None
) -> Iterator[InferSample]:
    """Yield inference samples from the given paths in order.

    Folders, `.npy` and `.npz` are read as XRF55 samples, `.yaml`/`.yml` as session files; any other file is a
    raw capture whose format is recognised from its content (or forced with `input_format`). Captures of one
    format given together form one recording (WiFi: one file per receiver).
    """
    options = options or CaptureOptions()
    groups: dict[str, list[Path]] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise DataError(f"input {p} does not exist")
        if _is_capture(p):
            fmt = get_format(input_format) if input_format else detect(p)
            if fmt is None:
                known = ", ".join(f"{f.name} ({f.description})" for f in FORMATS.values())
                raise DataError(f"input {p}: not a folder, .npy or .npz, and not a capture format rfsense reads: {known}")
            groups.setdefault(fmt.name, []).append(p)
        elif p.suffix.lower() in _SESSION_SUFFIXES:
            yield from _session(p, options)
        elif p.is_dir():
            for s in discover(p).samples:
                prefix = "/".join(x for x in (s.origin, s.scene) if x)
                yield _from_files(f"{prefix}/{s.key}" if prefix else str(s.key), dict(s.files))
        elif p.suffix == ".npz":
            yield _npz(p)
        else:
            yield _single_npy(p)
    for name, files in groups.items():
        fmt = FORMATS[name]
        if len(files) > fmt.max_files:
            raise DataError(f"{len(files)} {name} captures given; one recording takes at most {fmt.max_files}")
        for w in fmt.windows(files, options):
            stem = "+".join(Path(s).stem for s in w.sources)
            arrays: dict[str, np.ndarray | None] = {m: None for m in MODALITIES}
            arrays[w.modality] = w.array
            yield InferSample(f"{stem}@{w.start_s:.1f}-{w.end_s:.1f}s", arrays, list(w.flags))
