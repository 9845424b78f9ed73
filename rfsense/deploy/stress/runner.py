"""What a stress run evaluates (cells) and how: corrupt raw streams, then judge them with and without the
runtime's health checks, for every model on exactly the same corrupted samples.

A cell is one fault at one severity on one target (a modality, or a set of sensors for joint faults). Per
chunk of samples, each model's clean inputs are checked and preprocessed once; a cell then corrupts only its
target modalities and reuses the clean, preprocessed others. Per cell and model three readings:

- ``on``: the corrupted streams go through the model's health checks (repair what is safe, mask what failed,
  statuses counted) and preprocessing, as `rfsense infer` runs them;
- ``off``: no checks, no masking: the corrupted streams are preprocessed and fed as present (the
  preprocessing is part of the model's input contract); a non-finite model output counts as a wrong answer;
- ``absent`` (per modality, once): the target modality is not given at all.

Work is spread over processes by (chunk, group of cells); every worker loads the models once and keeps the
current chunk's clean inputs.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rfsense.data.faults import FAULTS, apply_fault, apply_joint, feature_dropout_mask
from rfsense.data.layout import Sample
from rfsense.deploy.stress.data import Chunk, iter_chunks
from rfsense.deploy.stress.models import StressModel, load_stress_model
from rfsense.errors import ConfigError
from rfsense.modalities import LETTERS, MODALITIES
from rfsense.progress import progress

__all__ = ["Cell", "Tally", "plan_cells", "run_cells"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    """fault: a registered fault, "clean" (severity 0) or "absent" (the target not given); targets: the
    corrupted modalities (one for stream and feature faults)."""

    fault: str
    targets: tuple[str, ...]
    severity: int

    @property
    def label(self) -> str:
        return "+".join(LETTERS[m] for m in self.targets) if self.targets else "R+W+RF"

    @property
    def kind(self) -> str:
        return FAULTS[self.fault].kind if self.fault in FAULTS else self.fault


@dataclass
class Tally:
    """Counts of one (model, cell, health) reading."""

    n: int = 0
    correct: int = 0
    nonfinite: int = 0  # samples whose logits were not finite (counted wrong)
    statuses: Counter = field(default_factory=Counter)  # health checks' verdicts on the corrupted modalities

    def add(self, other: Tally) -> None:
        self.n += other.n
        self.correct += other.correct
        self.nonfinite += other.nonfinite
        self.statuses.update(other.statuses)


def _subsets(mods: Sequence[str]) -> list[tuple[str, ...]]:
    """Non-empty proper subsets of `mods` (as lost sensors: their complements are the kept subsets)."""
    return [c for k in range(1, len(mods)) for c in itertools.combinations(mods, k)]


def plan_cells(faults: Iterable[str], modalities: Sequence[str], severities: Sequence[int], *,
               features: bool, alone: bool = False) -> list[Cell]:
    """Every cell of a run: the clean baseline (with `alone`, also each modality clean on its own), each modality
    absent, and each fault x target x severity.

    Raises:
        ConfigError: an unknown fault, or a fault that applies to none of the chosen modalities.
    """
    mods = tuple(m for m in MODALITIES if m in modalities)
    cells = [Cell("clean", (), 0)] + [Cell("clean", (m,), 0) for m in mods if alone]
    cells += [Cell("absent", (m,), 0) for m in mods]
    levels = [s for s in severities if s > 0]
    for name in faults:
        if name not in FAULTS:
            raise ConfigError(f"unknown fault {name!r}; rfsense stress --list-faults lists them: {', '.join(FAULTS)}")
        fault = FAULTS[name]
        if fault.kind == "features" and not features:
            _logger.warning("fault '%s' masks encoder features: it needs a run folder among the models; skipped", name)
            continue
        if fault.kind == "joint":
            if name == "sensor-lost":
                target_sets = _subsets(mods)
            else:
                target_sets = [mods] if len(mods) >= (2 if name == "desync" else 1) else []
        else:
            target_sets = [(m,) for m in mods if m in fault.modalities]
        if not target_sets:
            raise ConfigError(f"fault '{name}' applies to {', '.join(fault.modalities)}; not to the chosen "
                              f"modalities {', '.join(mods)}")
        cells += [Cell(name, t, s) for t in target_sets for s in levels]
    return cells


# ----------------------------------------------------------------------------------------- evaluation


@dataclass
class _Clean:
    feeds: dict[str, np.ndarray]
    present: np.ndarray


def _clean(model: StressModel, chunk: Chunk) -> _Clean:
    feeds, present = {}, chunk.available.copy()
    for j, m in enumerate(MODALITIES):
        checked = model.check(m, chunk.raw[m])
        feeds[m] = model.prepare(m, checked.values)
        present[:, j] &= checked.usable & ~model.screen(m, feeds[m], checked.usable)  # as the runtime
    return _Clean(feeds, present)


def _score(model: StressModel, feeds: dict[str, np.ndarray], present: np.ndarray, labels: np.ndarray,
           rows: np.ndarray) -> Tally:
    """Accuracy over `rows`; a sample with nothing present, or non-finite logits, is a wrong answer."""
    tally = Tally(n=int(rows.size))
    if rows.size == 0:
        return tally
    run = rows[present[rows].any(axis=1)]
    if run.size:
        logits = model.logits({m: f[run] for m, f in feeds.items()}, present[run])
        finite = np.isfinite(logits).all(axis=1)
        tally.nonfinite = int((~finite).sum())
        tally.correct = int(((logits.argmax(axis=1) == labels[run]) & finite).sum())
    return tally


def _corrupt(cell: Cell, chunk: Chunk, seed: int, scales: dict[str, float] | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The cell's corrupted raw streams (targets only) and the sensors it took away for the whole window."""
    lost = np.zeros(chunk.available.shape, dtype=bool)
    if cell.kind == "joint":
        out, lost = apply_joint(cell.fault, {m: chunk.raw[m] for m in MODALITIES}, cell.severity, seed=seed,
                                sample_ids=chunk.keys, targets=cell.targets)
        return {m: out[m] for m in cell.targets}, lost
    m = cell.targets[0]
    return {m: apply_fault(cell.fault, m, chunk.raw[m], cell.severity, seed=seed, sample_ids=chunk.keys,
                           scale=scales)}, lost


def _evaluate_cell(cell: Cell, chunk: Chunk, models: list[StressModel], cleans: list[_Clean], *, seed: int,
                   health: Sequence[str], alone: bool) -> dict[tuple[str, str], Tally]:
    """Tallies per (model name, health) of one cell on one chunk."""
    out: dict[tuple[str, str], Tally] = {}
    targets = [MODALITIES.index(m) for m in cell.targets]
    rows = np.flatnonzero(chunk.available[:, targets].all(axis=1)) if targets else np.flatnonzero(chunk.available.any(axis=1))
    keep = np.ones(len(MODALITIES), dtype=bool)
    if alone and cell.targets:  # the corrupted sensors alone: the others are not given
        keep[:] = False
        keep[targets] = True
    if cell.kind in ("clean", "absent"):
        for model, clean in zip(models, cleans, strict=True):
            present = clean.present & keep
            if cell.kind == "absent":
                present[:, targets] = False
            out[(model.name, "on")] = _score(model, clean.feeds, present, chunk.labels, rows)
        return out
    if cell.kind == "features":
        m = cell.targets[0]
        for model, clean in zip(models, cleans, strict=True):
            if not model.supports_features:
                continue
            mask = feature_dropout_mask(model.token_features(), m, cell.severity, seed=seed, sample_ids=chunk.keys)
            present = clean.present & keep
            tally = Tally(n=int(rows.size))
            run = rows[present[rows].any(axis=1)]
            if run.size:
                logits = model.logits_with_token_mask({k: f[run] for k, f in clean.feeds.items()}, present[run], m,
                                                      mask[run])
                tally.correct = int((logits.argmax(axis=1) == chunk.labels[run]).sum())
            out[(model.name, "on")] = tally
        return out
    scales = None
    for model in models:  # every model sees the same corrupted streams; the scale is the first model's s(m)
        if model.raw_std:
            scales = model.raw_std
            break
    if FAULTS[cell.fault].needs_scale and scales is None:
        raise ConfigError(f"fault '{cell.fault}' needs each modality's raw-domain std s(m), which the models' "
                          "manifests/packs do not record (exported by an older rfsense): re-export, or leave it out")
    corrupted, lost = _corrupt(cell, chunk, seed, scales)
    for model, clean in zip(models, cleans, strict=True):
        for mode in health:
            feeds, present = dict(clean.feeds), clean.present & keep
            tally_status: Counter = Counter()
            for m, x in corrupted.items():
                j = MODALITIES.index(m)
                if mode == "on":
                    checked = model.check(m, x)
                    feeds[m] = model.prepare(m, checked.values)
                    screened = model.screen(m, feeds[m], checked.usable)  # as the runtime, after preprocessing
                    status = checked.status.astype("<U16")  # room for "implausible"
                    status[screened] = "implausible"
                    present[:, j] = chunk.available[:, j] & checked.usable & ~screened & ~lost[:, j] & keep[j]
                    tally_status.update(f"{m}:{s}" for s in status[rows])
                else:
                    feeds[m] = model.prepare(m, x)
                    present[:, j] = chunk.available[:, j] & keep[j]
            tally = _score(model, feeds, present, chunk.labels, rows)
            tally.statuses = tally_status
            out[(model.name, mode)] = tally
    return out


# ----------------------------------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


def _worker_init(model_paths: list[str], names: list[str], samples: list[Sample], threads: int | None) -> None:
    models = [load_stress_model(p, threads=threads) for p in model_paths]
    for model, name in zip(models, names, strict=True):
        model.name = name
    _WORKER.update(models=models, samples=samples, chunk_id=None)


def _worker_task(chunk_id: int, chunk_size: int, cells: list[Cell], seed: int, health: tuple[str, ...],
                 alone: bool) -> dict[tuple[str, Cell, str], Tally]:
    """Evaluate `cells` on chunk `chunk_id` (loaded and cleaned once per worker and chunk)."""
    models = _WORKER["models"]
    if _WORKER["chunk_id"] != chunk_id:
        start = chunk_id * chunk_size
        chunk = next(iter_chunks(_WORKER["samples"][start : start + chunk_size], chunk_size))
        _WORKER.update(chunk_id=chunk_id, chunk=chunk, cleans=[_clean(m, chunk) for m in models])
    out: dict[tuple[str, Cell, str], Tally] = {}
    for cell in cells:
        for (name, mode), tally in _evaluate_cell(cell, _WORKER["chunk"], models, _WORKER["cleans"], seed=seed,
                                                  health=health, alone=alone).items():
            out[(name, cell, mode)] = tally
    return out


def run_cells(model_paths: list[str], names: list[str], samples: list[Sample], cells: list[Cell], *, seed: int,
              health: tuple[str, ...], alone: bool, workers: int, chunk_size: int = 64,
              threads: int | None = None) -> dict[tuple[str, Cell, str], Tally]:
    """Tallies of every (model name, cell, health) over all samples, using `workers` processes."""
    n_chunks = -(-len(samples) // chunk_size)
    groups = max(1, min(len(cells), 4 * workers))  # enough tasks per chunk to keep every worker busy
    cell_groups = [cells[g::groups] for g in range(groups)]
    tasks = [(c, chunk_size, group, seed, health, alone) for c in range(n_chunks) for group in cell_groups if group]
    totals: dict[tuple[str, Cell, str], Tally] = {}

    def merge(part: dict[tuple[str, Cell, str], Tally]) -> None:
        for key, tally in part.items():
            totals.setdefault(key, Tally()).add(tally)

    if workers <= 1:
        _worker_init(model_paths, names, samples, threads)
        try:
            for task in progress(tasks, header="stress"):
                merge(_worker_task(*task))
        finally:
            _WORKER.clear()
        return totals
    with ProcessPoolExecutor(workers, initializer=_worker_init, initargs=(model_paths, names, samples, threads or 1)) as pool:
        futures = [pool.submit(_worker_task, *task) for task in tasks]
        for f in progress(futures, header="stress"):
            merge(f.result())
    return totals

