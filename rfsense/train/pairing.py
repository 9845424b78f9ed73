"""DML pairing (distributional multimodal learning, DML paper §3.3): same-class re-pairing across modalities.

With ``train.pairing: dml`` every step reads each modality of a sample from a random training sample
of the same class, drawn independently per modality, instead of the sample's own recording. The
loader asks ``SameClassPairer.pair(batch_indices)`` where to read each modality from.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rfsense.modalities import MODALITIES

__all__ = ["SameClassPairer"]


class SameClassPairer:
    """Draws, per sample and modality, a same-class dataset index that has that modality available.

    Build it over the training split only. Deterministic given ``seed`` and the sequence of calls.

    Args:
        labels: (N,) integer class labels of the dataset.
        available: (N, 3) bool, modality present on disk per sample (``MODALITIES`` order), or None
            for all available.
        seed: seed of the internal ``numpy.random.Generator``.

    Raises:
        ValueError: malformed ``labels`` or ``available``.
    """

    def __init__(self, labels: npt.ArrayLike, available: npt.ArrayLike | None = None, seed: int = 0) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}"
            )
        n = labels.shape[0]
        if available is None:
            available = np.ones((n, len(MODALITIES)), dtype=bool)
        available = np.asarray(available)
        if available.shape != (n, len(MODALITIES)) or available.dtype != np.bool_:
            raise ValueError(
                f"available must be a bool array of shape ({n}, {len(MODALITIES)}), "
                f"got shape {available.shape} dtype {available.dtype}"
            )
        self.n = n
        self._class = np.unique(labels, return_inverse=True)[1].reshape(-1)  # (N,) dense class ids
        n_classes = int(self._class.max()) + 1 if n else 0
        self._rng = np.random.default_rng(seed)
        # Per modality: dataset indices that have it, grouped by class; class c occupies
        # order[start[c] : start[c] + count[c]].
        self._order: list[np.ndarray] = []
        self._start: list[np.ndarray] = []
        self._count: list[np.ndarray] = []
        for m in range(len(MODALITIES)):
            idx = np.flatnonzero(available[:, m])
            idx = idx[np.argsort(self._class[idx], kind="stable")]
            count = np.bincount(self._class[idx], minlength=n_classes)
            self._order.append(idx)
            self._count.append(count)
            self._start.append(np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64))

    def pair(self, indices: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Source index per (sample, modality).

        Args:
            indices: (B,) dataset indices of the batch.

        Returns:
            (B, 3) int64: for each sample and modality (``MODALITIES`` order), the index of a uniformly
            drawn sample of the same class that has that modality available (possibly the sample
            itself); the sample's own index when no such sample exists.

        Raises:
            ValueError: an index outside ``[0, N)`` or a non-1-D ``indices``.
        """
        indices = np.asarray(indices)
        if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
            raise ValueError(
                f"indices must be a 1-D integer array, got shape {indices.shape} dtype {indices.dtype}"
            )
        indices = indices.astype(np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.n):
            raise ValueError(
                f"indices must lie in [0, {self.n}), got min {indices.min()} max {indices.max()}"
            )
        cls = self._class[indices]  # (B,)
        out = np.empty((indices.size, len(MODALITIES)), dtype=np.int64)
        for m in range(len(MODALITIES)):
            count = self._count[m][cls]  # (B,)
            offset = self._rng.integers(0, np.maximum(count, 1))  # independent draw per sample and modality
            pos = np.where(count > 0, self._start[m][cls] + offset, 0)
            picked = self._order[m][pos] if self._order[m].size else indices
            out[:, m] = np.where(count > 0, picked, indices)  # fall back to the sample itself
        return out
