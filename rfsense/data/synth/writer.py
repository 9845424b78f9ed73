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

from rfsense._io import atomic_write_json, atomic_write_text
from rfsense.data.synth.config import RAW_STREAM, SynthConfig, rng_for
from rfsense.data.synth.constants import GENERATOR_VERSION
from rfsense.data.synth.describe import describe
from rfsense.data.synth.sample import generate_sample, world
from rfsense.errors import DataError
from rfsense.modalities import FOLDERS, MODALITIES, N_CLASSES
from rfsense.progress import progress

__all__ = ["RAW_DIR", "SYNTH_JSON", "raw_paths", "sample_paths", "synthesize", "tag_map_path"]

_logger = logging.getLogger(__name__)

SYNTH_JSON = "synth.json"
_PENDING_JSON = ".synth.pending.json"  # config of an unfinished run, so a resume can check it
RAW_DIR = "raw"  # raw recordings (--raw) live in OUT/raw/{impinj,dca1000}, apart from the XRF55 tree


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


def raw_paths(out: str | os.PathLike[str], volunteer: int, action: int, trial: int) -> dict[str, Path]:
    """Where the raw recordings of one sample live: Impinj CSV, DCA1000 capture and its radar config."""
    raw, name = Path(out) / RAW_DIR, f"{volunteer}_{action}_{trial}"
    return {
        "rfid_csv": raw / "impinj" / f"{name}.csv",
        "mmwave_bin": raw / "dca1000" / f"{name}_Raw_0.bin",
        "mmwave_config": raw / "dca1000" / f"{name}.mmwave.json",
    }


def tag_map_path(out: str | os.PathLike[str], scene: int) -> Path:
    """The tag map (23 EPCs in row order) of a scene's raw RFID logs."""
    return Path(out) / RAW_DIR / "impinj" / f"Scene{scene}.tags.txt"


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, arr)
    os.replace(tmp, path)  # readers never see a half-written .npy


def _make_one(args: tuple[str, SynthConfig, tuple[int, int, int], bool]) -> int:
    """Worker: generate one sample, write its missing .npy files (and raw recordings); returns bytes written."""
    out, cfg, (v, a, t), raw = args
    arrays = generate_sample(cfg, v, a, t)
    n = 0
    for m, path in sample_paths(out, cfg, v, a, t).items():
        if not path.exists():
            _save_atomic(path, arrays[m])
            n += arrays[m].nbytes
    if raw:
        from rfsense.data.synth.raw_mmwave import write_raw_mmwave
        from rfsense.data.synth.raw_rfid import write_raw_rfid

        paths = raw_paths(out, v, a, t)
        rngs = [rng_for(cfg.seed, RAW_STREAM, v, a, t, i) for i in range(2)]
        if not paths["rfid_csv"].exists():
            # each recording starts at its own time on the reader's clock (trials 1 min apart)
            start = 60.0 * (((v - 1) * N_CLASSES + a - 1) * 100 + t)
            n += write_raw_rfid(world(cfg, v, a, t), rngs[0], paths["rfid_csv"], seed=cfg.seed,
                                scene=cfg.scene_of(v), start_s=start)
        if not (paths["mmwave_bin"].exists() and paths["mmwave_config"].exists()):
            n += write_raw_mmwave(world(cfg, v, a, t), rngs[1], paths["mmwave_bin"], paths["mmwave_config"])
    return n


def _done(out: Path, cfg: SynthConfig, key: tuple[int, int, int], raw: bool) -> bool:
    paths = list(sample_paths(out, cfg, *key).values()) + (list(raw_paths(out, *key).values()) if raw else [])
    return all(p.exists() for p in paths)


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


def synthesize(out: str | os.PathLike[str], cfg: SynthConfig, workers: int = 1, raw: bool = False) -> dict[str, Any]:
    """Write the XRF55 tree for `cfg` under `out` plus `synth.json`; idempotent and resumable.

    Each .npy is written as `<name>.npy.tmp` then renamed; a sample is finished when its three
    files exist; synth.json is written last. Re-running on a finished folder writes nothing.

    Args:
        out: output folder (created if needed).
        cfg: what to generate.
        workers: processes; 1 generates in this process.
        raw: also write each sample's raw recordings under OUT/raw (`raw_paths`): an Impinj CSV log and a
            DCA1000 capture (79 MB) + mmWave Studio JSON, of the same simulated scene; plus a tag map
            per scene (`tag_map_path`).

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

    todo = [k for k in cfg.keys() if not _done(out, cfg, k, raw)]
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
    if raw:
        dirs |= {p.parent for k in todo for p in raw_paths(out, *k).values()}
    for d in sorted(dirs):
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob("*.tmp"):  # left by an interrupted run
            stale.unlink()
    if raw:
        from rfsense.data.synth.raw_rfid import tag_map_text

        for k in sorted({cfg.scene_of(v) for v, _, _ in todo}):
            atomic_write_text(tag_map_path(out, k), tag_map_text(cfg.seed, k))
    _logger.info(
        "synthesising %d of %d samples into %s with %d worker%s",
        len(todo),
        cfg.n_samples,
        out,
        workers,
        "s" if workers > 1 else "",
    )
    tasks = [(str(out), cfg, k, raw) for k in todo]
    n_bytes = 0
    if workers == 1 or len(tasks) <= 1:
        for task in progress(tasks, total=len(tasks), header="synth"):
            n_bytes += _make_one(task)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            for n in progress(pool.map(_make_one, tasks), total=len(tasks), header="synth"):
                n_bytes += n
    atomic_write_json(out / SYNTH_JSON, describe(cfg, raw=raw or (out / RAW_DIR).is_dir()))
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
