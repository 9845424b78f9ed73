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

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rfsense._io import atomic_write_json, atomic_write_text
from rfsense.data.layout import Sample, SplitSpec, discover, split_samples
from rfsense.data.preprocess import NormAccumulator, NormStats, PreprocessConfig, output_shape, preprocess
from rfsense.data.validate import load_modality
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES, SHAPES
from rfsense.progress import progress

__all__ = ["Pack", "PackedSplit", "open_pack", "pack", "settings_digest"]

_logger = logging.getLogger(__name__)
FORMAT = "rfsense-pack/1"
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
        return PreprocessConfig.from_dict(self.meta["preprocessing"])


def settings_digest(cfg: PreprocessConfig, dtype: str, spec: SplitSpec) -> str:
    """Short hash of the packing settings, used to give each settings combination its own pack folder."""
    blob = json.dumps([FORMAT, cfg.to_dict(), dtype, asdict(spec)], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _fingerprint(samples: dict[str, list[Sample]], cfg: PreprocessConfig, dtype: str, spec: SplitSpec) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, cfg.to_dict(), dtype, asdict(spec)], sort_keys=True).encode())
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
        raise DataError(f"{meta_path}: format {meta.get('format')!r}; expected {FORMAT!r}")
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


def _write_split(
    folder: Path, name: str, samples: list[Sample], cfg: PreprocessConfig, dtype: str, chunk: int, skip_bad: bool
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(samples)
    state_path = folder / "progress.json"
    done = json.loads(state_path.read_text())["done"] if state_path.is_file() else 0
    arrays = {}
    for m in MODALITIES:
        f = folder / f"{m}.npy"
        shape = (n, *output_shape(m, cfg))
        if done and f.is_file():
            arrays[m] = np.load(f, mmap_mode="r+", allow_pickle=False)
        else:
            arrays[m] = np.lib.format.open_memmap(f, mode="w+", dtype=dtype, shape=shape)
    available = np.array([s.available for s in samples], dtype=bool).reshape(n, 3)
    usable_path = folder / "usable.npy"
    usable = np.load(usable_path) if done and usable_path.is_file() else np.zeros((n, 3), dtype=bool)
    starts = range(done, n, chunk)
    for start in progress(starts, total=len(starts), header=f"packing {name}"):
        part = samples[start : start + chunk]
        for j, m in enumerate(MODALITIES):
            raw, ok = _load_batch(part, m, skip_bad)
            x, good = preprocess(m, raw, cfg)
            arrays[m][start : start + len(part)] = x.astype(dtype)
            usable[start : start + len(part), j] = ok & good
        for arr in arrays.values():
            arr.flush()
        np.save(usable_path, usable)
        atomic_write_text(state_path, json.dumps({"done": start + len(part)}))
    del arrays
    np.savez(
        folder / "index.npz",
        keys=np.array([tuple(s.key) for s in samples], dtype=np.int64).reshape(n, 3),
        labels=np.array([s.label for s in samples], dtype=np.int64),
        scene=np.array([s.scene for s in samples], dtype=str),
        available=available,
        usable=usable & available,
    )
    usable_path.unlink()
    state_path.unlink()


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
) -> Pack:
    """Pack the XRF55 tree at `root` into `out` (see module docstring); returns the opened pack.

    Raises:
        DataError: bad input files (unless skip_bad), an empty split, or `out` holding a different pack.
    """
    if dtype not in _DTYPES:
        raise DataError(f"pack dtype {dtype!r}; expected one of {', '.join(_DTYPES)}")
    cfg = cfg or PreprocessConfig()
    out = Path(out)
    found = discover(root)
    splits = split_samples(found.samples, spec)
    for name, items in splits.items():
        if not items:
            raise DataError(f"split '{name}' of {root} is empty under {spec}; check the trials/volunteers settings")
    fp = _fingerprint(splits, cfg, dtype, spec)
    if (out / "pack.json").is_file():
        existing = json.loads((out / "pack.json").read_text())
        if existing.get("fingerprint") == fp:
            _logger.info("pack %s is up to date (%s)", out, ", ".join(f"{k} {v}" for k, v in existing["splits"].items()))
            return open_pack(out)
        if not overwrite:
            raise DataError(f"{out} holds a pack of other data or settings; pass --overwrite or choose another folder")
    partial = out.with_name(out.name + ".partial")
    marker = partial / "fingerprint"
    if partial.exists() and (not marker.is_file() or marker.read_text() != fp):
        shutil.rmtree(partial)  # stale partial pack of other inputs: start over
    partial.mkdir(parents=True, exist_ok=True)
    marker.write_text(fp)
    for name, items in splits.items():
        if not (partial / name / "index.npz").is_file():
            _write_split(partial / name, name, items, cfg, dtype, chunk, skip_bad)
    with np.load(partial / "train" / "index.npz", allow_pickle=False) as idx:
        train_usable = idx["usable"]
    stats = _fit_stats(partial / "train", train_usable, chunk)
    stats.save(partial / "stats.npz")
    meta = {
        "format": FORMAT,
        "source": str(Path(root).resolve()),
        "layout": found.layout,
        "dtype": dtype,
        "preprocessing": cfg.to_dict(),
        "split": asdict(spec),
        "splits": {k: len(v) for k, v in splits.items()},
        "fingerprint": fp,
    }
    atomic_write_json(partial / "pack.json", meta)
    marker.unlink()
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    _logger.info("packed %s -> %s (%s)", root, out, ", ".join(f"{k} {v}" for k, v in meta["splits"].items()))
    return open_pack(out)

