"""Discover XRF55 samples under a root in every layout users meet, and split them.

Layouts (all matched by the (volunteer, action, trial) key parsed from the file name, never by
string replacement of paths nor by sorting names):

- official flat:   ROOT/{WiFi,RFID,mmWave}/<v>_<a>_<t>.npy
- split:           ROOT/{train_data,test_data}/{WiFi,RFID,mmWave}/<v>_<a>_<t>.npy
- download scenes: ROOT/Scene1/Scene1_part2/{WiFi,RFID,mmWave}/<v>_<a>_<t>.npy (any depth)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from rfsense.config import NonNegativeInt, PositiveInt, schema
from rfsense.errors import DataError
from rfsense.modalities import FOLDERS, MODALITIES, N_CLASSES, Modality

__all__ = [
    "Discovery",
    "Problem",
    "Sample",
    "SampleKey",
    "SplitSpec",
    "discover",
    "parse_key",
    "split_samples",
]

_FOLDER_TO_MOD: dict[str, Modality] = {v.lower(): k for k, v in FOLDERS.items()}


class SampleKey(NamedTuple):
    volunteer: int
    action: int  # 1..55 as in the file name
    trial: int  # 1..20

    @property
    def label(self) -> int:
        return self.action - 1

    def __str__(self) -> str:
        return f"{self.volunteer}_{self.action}_{self.trial}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the tree; `kind` is a short machine-readable tag."""

    kind: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.message}"


@dataclass
class Sample:
    key: SampleKey
    files: dict[Modality, Path] = field(default_factory=dict)
    scene: str = ""  # e.g. "Scene1" for the download layout, "" when the layout has none
    origin: str = ""  # "train_data" / "test_data" in the split layout, else ""

    @property
    def label(self) -> int:
        return self.key.label

    @property
    def available(self) -> tuple[bool, bool, bool]:
        return tuple(m in self.files for m in MODALITIES)  # type: ignore[return-value]


@dataclass
class Discovery:
    root: Path
    samples: list[Sample]
    problems: list[Problem]

    @property
    def layout(self) -> str:
        if any(s.origin for s in self.samples):
            return "split"
        if any(s.scene for s in self.samples):
            return "scenes"
        return "flat"


def parse_key(name: str) -> SampleKey | None:
    """Parse '<v>_<a>_<t>.npy' (ids zero-padded or not) into a key; None if the name does not fit."""
    if not name.endswith(".npy"):
        return None
    parts = name[:-4].split("_")
    # ASCII digits only: str.isdigit() also accepts '²' (which int() refuses) and '１' (which it reads as 1).
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    v, a, t = (int(p) for p in parts)
    return SampleKey(v, a, t)


def _group_of(rel_parts: tuple[str, ...]) -> tuple[str, str]:
    """(scene, origin) from the folders above the modality folder."""
    scene = origin = ""
    for part in rel_parts:
        low = part.lower()
        if low in ("train_data", "test_data"):
            origin = low
        elif low.startswith("scene") and not scene:
            scene = part.split("_")[0]  # Scene1_part2 -> Scene1
    return scene, origin


def discover(root: str | os.PathLike[str]) -> Discovery:
    """Index every sample under `root`.

    Returns a Discovery whose samples are ordered by (origin, scene, volunteer, action, trial)
    numerically, and whose problems list bad names, duplicate keys and missing partner files.

    Raises:
        DataError: `root` does not exist or holds no modality folder at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a folder")
    problems: list[Problem] = []
    # (origin, scene, key) -> Sample; group folders keep e.g. Scene1 and Scene2 copies apart.
    table: dict[tuple[str, str, SampleKey], Sample] = {}
    seen: dict[tuple[str, SampleKey, Modality], Path] = {}
    n_mod_dirs = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        mod = _FOLDER_TO_MOD.get(here.name.lower())
        if mod is None:
            continue
        n_mod_dirs += 1
        scene, origin = _group_of(here.relative_to(root).parts[:-1])
        for name in filenames:
            path = here / name
            if not path.exists():  # a symlink whose target is gone: say so once, never read it
                problems.append(Problem("bad_file", str(path), "dangling symlink (its target does not exist)"))
                continue
            key = parse_key(name)
            if key is None:
                if not name.startswith("."):
                    problems.append(Problem("bad_name", str(path), "expected <volunteer>_<action>_<trial>.npy"))
                continue
            if not 1 <= key.action <= N_CLASSES or key.trial < 1:
                problems.append(
                    Problem("bad_name", str(path), f"action {key.action} not in 1..{N_CLASSES} or trial {key.trial} < 1")
                )
                continue
            dup = seen.get((origin, key, mod))
            if dup is not None:
                problems.append(Problem("duplicate_key", str(path), f"key {key} ({mod}) also at {dup}"))
                continue
            seen[(origin, key, mod)] = path
            sample = table.setdefault((origin, scene, key), Sample(key, scene=scene, origin=origin))
            sample.files[mod] = path
    if n_mod_dirs == 0:
        raise DataError(
            f"no {'/'.join(FOLDERS.values())} folders under {root}; expected the XRF55 layout "
            "ROOT/{WiFi,RFID,mmWave}/<v>_<a>_<t>.npy (or train_data/test_data or Scene*/ above them)"
        )
    samples = sorted(table.values(), key=lambda s: (s.origin, s.scene, s.key))
    for s in samples:
        missing = [m for m in MODALITIES if m not in s.files]
        if missing:
            some = next(iter(s.files.values()))
            problems.append(
                Problem("missing_partner", str(some), f"key {s.key} has no {', '.join(FOLDERS[m] for m in missing)} file")
            )
    return Discovery(root, samples, problems)


@schema
class SplitSpec:
    """How to split samples into train and test.

    protocol "trials": train trials in `train_trials` (official: 1..14), everything else is test.
    protocol "volunteers": cross-subject; volunteers in `test_volunteers` are test.
    protocol "folders": use the train_data/test_data folders of the split layout.
    """

    protocol: Literal["trials", "volunteers", "folders"] = "trials"
    train_trials: tuple[PositiveInt, ...] = tuple(range(1, 15))
    test_volunteers: tuple[NonNegativeInt, ...] = ()


def split_samples(samples: list[Sample], spec: SplitSpec = SplitSpec()) -> dict[str, list[Sample]]:
    """Assign samples to 'train' and 'test' by `spec` (default: the official trials 1-14 / 15-20)."""
    out: dict[str, list[Sample]] = {"train": [], "test": []}
    for s in samples:
        if spec.protocol == "trials":
            train = s.key.trial in spec.train_trials
        elif spec.protocol == "volunteers":
            train = s.key.volunteer not in spec.test_volunteers
        else:
            if not s.origin:
                raise DataError(f"split protocol 'folders' needs train_data/test_data folders; {s.files} has none")
            train = s.origin == "train_data"
        out["train" if train else "test"].append(s)
    return out
