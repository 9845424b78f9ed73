"""Fault-aware training (`train.faults`, off by default): train on the faults the field will bring.

For each training batch, a share of the samples (`fraction`) gets one fault drawn from `names`, at a
severity drawn from `severities`, on one modality it applies to (joint faults: on every sensor of the
sample). Training reads preprocessed packs, so the faults' preprocessed variants are used
(`rfsense.data.faults.apply_preprocessed` / `apply_joint_preprocessed`): gaps are left as the runtime's repair
would leave them, a stream the quality rule would fail is zeroed and masked (present = False), noise is scaled
by the preprocessed domain's std. Which faults have such a variant: `rfsense stress --list-faults` (the
"preprocessed variant" line); the others are refused in the config.

The draws (which samples, which fault, severity and modality) are part of each step's plan, made from the
loop's seeded generator, so a resumed run, any prefetch depth and any number of DDP ranks corrupt exactly
the same samples; each rank applies them to its own rows in the loader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rfsense.config import schema
from rfsense.data.faults import FAULTS, apply_joint_preprocessed, apply_preprocessed
from rfsense.data.normstats import NormStats
from rfsense.data.preprocess import PreprocessConfig
from rfsense.data.quality import QualityConfig
from rfsense.modalities import MODALITIES

__all__ = ["FaultPlan", "FaultTraining", "check_fault_names", "corrupt_rows", "plan_faults", "preprocessed_scales"]

@schema
class FaultTraining:
    """Settings of fault-aware training (`train.faults`); `names` empty = off."""

    names: tuple[str, ...] = ()
    fraction: float = 0.25  # share of the training samples corrupted in each batch
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)  # drawn uniformly per corrupted sample

    def __post_init__(self) -> None:
        check_fault_names(self.names)
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")
        if not self.severities or any(not 1 <= s <= 5 for s in self.severities):
            raise ValueError(f"severities must be in 1..5, got {list(self.severities)}")


def check_fault_names(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; rfsense stress --list-faults lists them")
        if not FAULTS[name].has_preprocessed:
            raise ValueError(f"fault {name!r} cannot act on preprocessed training arrays: {FAULTS[name].preprocessed}")


def preprocessed_scales(stats: NormStats) -> dict[str, float]:
    """Each modality's std over the preprocessed training split, from the pack's per-channel statistics
    (channels hold equal numbers of values, so the total variance is mean(var_c) + var(mean_c))."""
    return {m: float(np.sqrt(np.mean(stats.std[m] ** 2) + np.var(stats.mean[m]))) for m in stats.mean}


@dataclass(frozen=True)
class FaultPlan:
    """The fault draws of one global batch (made in the step plan, the same on every rank): per sample the
    fault (index into the config's names, -1 = clean), its severity, and `pick` in [0, 1) choosing among the
    present modalities it applies to; `seed` seeds the faults' per-sample draws."""

    fault: np.ndarray
    severity: np.ndarray
    pick: np.ndarray
    seed: int

    def rows(self, sl: slice) -> FaultPlan:
        return FaultPlan(self.fault[sl], self.severity[sl], self.pick[sl], self.seed)


def plan_faults(rng: np.random.Generator, b: int, cfg: FaultTraining) -> FaultPlan | None:
    """Draw a batch's faults from the loop's generator; None (and no draw at all) when fault training is off."""
    if not cfg.names:
        return None
    chosen = rng.random(b) < cfg.fraction
    fault = np.where(chosen, rng.integers(len(cfg.names), size=b), -1)
    return FaultPlan(fault, rng.choice(np.asarray(cfg.severities), size=b), rng.random(b), int(rng.integers(2**31)))


def corrupt_rows(
    x: dict[str, np.ndarray], present: np.ndarray, keys: np.ndarray, plan: FaultPlan, cfg: FaultTraining, *,
    scales: dict[str, float], prep: PreprocessConfig, quality: QualityConfig,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Apply a batch's planned faults to its preprocessed arrays; returns new (arrays, present).

    Args:
        x: modality -> preprocessed rows (b, *SHAPES[m]) (numpy, any float dtype). present: (b, 3) bool.
        keys: (b, 3) sample keys (volunteer, action, trial): the faults' per-sample draws.
        plan: this batch's (or this rank's rows of it) `FaultPlan`.
    """
    x = {m: a.copy() for m, a in x.items()}
    present = present.copy()
    for i in np.flatnonzero(plan.fault >= 0):
        fault = FAULTS[cfg.names[plan.fault[i]]]
        rows, severity = slice(i, i + 1), int(plan.severity[i])
        if fault.kind == "joint":
            given = [m for j, m in enumerate(MODALITIES) if present[i, j]]
            if len(given) < (2 if fault.name == "desync" else 1):
                continue
            out, usable = apply_joint_preprocessed(fault.name, {m: x[m][rows] for m in given}, severity,
                                                   seed=plan.seed, sample_ids=keys[rows], targets=tuple(given),
                                                   prep=prep, quality=quality)
            for m in given:
                x[m][rows] = out[m]
            present[i] &= usable[0]
            continue
        options = [m for j, m in enumerate(MODALITIES) if present[i, j] and m in fault.modalities]
        if not options:
            continue
        m = options[int(plan.pick[i] * len(options))]
        y, usable = apply_preprocessed(fault.name, m, x[m][rows], severity, seed=plan.seed, sample_ids=keys[rows],
                                       scale=scales, prep=prep, quality=quality)
        x[m][rows] = y
        present[i, MODALITIES.index(m)] &= bool(usable[0])
    return x, present
