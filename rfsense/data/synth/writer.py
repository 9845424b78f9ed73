"""Write a synthetic data set in the XRF55 layout: atomic, resumable, idempotent, parallel over processes."""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from rfsense._io import atomic_write_json
from rfsense.data.synth.config import SynthConfig
from rfsense.data.synth.constants import GENERATOR_VERSION
from rfsense.data.synth.describe import describe
from rfsense.data.synth.sample import generate_sample
from rfsense.errors import DataError
from rfsense.modalities import FOLDERS, MODALITIES
from rfsense.progress import progress

__all__ = ["SYNTH_JSON", "sample_paths", "synthesize"]

_logger = logging.getLogger(__name__)

SYNTH_JSON = "synth.json"
_PENDING_JSON = ".synth.pending.json"  # config of an unfinished run, so a resume can check it


def _sample_dir(out: Path, cfg: SynthConfig, volunteer: int) -> Path:
    if cfg.layout == "flat":
        return out
    k = cfg.scene_of(volunteer)
    return out / f"Scene{k}" / f"Scene{k}_part1"


def sample_paths(
    out: str | os.PathLike[str], cfg: SynthConfig, volunteer: int, action: int, trial: int
) -> dict[str, Path]:
    """Where the three files of one sample live, per modality key."""
    base = _sample_dir(Path(out), cfg, volunteer)
    name = f"{volunteer}_{action}_{trial}.npy"
    return {m: base / FOLDERS[m] / name for m in MODALITIES}


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, arr)
    os.replace(tmp, path)  # readers never see a half-written .npy


def _make_one(args: tuple[str, SynthConfig, tuple[int, int, int]]) -> int:
    """Worker: generate and write one sample; returns bytes written."""
    out, cfg, (v, a, t) = args
    arrays = generate_sample(cfg, v, a, t)
    n = 0
    for m, path in sample_paths(out, cfg, v, a, t).items():
        _save_atomic(path, arrays[m])
        n += arrays[m].nbytes
    return n


def _check_existing(path: Path, want: dict[str, Any], what: str) -> bool:
    """True if `path` exists and matches `want` (config + version); DataError if it differs."""
    if not path.exists():
        return False
    try:
        have = json.loads(path.read_text())
        have_cfg = {"generator_version": have["generator_version"], **have["config"]}
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(
            f"{path} is not a readable {what} ({err}); delete it or pick another output folder"
        ) from err
    if have_cfg != want:
        diff = ", ".join(
            f"{k}: {have_cfg.get(k)!r} there, {want.get(k)!r} asked"
            for k in want
            if have_cfg.get(k) != want.get(k)
        )
        raise DataError(
            f"{path.parent} already holds synthetic data made with another config ({diff}); "
            "use another output folder or delete this one"
        )
    return True


def synthesize(out: str | os.PathLike[str], cfg: SynthConfig, workers: int = 1) -> dict[str, Any]:
    """Write the XRF55 tree for `cfg` under `out` plus `synth.json`; idempotent and resumable.

    Each .npy is written as `<name>.npy.tmp` then renamed; a sample is finished when its three
    files exist; synth.json is written last. Re-running on a finished folder writes nothing.

    Args:
        out: output folder (created if needed).
        cfg: what to generate.
        workers: processes; 1 generates in this process.

    Returns:
        {'out', 'n_samples', 'n_written', 'n_skipped', 'seconds', 'samples_per_s', 'bytes_written'}.

    Raises:
        ValueError: workers is not a positive integer.
        DataError: `out` holds synthetic data (synth.json or an unfinished run) with another config.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    start = perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} exists and is not a folder")
    want = {"generator_version": GENERATOR_VERSION, **asdict(cfg)}
    done = _check_existing(out / SYNTH_JSON, want, "synth.json")
    _check_existing(out / _PENDING_JSON, want, "pending-run record")

    todo = [k for k in cfg.keys() if not all(p.exists() for p in sample_paths(out, cfg, *k).values())]
    summary: dict[str, Any] = {"out": str(out), "n_samples": cfg.n_samples, "n_written": 0}
    if done and not todo:
        _logger.info("%s already holds the finished data set (%d samples); nothing to do", out, cfg.n_samples)
        seconds = perf_counter() - start
        return {
            **summary,
            "n_skipped": cfg.n_samples,
            "seconds": seconds,
            "samples_per_s": 0.0,
            "bytes_written": 0,
        }

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / _PENDING_JSON, {"generator_version": GENERATOR_VERSION, "config": asdict(cfg)})
    dirs = {p.parent for k in todo for p in sample_paths(out, cfg, *k).values()}
    for d in sorted(dirs):
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob("*.npy.tmp"):  # left by an interrupted run
            stale.unlink()
    _logger.info(
        "synthesising %d of %d samples into %s with %d worker%s",
        len(todo),
        cfg.n_samples,
        out,
        workers,
        "s" if workers > 1 else "",
    )
    tasks = [(str(out), cfg, k) for k in todo]
    n_bytes = 0
    if workers == 1 or len(tasks) <= 1:
        for task in progress(tasks, total=len(tasks), header="synth"):
            n_bytes += _make_one(task)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            for n in progress(pool.map(_make_one, tasks), total=len(tasks), header="synth"):
                n_bytes += n
    atomic_write_json(out / SYNTH_JSON, describe(cfg))
    (out / _PENDING_JSON).unlink(missing_ok=True)
    seconds = perf_counter() - start
    _logger.info("wrote %d samples (%.1f MB) in %.1f s", len(todo), n_bytes / 1e6, seconds)
    return {
        **summary,
        "n_written": len(todo),
        "n_skipped": cfg.n_samples - len(todo),
        "seconds": seconds,
        "samples_per_s": len(todo) / seconds if seconds > 0 else 0.0,
        "bytes_written": n_bytes,
    }
