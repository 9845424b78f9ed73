"""Batches from a pack: per-sample modality-subset sampling and reading rows from the memory maps."""

from __future__ import annotations

import numpy as np
import torch

from rfsense.data.pack import PackedSplit
from rfsense.modalities import MODALITIES, TIME_AXIS

__all__ = ["draw_presence", "mixup", "read_rows", "sample_batch_presence", "sample_presence", "time_shift"]


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


def time_shift(x: dict[str, torch.Tensor], max_fraction: float, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Shift every sample in time by a random fraction of its window, the same for all its modalities.

    The sensors are synchronised, so one offset per sample keeps them aligned; edges are held (no wrap),
    mimicking an action that starts a little earlier or later in the 5 s window.
    """
    if max_fraction <= 0:
        return x
    b = next(iter(x.values())).shape[0]
    frac = torch.from_numpy(rng.uniform(-max_fraction, max_fraction, size=b))
    out = {}
    for m, t in x.items():
        axis = TIME_AXIS[m] + 1  # + the batch axis
        n = t.shape[axis]
        src = torch.arange(n).unsqueeze(0) - torch.round(frac * n).long().unsqueeze(1)  # (B, T)
        src = src.clamp_(0, n - 1).to(t.device)
        shape = [b] + [1] * (t.dim() - 1)
        shape[axis] = n
        out[m] = torch.gather(t, axis, src.view(shape).expand_as(t))
    return out


def mixup(
    x: dict[str, torch.Tensor], present: np.ndarray, usable: np.ndarray, y: np.ndarray, n_classes: int,
    alpha: float, rng: np.random.Generator,
) -> tuple[dict[str, torch.Tensor], np.ndarray, torch.Tensor]:
    """Mixup of whole samples: every modality of sample i mixed with the same partner j and weight
    lam ~ Beta(alpha, alpha) folded to [0.5, 1] (sample i stays the dominant one), labels mixed alike.

    The mixed sample keeps the modalities present in i that j also has usable; a sample whose partner has
    none of them is left unmixed. Returns (x, present (B, 3), soft targets (B, n_classes) float32).
    """
    b = len(y)
    lam = float(rng.beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)
    perm = rng.permutation(b)
    both = present & usable[perm]
    lone = ~both.any(axis=1)
    present = np.where(lone[:, None], present, both)
    w = torch.from_numpy(np.where(lone, 1.0, lam).astype(np.float32))  # (B,)
    out = {}
    for m, t in x.items():
        wm = w.to(t.device).view(-1, *([1] * (t.dim() - 1)))
        out[m] = wm * t + (1 - wm) * t[torch.from_numpy(perm).to(t.device)]
    eye = np.eye(n_classes, dtype=np.float32)
    wn = w.numpy()[:, None]
    targets = torch.from_numpy(wn * eye[y] + (1 - wn) * eye[y[perm]])
    return out, present, targets
