"""Shared by the deployment benchmarks: a synthetic data set, its pack and an exported edge model, cached.

The cache folder (default: $TMPDIR/rfsense-bench) keeps the synthetic tree and its pack between runs; the
model is exported fresh by each benchmark run (it measures the code as it is). `trained` runs train a small
model CPU-only on the synthetic training split (bench_plausibility); untrained ones use random weights with
the pack's normalisation statistics (timing only: bench_runtime).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rfsense.data.layout import SplitSpec

_logger = logging.getLogger("bench")
DEFAULT_CACHE = Path(os.environ.get("RFSENSE_BENCH_CACHE", Path(tempfile.gettempdir()) / "rfsense-bench"))


@dataclass
class SynthSet:
    root: Path
    pack: Any  # rfsense.data.pack.Pack
    spec: SplitSpec


def synth_set(cache: Path, name: str, volunteers: int, actions: int, trials: int, train_trials: tuple[int, ...],
              workers: int = 2) -> SynthSet:
    """A synthetic XRF55 tree and its pack under cache/<name>-VxAxT (made once; the generator is deterministic)."""
    from rfsense.data.pack import pack
    from rfsense.data.synth import SynthConfig, synthesize

    folder = cache / f"{name}-{volunteers}x{actions}x{trials}"
    root = folder / "xrf55"
    done = root.parent / "synth.done"
    if not done.is_file():
        _logger.info("synthesising %s (%d x %d x %d samples)", root, volunteers, actions, trials)
        synthesize(root, SynthConfig(seed=0, volunteers=volunteers, actions=actions, trials=trials), workers=workers)
        done.write_text("ok\n")
    spec = SplitSpec(train_trials=train_trials)
    return SynthSet(root, pack(root, folder / "pack", spec=spec), spec)


def train_config(data: SynthSet, out_dir: Path, name: str, epochs: int, val_fraction: float, threads: int) -> Any:
    from rfsense.train.config import config_from_tree

    return config_from_tree({
        "name": name,
        "out_dir": str(out_dir),
        "data": {"root": str(data.root), "pack_dir": str(data.pack.path),
                 "split": {"train_trials": list(data.spec.train_trials)}},
        "model": {"preset": "edge"},
        # configs/quickstart.yaml's recipe
        "train": {"epochs": epochs, "batch_size": 16, "lr": 0.001, "warmup_epochs": 1, "keep_prob": [0.5, 0.9, 0.6],
                  "val_fraction": val_fraction, "seed": 0, "log_every": 0, "threads": threads},
        "dagr": {"enabled": True, "mode": "pareto", "pareto_space": "params"},
    })


def random_edge_model(data: SynthSet, seed: int = 0, **overrides: Any) -> Any:
    """The edge preset (with `overrides` of its ModelConfig) with random weights and the pack's normalisation
    statistics, in eval mode."""
    import torch

    from rfsense.models import build_model

    torch.manual_seed(seed)
    model = build_model("edge", **overrides)
    model.set_norm_stats(data.pack.stats.mean, data.pack.stats.std)
    return model.eval()


def export_untrained(data: SynthSet, out: Path, plausibility: Any = None, **overrides: Any) -> tuple[Any, Path]:
    """Export `random_edge_model` (with `overrides` of its ModelConfig) as rfsense-onnx/2 into OUT with a manifest the
    Runtime loads."""
    from rfsense.config import to_data
    from rfsense.data.preprocess import PreprocessConfig
    from rfsense.data.quality import QualityConfig
    from rfsense.deploy.export import export_model
    from rfsense.deploy.manifest import write_manifest

    model = random_edge_model(data, **overrides)
    train, test = data.pack.split("train"), data.pack.split("test")
    rows = np.flatnonzero(train.usable.any(axis=1))
    manifest = export_model(model, out, "rfsense", train, test, rows, rows[:0], plausibility)
    manifest.update({"model_file": "rfsense.onnx", "preprocessing": to_data(PreprocessConfig()),
                     "health": to_data(QualityConfig()), "run": {"name": "untrained"}, "metrics": {}})
    write_manifest(out / "rfsense.json", manifest)
    return model, out / "rfsense.onnx"


def raw_samples(data: SynthSet, split: str = "test") -> dict[str, np.ndarray]:
    """The raw (not preprocessed) arrays of every sample of a split, as files hold them: modality -> (N, ...)."""
    from rfsense.data.layout import discover, split_samples
    from rfsense.data.validate import load_modality
    from rfsense.modalities import MODALITIES

    samples = split_samples(discover(data.root).samples, data.spec)[split]
    return {m: np.stack([load_modality(s.files[m], m) for s in samples]) for m in MODALITIES}
