"""Batches from a pack: per-sample modality-subset sampling and reading rows from the memory maps."""

from __future__ import annotations

import numpy as np
import torch

from rfsense.data.pack import PackedSplit
from rfsense.modalities import MODALITIES, TIME_AXIS

__all__ = ["draw_presence", "draw_shift", "read_rows", "sample_batch_presence", "sample_presence", "shift_by", "time_shift"]


def sample_presence(
    rng: np.random.Generator, usable: np.ndarray, keep_prob: tuple[float, float, float], max_redraws: int = 64
) -> np.ndarray:
    """Draw a per-sample presence mask (B, 3): Bernoulli(keep_prob) AND usable, empty draws redrawn.

    A sample whose draws stay empty after `max_redraws` (e.g. its only usable modality has a tiny
    keep probability) keeps all its usable modalities, so every sample with data trains.
    """
    usable = np.asarray(usable, dtype=bool)
    p = np.asarray(keep_prob, dtype=np.float64)
    present = (rng.random(usable.shape) < p) & usable
    for _ in range(max_redraws):
        empty = ~present.any(axis=1) & usable.any(axis=1)
        if not empty.any():
            break
        present[empty] = (rng.random((int(empty.sum()), 3)) < p) & usable[empty]
    empty = ~present.any(axis=1)
    present[empty] = usable[empty]
    return present


def sample_batch_presence(
    rng: np.random.Generator, usable: np.ndarray, keep_prob: tuple[float, float, float], max_redraws: int = 64
) -> np.ndarray:
    """X-Fi's draw (``generate_none_empth_modality_list``): ONE Bernoulli(keep_prob) subset for the whole
    batch, an empty draw redrawn, then AND usable per sample -> (B, 3) bool.

    On complete data every row is the same subset. A sample that has none of the drawn modalities usable
    keeps all its usable ones (so it still trains); that is the only way rows can differ.
    """
    usable = np.asarray(usable, dtype=bool)
    p = np.asarray(keep_prob, dtype=np.float64)
    draw = rng.random(3) < p
    for _ in range(max_redraws):
        if draw.any():
            break
        draw = rng.random(3) < p
    if not draw.any():
        draw = p == p.max()
    present = usable & draw[None, :]
    empty = ~present.any(axis=1)
    present[empty] = usable[empty]
    return present


def draw_presence(
    rng: np.random.Generator, usable: np.ndarray, keep_prob: tuple[float, float, float], how: str
) -> np.ndarray:
    """Presence mask (B, 3) of one training batch: ``how`` is "per_sample" (rfsense's original draw,
    every sample its own subset) or "per_batch" (X-Fi's: one subset for the batch)."""
    if how == "per_batch":
        return sample_batch_presence(rng, usable, keep_prob)
    if how == "per_sample":
        return sample_presence(rng, usable, keep_prob)
    raise ValueError(f"presence must be per_sample or per_batch, got {how!r}")


def read_rows(split: PackedSplit, rows: np.ndarray) -> dict[str, torch.Tensor]:
    """Read rows into float32 tensors. `rows` is (B,) or (B, 3) with a row per modality (DML pairing).

    Rows are read in sorted order (sequential disk access on the memory map) and put back in place.
    """
    rows = np.asarray(rows)
    out = {}
    for j, m in enumerate(MODALITIES):
        r = rows[:, j] if rows.ndim == 2 else rows
        order = np.argsort(r, kind="stable")
        data = np.asarray(split.arrays[m][r[order]], dtype=np.float32)
        back = np.empty_like(data)
        back[order] = data
        out[m] = torch.from_numpy(back)
    return out


def draw_shift(rng: np.random.Generator, n: int, max_fraction: float) -> np.ndarray | None:
    """Per-sample time-shift fractions, uniform in [-max_fraction, max_fraction]; None (no draw) when off."""
    if max_fraction <= 0:
        return None
    return rng.uniform(-max_fraction, max_fraction, size=n)


def time_shift(x: dict[str, torch.Tensor], max_fraction: float, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Shift every sample in time by a random fraction of its window, the same for all its modalities.

    The sensors are synchronised, so one offset per sample keeps them aligned; edges are held (no wrap),
    mimicking an action that starts a little earlier or later in the 5 s window.
    """
    frac = draw_shift(rng, next(iter(x.values())).shape[0], max_fraction)
    return x if frac is None else shift_by(x, frac)


def shift_by(x: dict[str, torch.Tensor], frac: np.ndarray) -> dict[str, torch.Tensor]:
    """Shift sample i of every modality by frac[i] of its window (see `time_shift`)."""
    b = next(iter(x.values())).shape[0]
    frac_t = torch.from_numpy(np.asarray(frac, dtype=np.float64))
    out = {}
    for m, t in x.items():
        axis = TIME_AXIS[m] + 1  # + the batch axis
        n = t.shape[axis]
        src = torch.arange(n).unsqueeze(0) - torch.round(frac_t * n).long().unsqueeze(1)  # (B, T)
        src = src.clamp_(0, n - 1).to(t.device)
        shape = [b] + [1] * (t.dim() - 1)
        shape[axis] = n
        out[m] = torch.gather(t, axis, src.view(shape).expand_as(t))
    return out
