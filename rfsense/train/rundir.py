"""Run folders: where a run lives, what it holds, and the only code that creates, reads or deletes one.

A run folder (`out_dir/name/`) holds config.yaml (resolved), metrics.jsonl (one row per epoch), steps.jsonl
(loss, L_d, L_a, alpha* every step), last.pt / best.pt (state dicts), results.json and results.txt; a
multi-seed run holds one such folder per seed (`seed<k>/`) plus the aggregated results.

`--overwrite` deletes a folder only when it resolves inside `out_dir` and holds an rfsense run (its
config.yaml and metrics.jsonl, or seed runs); anything else is refused with a one-line error.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from rfsense._io import atomic_write_json, atomic_write_text
from rfsense.config import to_data
from rfsense.data.pack import Pack, open_pack, pack, settings_digest
from rfsense.errors import ConfigError, DataError, ModelFileError
from rfsense.models import build_model
from rfsense.models.presets import LEGACY_DEFAULTS, saved_model_config
from rfsense.train.checkpoint import load_checkpoint
from rfsense.train.config import RunConfig, config_from_tree
from rfsense.train.report import geometry_table, subset_table

__all__ = [
    "find_newest_run",
    "is_run_folder",
    "load_run_config",
    "load_run_model",
    "open_run_pack",
    "prepare_run_dir",
    "resolve_run",
    "run_pack_dir",
    "seed_runs",
    "write_results",
]

_logger = logging.getLogger(__name__)

# Keys older rfsense versions wrote into config.yaml that no longer exist, with the value they had to hold
# for the run to mean the same today (None: any value).
_REMOVED = {
    ("data", "preprocessing", "max_repair_fraction"): None,  # now data.quality (one bad-data policy)
    ("data", "preprocessing", "wifi", "resample_to"): (None,),  # the encoders take 1000 packets only
}


def is_run_folder(path: Path) -> bool:
    """True when `path` holds an rfsense run (config + metrics) or a multi-seed run (seed<k>/ runs)."""
    if (path / "config.yaml").is_file() and (path / "metrics.jsonl").is_file():
        return True
    return path.is_dir() and any(is_run_folder(p) for p in path.glob("seed*"))


def seed_runs(path: Path) -> list[Path]:
    """The seed runs of a multi-seed run folder, in seed order."""
    return sorted((p for p in path.glob("seed*") if (p / "config.yaml").is_file()), key=lambda p: p.name)


def prepare_run_dir(run_dir: Path, out_dir: Path, resume: bool, overwrite: bool) -> bool:
    """Check `run_dir` may be used; returns whether it already holds something (to resume or replace).

    Raises:
        ConfigError: out_dir is a file or cannot be created; run_dir resolves outside out_dir; a non-empty
            run_dir without --resume/--overwrite; --overwrite of a folder that is not an rfsense run.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out_dir {out_dir} is a file; expected a folder for run folders")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"out_dir {out_dir} cannot be created ({err.strerror})") from None
    if run_dir.resolve().parent != out_dir.resolve():
        raise ConfigError(f"run folder {run_dir} resolves outside out_dir {out_dir}; name must be one plain folder name")
    busy = run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir()))
    if busy and not (resume or overwrite):
        raise ConfigError(f"run folder {run_dir} already exists; pass --resume to continue it or --overwrite to replace it")
    if busy and overwrite and not is_run_folder(run_dir):
        raise ConfigError(f"--overwrite refuses to delete {run_dir}: it does not hold an rfsense run "
                          "(config.yaml and metrics.jsonl); move it away or choose another name")
    return busy


def remove_run(run_dir: Path) -> None:
    """Delete a run folder that `prepare_run_dir` accepted for --overwrite."""
    if not is_run_folder(run_dir):  # the same rule again, right before deleting
        raise ConfigError(f"--overwrite refuses to delete {run_dir}: it does not hold an rfsense run")
    shutil.rmtree(run_dir)


def run_pack_dir(cfg: RunConfig) -> Path:
    """Where the run's pack lives: data.pack_dir, else <root>.packs/<settings digest>."""
    d = cfg.data
    root = Path(d.root)
    return Path(d.pack_dir) if d.pack_dir else root.with_name(root.name + ".packs") / settings_digest(
        d.preprocessing, d.quality, d.pack_dtype, d.split
    )


def open_run_pack(cfg: RunConfig) -> Pack:
    """Open (packing on first use, with data.pack_workers processes) the pack for the run's data root and settings."""
    d = cfg.data
    root = Path(d.root)
    pack_dir = run_pack_dir(cfg)
    if not root.is_dir() and (pack_dir / "pack.json").is_file():
        return open_pack(pack_dir)  # the raw tree may be deleted once packed
    if not root.is_dir():
        raise DataError(
            f"data root {root} not found. Put the XRF55 download there (its {{WiFi,RFID,mmWave}} folders, "
            f"or Scene*/ or train_data/test_data above them), set data.root, or make a synthetic stand-in: "
            f"rfsense synth {root}"
        )
    workers = d.pack_workers or min(4, os.cpu_count() or 1)
    return pack(root, pack_dir, d.preprocessing, d.split, d.pack_dtype, quality=d.quality,
                workers=workers)  # no-op when up to date


def _drop_removed_keys(tree: dict, where: Path) -> dict:
    for path, allowed in _REMOVED.items():
        node = tree
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            value = node.pop(path[-1])
            if allowed is not None and value not in allowed:
                raise ConfigError(f"{where} was made by an older rfsense with {'.'.join(path)}={value!r}, which "
                                  "no longer exists; retrain the run")
    return tree


def load_run_config(run_dir: Path) -> RunConfig:
    """The resolved config of a run folder (older run folders are read too)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise DataError(f"{run_dir} is not a run folder (no config.yaml)")
    tree = yaml.safe_load(path.read_text())
    if not isinstance(tree, dict):
        raise DataError(f"{path}: expected a mapping of config keys")
    if isinstance(tree.get("model"), dict):  # a full dump: keys it lacks are newer than the run
        tree["model"] = {**LEGACY_DEFAULTS, **tree["model"]}
    return config_from_tree(_drop_removed_keys(tree, path))


def load_run_model(run_dir: Path, which: str = "best") -> tuple[torch.nn.Module, RunConfig]:
    """Rebuild a run's model from its config and checkpoint (state dict only), in eval mode."""
    cfg = load_run_config(run_dir)
    state = load_checkpoint(run_dir / f"{which}.pt")
    model = build_model(saved_model_config(state["model_config"]))
    model.load_state_dict(state["model"])
    model.eval()
    return model, cfg


def find_newest_run(runs_root: str | os.PathLike[str] = "runs") -> Path:
    """The run folder whose best.pt was written last (seed folders count as runs)."""
    candidates = sorted(Path(runs_root).glob("**/best.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise ModelFileError(f"no trained run under {runs_root}/ (no best.pt); train one with `rfsense train CONFIG`")
    return candidates[-1].parent


def resolve_run(run_dir: Path) -> Path:
    """A single run folder for `run_dir`: itself, or the first seed run of a multi-seed folder."""
    if (run_dir / "best.pt").is_file():
        return run_dir
    seeds = [p for p in seed_runs(run_dir) if (p / "best.pt").is_file()]
    if seeds:
        _logger.info("%s holds %d seed runs; using %s", run_dir, len(seeds), seeds[0].name)
        return seeds[0]
    raise ModelFileError(f"{run_dir} has no best.pt; is it a finished run folder?")


def write_results(run_dir: Path, result: dict[str, Any], title: str) -> dict[str, Any]:
    """Write results.json (strict JSON) and results.txt (the tables); returns the result with its 'table'."""
    text = subset_table(result["subsets"], title=f"{title}: test accuracy (%)")
    if result.get("geometry"):
        text += "\n\n" + geometry_table(result["geometry"])
    result = to_data(result)
    atomic_write_json(run_dir / "results.json", result)
    atomic_write_text(run_dir / "results.txt", text + "\n")
    result["table"] = text
    return result
