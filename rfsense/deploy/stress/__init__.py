"""`rfsense stress`: sensor-failure stress tests of one or more models on the same corrupted samples.

    from rfsense.deploy.stress import StressOptions, run_stress
    results = run_stress(["export/rfsense.onnx", "runs/quickstart"], "data/synth-quickstart", StressOptions())

Faults come from `rfsense.data.faults` (the DAGR paper's dropout, gaussian and missing protocols, whole and
random sensor loss, and field faults), applied to the raw streams of one split at severities 0-5, one modality
at a time (joint faults: several sensors). Each cell is evaluated with the runtime's health checks, without
them, and with the sensor absent (`runner.py`); the summary, files and curves: `report.py`.
An exported `.onnx` runs torch-free, as in the field; a run folder runs the PyTorch model (needed for the
paper's feature-level dropout).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfsense.config import to_data
from rfsense.data.faults import FAULTS
from rfsense.data.layout import SplitSpec
from rfsense.deploy.stress.data import select_samples
from rfsense.deploy.stress.models import load_stress_model
from rfsense.deploy.stress.report import summary_table, write_report
from rfsense.deploy.stress.runner import plan_cells, run_cells
from rfsense.errors import ConfigError
from rfsense.modalities import MODALITIES

__all__ = ["StressOptions", "default_out", "run_stress", "summary_table"]

_logger = logging.getLogger(__name__)
HEALTH = {"on": ("on",), "off": ("off",), "both": ("on", "off")}


@dataclass(frozen=True)
class StressOptions:
    faults: tuple[str, ...] = ()  # empty: every registered fault the models support
    modalities: tuple[str, ...] = MODALITIES
    severities: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    seed: int = 0
    health: str = "both"  # on | off | both
    split: str = "test"
    spec: SplitSpec = field(default_factory=SplitSpec)
    limit: int | None = None  # at most this many samples, spread over the split
    alone: bool = False  # the corrupted sensor alone (the others not given) instead of beside the others
    workers: int = 1
    chunk_size: int = 64


def default_out(first_model: str | os.PathLike[str]) -> Path:
    p = Path(first_model)
    return Path("stress") / (p.stem if p.suffix == ".onnx" else p.name)


def run_stress(models: list[str | os.PathLike[str]], data: str | os.PathLike[str], options: StressOptions,
               out: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run the suite and write its files into `out` (default stress/<first model>/); returns the results.

    Raises:
        ConfigError: bad options (unknown fault or modality, severity outside 0..5, a fault the models cannot
            run). DataError / ModelFileError: what reading the data or the models refuses.
    """
    if not models:
        raise ConfigError("give at least one model (an exported .onnx or a run folder)")
    bad = sorted(set(options.modalities) - set(MODALITIES))
    if bad:
        raise ConfigError(f"unknown modalities {bad}; expected some of {', '.join(MODALITIES)}")
    if not options.severities or any(not 0 <= s <= 5 for s in options.severities):
        raise ConfigError(f"severities {list(options.severities)}: each must be in 0..5")
    if options.health not in HEALTH:
        raise ConfigError(f"health {options.health!r}; expected on, off or both")
    loaded = [load_stress_model(m) for m in models]
    names = _unique([m.name for m in loaded])
    n_classes = {len(m.class_names) for m in loaded}
    if len(n_classes) != 1:
        raise ConfigError(f"the models disagree on their classes ({sorted(n_classes)}); compare models of one task")
    features = any(m.supports_features for m in loaded)
    faults = options.faults or tuple(f for f in FAULTS if FAULTS[f].kind != "features" or features)
    severities = tuple(sorted(set(options.severities) | {0}))
    cells = plan_cells(faults, options.modalities, severities, features=features, alone=options.alone)
    samples = select_samples(data, options.spec, options.split, options.limit, n_classes.pop())
    _logger.info("stress: %d model(s) x %d cells x %d samples (%s split), health %s, %d worker(s)",
                 len(loaded), len(cells), len(samples), options.split, options.health, options.workers)
    tallies = run_cells([str(m) for m in models], names, samples, cells, seed=options.seed,
                        health=HEALTH[options.health], alone=options.alone, workers=options.workers,
                        chunk_size=options.chunk_size)
    out = Path(out) if out is not None else default_out(models[0])
    opts = to_data(options) | {"faults": list(faults), "severities": list(severities), "n_samples": len(samples),
                               "data": str(data)}
    results = write_report(out, tallies, names, [m.source for m in loaded], severities, opts)
    results["out"] = str(out)
    return results


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out
