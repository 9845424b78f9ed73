"""Pack a per-file XRF55 tree into per-split, per-modality memory-mapped arrays.

Layout of a pack folder:

    OUT/pack.json              format, source, settings, split sizes, fingerprint
    OUT/stats.npz              per-channel normalisation statistics (training split only)
    OUT/<split>/<modality>.npy (N, *shape) float16/float32, preprocessing applied once
    OUT/<split>/index.npz      keys (N,3) int, label, volunteer, scene, available (N,3), usable (N,3)

Packing writes into OUT.partial/ and renames it to OUT when complete; an interrupted run resumes
from the last finished chunk, and re-running on a finished pack with the same inputs is a no-op.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rfsense._io import atomic_write_json, atomic_write_text
from rfsense.config import from_data, to_data
from rfsense.data.layout import Sample, SplitSpec, discover, split_samples
from rfsense.data.normstats import NormAccumulator, NormStats
from rfsense.data.preprocess import PreprocessConfig, preprocess
from rfsense.data.quality import STATUSES, QualityConfig, assess
from rfsense.data.validate import load_modality
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES, SHAPES
from rfsense.progress import progress

__all__ = ["Pack", "PackedSplit", "open_pack", "pack", "settings_digest"]

_logger = logging.getLogger(__name__)
FORMAT = "rfsense-pack/2"  # /2: one quality rule with the runtime (data.quality), raw_std
_DTYPES = ("float16", "float32")


@dataclass
class PackedSplit:
    """One split of a pack: memory-mapped arrays plus the index columns (all length N)."""

    arrays: dict[str, np.ndarray]  # modality -> (N, *shape) memmap
    keys: np.ndarray  # (N, 3) int: volunteer, action, trial
    labels: np.ndarray  # (N,) int64, action - 1
    scene: np.ndarray  # (N,) str
    available: np.ndarray  # (N, 3) bool: the file exists
    usable: np.ndarray  # (N, 3) bool: the file exists and preprocessing could repair it

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Pack:
    path: Path
    meta: dict
    stats: NormStats

    def split(self, name: str) -> PackedSplit:
        folder = self.path / name
        if not (folder / "index.npz").is_file():
            raise DataError(f"pack {self.path} has no split '{name}'; it has {', '.join(self.meta['splits'])}")
        with np.load(folder / "index.npz", allow_pickle=False) as idx:
            cols = {k: idx[k] for k in idx.files}
        arrays = {m: np.load(folder / f"{m}.npy", mmap_mode="r", allow_pickle=False) for m in MODALITIES}
        return PackedSplit(arrays, cols["keys"], cols["labels"], cols["scene"], cols["available"], cols["usable"])

    @property
    def preprocessing(self) -> PreprocessConfig:
        return from_data(PreprocessConfig, self.meta["preprocessing"], "pack preprocessing")

    @property
    def raw_std(self) -> dict[str, float]:
        """Each modality's raw-domain std over the usable training samples (the stress suite's s(m))."""
        return dict(self.meta["raw_std"])


def _settings(cfg: PreprocessConfig, quality: QualityConfig, dtype: str, spec: SplitSpec) -> str:
    return json.dumps([FORMAT, to_data(cfg), to_data(quality), dtype, to_data(spec)], sort_keys=True)


def settings_digest(cfg: PreprocessConfig, quality: QualityConfig, dtype: str, spec: SplitSpec) -> str:
    """Short hash of the packing settings, used to give each settings combination its own pack folder."""
    return hashlib.sha256(_settings(cfg, quality, dtype, spec).encode()).hexdigest()[:10]


def _fingerprint(samples: dict[str, list[Sample]], settings: str) -> str:
    h = hashlib.sha256()
    h.update(settings.encode())
    for split, items in samples.items():
        for s in items:
            for m, p in sorted(s.files.items()):
                h.update(f"{split}|{s.key}|{m}|{p.name}|{p.stat().st_size}\n".encode())
    return h.hexdigest()


def open_pack(path: str | os.PathLike[str]) -> Pack:
    """Open a finished pack. Raises DataError if `path` is not one."""
    path = Path(path)
    meta_path = path / "pack.json"
    if not meta_path.is_file():
        raise DataError(f"{path} is not a finished rfsense pack (no pack.json); run `rfsense data pack ROOT {path}`")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise DataError(f"{meta_path}: format {meta.get('format')!r}, made by an older rfsense; this one reads "
                        f"{FORMAT!r}: delete {path} and pack again (rfsense data pack, or rfsense train packs on first use)")
    return Pack(path, meta, NormStats.load(path / "stats.npz"))


def _load_batch(
    samples: list[Sample], modality: str, skip_bad: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Stack one modality of a chunk as float64 (B, *shape); missing or skipped files are zero rows."""
    out = np.zeros((len(samples), *SHAPES[modality]), dtype=np.float64)
    ok = np.zeros(len(samples), dtype=bool)
    for i, s in enumerate(samples):
        path = s.files.get(modality)  # type: ignore[call-overload]
        if path is None:
            continue
        try:
            out[i] = load_modality(path, modality)  # type: ignore[arg-type]
            ok[i] = True
        except DataError as err:
            if not skip_bad:
                raise DataError(f"{err} (run `rfsense data check` for a full report, or pack with --skip-bad)") from None
            _logger.warning("skipping %s", err)
    return out, ok


class _RawScale:
    """Running mean and variance of every raw value of one modality (Chan's parallel update, float64)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        nb, mb = x.size, float(x.mean(dtype=np.float64))
        m2b = float(np.square(x - mb).sum(dtype=np.float64))
        n = self.n + nb
        delta = mb - self.mean
        self.mean += delta * nb / n
        self.m2 += m2b + delta * delta * self.n * nb / n
        self.n = n

    def state(self) -> list[float]:
        return [self.n, self.mean, self.m2]

    @classmethod
    def from_state(cls, s: list[float]) -> _RawScale:
        out = cls()
        out.n, out.mean, out.m2 = int(s[0]), float(s[1]), float(s[2])
        return out

    @property
    def std(self) -> float | None:
        return float(np.sqrt(self.m2 / self.n)) if self.n else None


def _write_split(folder: Path, name: str, samples: list[Sample], cfg: PreprocessConfig, quality: QualityConfig,
                 dtype: str, chunk: int, skip_bad: bool) -> None:
    """Pack one split into `folder` (resumable chunk by chunk); its status counts and raw scales go to
    folder/summary.json."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(samples)
    state_path = folder / "progress.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"done": 0}
    done = state["done"]
    counts = state.get("counts") or {m: dict.fromkeys(STATUSES, 0) for m in MODALITIES}
    scales = {m: _RawScale.from_state(state["scales"][m]) if "scales" in state else _RawScale() for m in MODALITIES}
    arrays = {}
    for m in MODALITIES:
        f = folder / f"{m}.npy"
        if done and f.is_file():
            arrays[m] = np.load(f, mmap_mode="r+", allow_pickle=False)
        else:
            arrays[m] = np.lib.format.open_memmap(f, mode="w+", dtype=dtype, shape=(n, *SHAPES[m]))
    available = np.array([s.available for s in samples], dtype=bool).reshape(n, 3)
    usable_path = folder / "usable.npy"
    usable = np.load(usable_path) if done and usable_path.is_file() else np.zeros((n, 3), dtype=bool)
    starts = range(done, n, chunk)
    for start in progress(starts, total=len(starts), header=f"packing {name}"):
        part = samples[start : start + chunk]
        for j, m in enumerate(MODALITIES):
            raw, ok = _load_batch(part, m, skip_bad)
            out = np.zeros((len(part), *SHAPES[m]), dtype=np.float32)
            good = np.zeros(len(part), dtype=bool)
            rows = np.flatnonzero(ok)
            counts[m]["absent"] += len(part) - rows.size
            if rows.size:
                checked = assess(m, raw[rows], quality)  # the runtime's rule: what it would refuse, we skip
                use = checked.usable
                for s in checked.status:
                    counts[m][str(s)] += 1
                if use.any():
                    x = preprocess(m, checked.values[use], cfg)
                    fine = np.isfinite(x.reshape(len(x), -1)).all(axis=1)  # float32 overflow: unusable too
                    out[rows[use][fine]] = x[fine]
                    good[rows[use][fine]] = True
                    if name == "train":
                        scales[m].update(checked.values[use][fine])
            arrays[m][start : start + len(part)] = out.astype(dtype)
            usable[start : start + len(part), j] = good
        for arr in arrays.values():
            arr.flush()
        np.save(usable_path, usable)
        atomic_write_text(state_path, json.dumps({"done": start + len(part), "counts": counts,
                                                  "scales": {m: s.state() for m, s in scales.items()}}))
    del arrays
    np.savez(
        folder / "index.npz",
        keys=np.array([tuple(s.key) for s in samples], dtype=np.int64).reshape(n, 3),
        labels=np.array([s.label for s in samples], dtype=np.int64),
        scene=np.array([s.scene for s in samples], dtype=str),
        available=available,
        usable=usable & available,
    )
    atomic_write_json(folder / "summary.json", {"counts": counts, "raw_std": {m: s.std for m, s in scales.items()}})
    usable_path.unlink()
    state_path.unlink()


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold OUT.lock while packing: a second packer of the same folder waits (and then finds it done)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _logger.info("waiting for another rfsense process that is packing %s", out)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fit_stats(folder: Path, usable: np.ndarray, chunk: int) -> NormStats:
    acc = NormAccumulator()
    for j, m in enumerate(MODALITIES):
        arr = np.load(folder / f"{m}.npy", mmap_mode="r", allow_pickle=False)
        for start in range(0, len(arr), chunk):
            acc.update(m, np.asarray(arr[start : start + chunk], dtype=np.float64), usable[start : start + chunk, j])
    return acc.result()


def pack(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: PreprocessConfig | None = None,
    spec: SplitSpec = SplitSpec(),
    dtype: str = "float16",
    chunk: int = 32,
    skip_bad: bool = False,
    overwrite: bool = False,
    quality: QualityConfig | None = None,
) -> Pack:
    """Pack the XRF55 tree at `root` into `out` (see module docstring); returns the opened pack.

    Raises:
        DataError: bad input files (unless skip_bad), an empty split, or `out` holding a different pack.
    """
    if dtype not in _DTYPES:
        raise DataError(f"pack dtype {dtype!r}; expected one of {', '.join(_DTYPES)}")
    cfg, quality = cfg or PreprocessConfig(), quality or QualityConfig()
    out = Path(out)
    found = discover(root)
    splits = split_samples(found.samples, spec)
    for name, items in splits.items():
        if not items:
            raise DataError(f"split '{name}' of {root} is empty under {spec}; check the trials/volunteers settings")
    fp = _fingerprint(splits, _settings(cfg, quality, dtype, spec))
    with _locked(out):
        if (out / "pack.json").is_file():
            existing = json.loads((out / "pack.json").read_text())
            if existing.get("fingerprint") == fp:
                _logger.info("pack %s is up to date (%s)", out, ", ".join(f"{k} {v}" for k, v in existing["splits"].items()))
                return open_pack(out)
            if not overwrite:
                raise DataError(f"{out} holds a pack of other data or settings; pass --overwrite or choose another folder")
        return _pack_locked(root, out, found.layout, splits, cfg, quality, spec, dtype, chunk, skip_bad, fp)


def _pack_locked(root: str | os.PathLike[str], out: Path, layout: str, splits: dict[str, list[Sample]],
                 cfg: PreprocessConfig, quality: QualityConfig, spec: SplitSpec, dtype: str, chunk: int,
                 skip_bad: bool, fp: str) -> Pack:
    partial = out.with_name(out.name + ".partial")
    marker = partial / "fingerprint"
    if partial.exists() and (not marker.is_file() or marker.read_text() != fp):
        shutil.rmtree(partial)  # stale partial pack of other inputs: start over
    partial.mkdir(parents=True, exist_ok=True)
    marker.write_text(fp)
    for name, items in splits.items():
        if not (partial / name / "index.npz").is_file():
            _write_split(partial / name, name, items, cfg, quality, dtype, chunk, skip_bad)
    with np.load(partial / "train" / "index.npz", allow_pickle=False) as idx:
        train_usable = idx["usable"]
    stats = _fit_stats(partial / "train", train_usable, chunk)
    stats.save(partial / "stats.npz")
    summaries = {name: json.loads((partial / name / "summary.json").read_text()) for name in splits}
    meta = {
        "format": FORMAT,
        "source": str(Path(root).resolve()),
        "layout": layout,
        "dtype": dtype,
        "preprocessing": to_data(cfg),
        "quality": to_data(quality),
        "split": to_data(spec),
        "splits": {k: len(v) for k, v in splits.items()},
        "status_counts": {name: s["counts"] for name, s in summaries.items()},
        "raw_std": summaries["train"]["raw_std"],
        "fingerprint": fp,
    }
    atomic_write_json(partial / "pack.json", meta)
    marker.unlink()
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    _logger.info("packed %s -> %s (%s)", root, out, ", ".join(f"{k} {v}" for k, v in meta["splits"].items()))
    for name, by_mod in meta["status_counts"].items():
        bad = {m: c["failed"] + c["implausible"] for m, c in by_mod.items() if c["failed"] + c["implausible"]}
        if bad:
            _logger.warning("%s: unusable samples (failed or implausible in the quality checks): %s", name,
                            ", ".join(f"{m} {k}" for m, k in bad.items()))
    return open_pack(out)
