"""Pack a per-file XRF55 tree into per-split, per-modality memory-mapped arrays.

Layout of a pack folder:

    OUT/pack.json              format, source, settings, split sizes, fingerprint
    OUT/stats.npz              per-channel normalisation statistics (training split only)
    OUT/<split>/<modality>.npy (N, *shape) float16/float32, preprocessing applied once
    OUT/<split>/index.npz      keys (N,3) int, label, volunteer, scene, available (N,3), usable (N,3)

Packing writes into OUT.partial/ and renames it to OUT when complete; an interrupted run resumes
from the last finished chunk, and re-running on a finished pack with the same inputs is a no-op.

`pack(..., workers=N)` reads and preprocesses chunks in N processes (this one and N - 1 spawned ones).
Each writes its rows into the memory maps itself; this process commits chunks in order (status counts,
raw-scale moments merged in chunk order, progress.json), so the pack is byte-identical to a
single-process one and resumes from the last chunk committed in order, whatever the worker count of
either run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    samples: list[Sample], modality: str, skip_bad: bool, skipped: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Stack one modality of a chunk as float64 (B, *shape); missing or skipped files are zero rows.

    The errors of skipped files are appended to `skipped`; the process committing the chunk logs them.
    """
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
            skipped.append(str(err))
    return out, ok


class _RawScale:
    """Running mean and variance of every raw value of one modality (Chan's parallel update, float64)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    @staticmethod
    def moments(x: np.ndarray) -> tuple[int, float, float] | None:
        """(count, mean, sum of squared deviations) of one block; None when empty."""
        if x.size == 0:
            return None
        mb = float(x.mean(dtype=np.float64))
        return x.size, mb, float(np.square(x - mb).sum(dtype=np.float64))

    def merge(self, block: tuple[int, float, float] | None) -> None:
        """Fold one block's moments in; blocks merged in the same order give bit-identical results."""
        if block is None:
            return
        nb, mb, m2b = block
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


@dataclass
class _Chunk:
    """What packing one chunk reports back to the process that commits chunks in order."""

    start: int
    usable: np.ndarray  # (b, 3) bool: preprocessed and finite
    counts: dict[str, dict[str, int]]  # modality -> quality status -> samples
    moments: dict[str, tuple[int, float, float] | None]  # modality -> raw-value moments (train split only)
    skipped: list[str] = field(default_factory=list)  # unreadable files skipped under --skip-bad


def _pack_chunk(folder: Path, name: str, part: list[Sample], start: int, cfg: PreprocessConfig,
                quality: QualityConfig, dtype: str, skip_bad: bool) -> _Chunk:
    """Read, check and preprocess rows start..start+len(part) and write them into folder's memory maps."""
    n_mod = len(MODALITIES)
    result = _Chunk(start, np.zeros((len(part), n_mod), dtype=bool), {m: dict.fromkeys(STATUSES, 0) for m in MODALITIES},
                    dict.fromkeys(MODALITIES))
    for j, m in enumerate(MODALITIES):
        raw, ok = _load_batch(part, m, skip_bad, result.skipped)
        out = np.zeros((len(part), *SHAPES[m]), dtype=np.float32)
        rows = np.flatnonzero(ok)
        result.counts[m]["absent"] += len(part) - rows.size
        if rows.size:
            checked = assess(m, raw[rows], quality)  # the runtime's rule: what it would refuse, we skip
            use = checked.usable
            for s in checked.status:
                result.counts[m][str(s)] += 1
            if use.any():
                x = preprocess(m, checked.values[use], cfg)
                fine = np.isfinite(x.reshape(len(x), -1)).all(axis=1)  # float32 overflow: unusable too
                out[rows[use][fine]] = x[fine]
                result.usable[rows[use][fine], j] = True
                if name == "train":
                    result.moments[m] = _RawScale.moments(checked.values[use][fine])
        _write_rows(folder / f"{m}.npy", start, out.astype(dtype))
    return result


def _write_rows(path: Path, start: int, rows: np.ndarray) -> None:
    """Write rows start..start+len(rows) of the .npy at `path` through a map of those rows only, and flush
    them to disk (a map of the whole array would make every flush scan it all, and wait for the pages
    other workers are writing)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        offset = f.tell()
    if tuple(shape[1:]) != rows.shape[1:] or dtype != rows.dtype or start + len(rows) > shape[0]:
        raise DataError(f"{path}: holds {shape} {dtype}, cannot take rows {start}..{start + len(rows)} of {rows.shape[1:]} "
                        f"{rows.dtype}; delete the .partial folder and pack again")
    row_bytes = int(np.prod(rows.shape[1:], dtype=np.int64)) * rows.dtype.itemsize
    view = np.memmap(path, dtype=rows.dtype, mode="r+", offset=offset + start * row_bytes, shape=rows.shape)
    view[:] = rows
    view.flush()  # on disk before the parent records the chunk as done
    del view


def _pack_chunk_task(args: tuple) -> _Chunk:
    return _pack_chunk(*args)


def _chunks_in_order(tasks: list[tuple], pool: ProcessPoolExecutor | None, workers: int) -> Iterator[_Chunk]:
    """Pack chunks and yield their results in chunk order: this process packs every `workers`-th chunk
    itself while `pool` (workers - 1 processes) packs the others ahead of it; None: all here."""
    if pool is None:
        for t in tasks:
            yield _pack_chunk(*t)
        return
    futures: dict[int, Future[_Chunk]] = {}
    queued = 0  # tasks[:queued] are packed or assigned
    try:
        for i, t in enumerate(tasks):
            while queued < min(len(tasks), i + 2 * workers):  # a bounded window: a chunk holds ~0.2 GB of raw data
                if queued % workers:
                    futures[queued] = pool.submit(_pack_chunk_task, tasks[queued])
                queued += 1
            yield futures.pop(i).result() if i % workers else _pack_chunk(*t)
    finally:
        for f in futures.values():
            f.cancel()


@contextmanager
def _worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """The other workers - 1 processes, one pool for every split (None for one worker)."""
    if workers <= 1:
        yield None
        return
    # spawn, not fork: training packs on first use from a process that holds torch's thread pools.
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def _write_split(folder: Path, name: str, samples: list[Sample], cfg: PreprocessConfig, quality: QualityConfig,
                 dtype: str, chunk: int, skip_bad: bool, pool: ProcessPoolExecutor | None = None,
                 workers: int = 1) -> None:
    """Pack one split into `folder` (resumable chunk by chunk); its status counts and raw scales go to
    folder/summary.json."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(samples)
    state_path = folder / "progress.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"done": 0}
    done = state["done"]
    counts = state.get("counts") or {m: dict.fromkeys(STATUSES, 0) for m in MODALITIES}
    scales = {m: _RawScale.from_state(state["scales"][m]) if "scales" in state else _RawScale() for m in MODALITIES}
    for m in MODALITIES:
        f = folder / f"{m}.npy"
        if not (done and f.is_file()):  # create it; the chunks write through their own maps
            np.lib.format.open_memmap(f, mode="w+", dtype=dtype, shape=(n, *SHAPES[m]))
    available = np.array([s.available for s in samples], dtype=bool).reshape(n, 3)
    usable_path = folder / "usable.npy"
    usable = np.load(usable_path) if done and usable_path.is_file() else np.zeros((n, 3), dtype=bool)
    tasks = [(folder, name, samples[s : s + chunk], s, cfg, quality, dtype, skip_bad) for s in range(done, n, chunk)]
    for c in progress(_chunks_in_order(tasks, pool, workers), total=len(tasks), header=f"packing {name}"):
        for msg in c.skipped:
            _logger.warning("skipping %s", msg)
        end = c.start + len(c.usable)
        usable[c.start : end] = c.usable
        for m in MODALITIES:
            for k, v in c.counts[m].items():
                counts[m][k] += v
            scales[m].merge(c.moments[m])
        np.save(usable_path, usable)
        atomic_write_text(state_path, json.dumps({"done": end, "counts": counts,
                                                  "scales": {m: s.state() for m, s in scales.items()}}))
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
    workers: int = 1,
) -> Pack:
    """Pack the XRF55 tree at `root` into `out` (see module docstring); returns the opened pack.

    `workers` processes read and preprocess chunks in parallel; the result is byte-identical for any count.

    Raises:
        DataError: bad input files (unless skip_bad), an empty split, or `out` holding a different pack.
        ValueError: workers is not a positive integer.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if workers > 1 and getattr(multiprocessing.current_process(), "_inheriting", False):
        # A worker re-importing an unguarded main script would queue behind its parent's pack lock forever.
        raise RuntimeError("pack(workers > 1) was called while a worker process imported the main script; "
                           "call it under `if __name__ == '__main__':`")
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
        return _pack_locked(root, out, found.layout, splits, cfg, quality, spec, dtype, chunk, skip_bad, fp, workers)


def _pack_locked(root: str | os.PathLike[str], out: Path, layout: str, splits: dict[str, list[Sample]],
                 cfg: PreprocessConfig, quality: QualityConfig, spec: SplitSpec, dtype: str, chunk: int,
                 skip_bad: bool, fp: str, workers: int) -> Pack:
    partial = out.with_name(out.name + ".partial")
    marker = partial / "fingerprint"
    if partial.exists() and (not marker.is_file() or marker.read_text() != fp):
        shutil.rmtree(partial)  # stale partial pack of other inputs: start over
    partial.mkdir(parents=True, exist_ok=True)
    marker.write_text(fp)
    with _worker_pool(workers) as pool:
        for name, items in splits.items():
            if not (partial / name / "index.npz").is_file():
                _write_split(partial / name, name, items, cfg, quality, dtype, chunk, skip_bad, pool, workers)
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
