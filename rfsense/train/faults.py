"""Fault-aware training (`train.faults`, off by default): train on the faults the field will bring.

For each training batch, a share of the samples (`fraction`) gets one fault drawn from `names`, at a
severity drawn from `severities`, on one modality it applies to (joint faults: on every sensor of the
sample). Training reads preprocessed packs, so the faults' preprocessed variants are used
(`rfsense.data.faults.apply_preprocessed` / `apply_joint_preprocessed`): gaps are left as the runtime's repair
would leave them, a stream the quality rule would fail is zeroed and masked (present = False), noise is scaled
by the preprocessed domain's std. Which faults have such a variant: `rfsense stress --list-faults` (the
"preprocessed variant" line); the others are refused in the config.

Draws are seeded by (train.seed, epoch, step), so a resumed run corrupts exactly the same samples.
"""

from __future__ import annotations

import numpy as np

from rfsense.config import schema
from rfsense.data.faults import FAULTS, apply_joint_preprocessed, apply_preprocessed
from rfsense.data.normstats import NormStats
from rfsense.data.preprocess import PreprocessConfig
from rfsense.data.quality import QualityConfig
from rfsense.modalities import MODALITIES

__all__ = ["FaultTraining", "check_fault_names", "corrupt_batch", "preprocessed_scales"]

_STREAM = 7_919  # keeps the fault draws' random stream apart from the loop's other draws


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


def corrupt_batch(
    x: dict[str, np.ndarray], present: np.ndarray, keys: np.ndarray, cfg: FaultTraining, *, seed: int, epoch: int,
    step: int, scales: dict[str, float], prep: PreprocessConfig, quality: QualityConfig,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Corrupt a share of a batch in place of the clean arrays; returns (arrays, present).

    Args:
        x: modality -> preprocessed batch (B, *SHAPES[m]) (numpy, any float dtype). present: (B, 3) bool.
        keys: (B, 3) sample keys (volunteer, action, trial): the faults' per-sample draws.
    """
    if not cfg.names:
        return x, present
    rng = np.random.default_rng([seed, epoch, step, _STREAM])
    b = len(present)
    chosen = np.flatnonzero(rng.random(b) < cfg.fraction)
    names = rng.choice(len(cfg.names), size=b)
    severities = rng.choice(np.asarray(cfg.severities), size=b)
    fault_seed = int(rng.integers(2**31))
    x = {m: a.copy() for m, a in x.items()}
    present = present.copy()
    for i in chosen:
        fault = FAULTS[cfg.names[names[i]]]
        rows = slice(i, i + 1)
        if fault.kind == "joint":
            given = [m for j, m in enumerate(MODALITIES) if present[i, j]]
            if len(given) < (2 if fault.name == "desync" else 1):
                continue
            out, usable = apply_joint_preprocessed(fault.name, {m: x[m][rows] for m in given}, int(severities[i]),
                                                   seed=fault_seed, sample_ids=keys[rows], targets=tuple(given),
                                                   prep=prep, quality=quality)
            for m in given:
                x[m][rows] = out[m]
            present[i] &= usable[0]
            continue
        options = [m for j, m in enumerate(MODALITIES) if present[i, j] and m in fault.modalities]
        if not options:
            continue
        m = options[int(rng.integers(len(options)))]
        y, usable = apply_preprocessed(fault.name, m, x[m][rows], int(severities[i]), seed=fault_seed,
                                       sample_ids=keys[rows], scale=scales, prep=prep, quality=quality)
        x[m][rows] = y
        present[i, MODALITIES.index(m)] &= bool(usable[0])
    return x, present
