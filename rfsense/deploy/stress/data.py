"""The samples a stress run corrupts: one split of an XRF55-layout tree, read in chunks (numpy only)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rfsense.data.layout import Sample, SplitSpec, discover, split_samples
from rfsense.data.validate import load_modality
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES, SHAPES

__all__ = ["Chunk", "iter_chunks", "select_samples"]

_logger = logging.getLogger(__name__)


@dataclass
class Chunk:
    """Raw streams of a few samples: keys (n, 3) (volunteer, action, trial) — the faults' sample ids —, labels
    (n,), raw[m] (n, *SHAPES[m]) float (zeros where the file is missing), available (n, 3)."""

    keys: np.ndarray
    labels: np.ndarray
    raw: dict[str, np.ndarray]
    available: np.ndarray


def select_samples(root: str | os.PathLike[str], spec: SplitSpec, split: str, limit: int | None,
                   n_classes: int) -> list[Sample]:
    """The samples of `split` (every `limit`-th one spread over the split when limited, so all classes stay in).

    Raises:
        DataError: no such split, an empty one, or labels outside the models' classes.
    """
    parts = split_samples(discover(root).samples, spec)
    if split not in parts:
        raise DataError(f"split {split!r} does not exist; choose one of {', '.join(parts)}")
    samples = parts[split]
    if not samples:
        raise DataError(f"split {split!r} of {root} is empty under {spec}")
    bad = sorted({s.label for s in samples if s.label >= n_classes})
    if bad:
        raise DataError(f"{root}: labels {[b + 1 for b in bad][:5]} (actions) lie outside the models' {n_classes} classes")
    if limit is not None and limit < len(samples):
        idx = np.linspace(0, len(samples) - 1, limit).round().astype(int)
        samples = [samples[i] for i in np.unique(idx)]
    return samples


def iter_chunks(samples: list[Sample], size: int) -> Iterator[Chunk]:
    """Read `size` samples at a time; an unreadable file makes its modality unavailable for that sample."""
    for start in range(0, len(samples), size):
        part = samples[start : start + size]
        n = len(part)
        raw = {m: np.zeros((n, *SHAPES[m]), dtype=np.float32 if m == "mmwave" else np.float64) for m in MODALITIES}
        available = np.zeros((n, len(MODALITIES)), dtype=bool)
        for i, s in enumerate(part):
            for j, m in enumerate(MODALITIES):
                path = s.files.get(m)  # type: ignore[call-overload]
                if path is None:
                    continue
                try:
                    raw[m][i] = load_modality(path, m)  # type: ignore[arg-type]
                    available[i, j] = True
                except DataError as err:
                    _logger.warning("stress: %s (that modality is unavailable for this sample)", err)
        keys = np.array([tuple(s.key) for s in part], dtype=np.int64).reshape(n, 3)
        yield Chunk(keys, np.array([s.label for s in part], dtype=np.int64), raw, available)
