"""Per-channel normalisation statistics, fitted on the training split of a pack after preprocessing.

Export bakes them into the ONNX graph (the network's first layer); `NormAccumulator` streams over batches
so the whole training split is never in memory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rfsense.errors import DataError
from rfsense.modalities import MODALITIES

__all__ = ["STD_EPS", "NormAccumulator", "NormStats"]

_log = logging.getLogger(__name__)

# Floor for per-channel std: a constant channel (e.g. a missing receiver's zeros) must not divide by 0.
STD_EPS = 1e-6


@dataclass
class NormStats:
    """Per-channel mean/std per modality (channel = axis 1: 17 frames, 270 links, 23 tags), float64."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    def apply(self, modality: str, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """(x - mean) / std broadcast over channel axis 1 of a (B, C, ...) batch; float32."""
        if modality not in self.mean:
            raise KeyError(f"no normalisation statistics for '{modality}'; have {', '.join(self.mean)}")
        x = np.asarray(x)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return ((x - self.mean[modality].reshape(shape)) / self.std[modality].reshape(shape)).astype(
            np.float32
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an .npz of plain float64 arrays (keys `mean__<mod>`, `std__<mod>`), loadable without pickle."""
        arrays = {f"mean__{m}": np.asarray(v, np.float64) for m, v in self.mean.items()}
        arrays.update({f"std__{m}": np.asarray(v, np.float64) for m, v in self.std.items()})
        with open(path, "wb") as f:  # a file object stops numpy from appending ".npz" to the name
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NormStats:
        """Read what `save` wrote.

        Raises:
            DataError: missing or malformed file, or mean/std keys that do not pair up.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as err:
            raise DataError(
                f"normalisation stats {path}: cannot read ({err}); expected an .npz from NormStats.save"
            ) from err
        mean = {k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith("mean__")}
        std = {k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith("std__")}
        if set(mean) != set(std) or len(mean) + len(std) != len(arrays) or not mean:
            raise DataError(
                f"normalisation stats {path}: keys {sorted(arrays)}; expected matching mean__<modality> and "
                "std__<modality> arrays"
            )
        return cls(mean=mean, std=std)


class NormAccumulator:
    """Streaming per-channel mean/std over batches of the TRAINING split only.

    Merges exact per-batch mean and sum of squared deviations with Chan et al.'s parallel update,
    in float64, so the result matches np.mean/np.std (ddof=0) of the concatenation without the
    cancellation of a sum/sum-of-squares formula.
    """

    def __init__(self) -> None:
        self._n: dict[str, np.ndarray] = {}
        self._mean: dict[str, np.ndarray] = {}
        self._m2: dict[str, np.ndarray] = {}

    def update(self, modality: str, x: npt.ArrayLike, usable: npt.ArrayLike | None = None) -> None:
        """Add a (B, C, ...) batch of preprocessed data; samples with usable[b] False are skipped."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality '{modality}'; expected one of {', '.join(MODALITIES)}")
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"{modality} batch has shape {x.shape}; expected (B, C, ...)")
        if usable is not None:
            x = x[np.asarray(usable, dtype=bool)]
        c = x.shape[1]
        if modality not in self._n:
            self._n[modality] = np.zeros(c)
            self._mean[modality] = np.zeros(c)
            self._m2[modality] = np.zeros(c)
        elif self._mean[modality].shape[0] != c:
            raise ValueError(
                f"{modality} batch has {c} channels; earlier batches had {self._mean[modality].shape[0]}"
            )
        if len(x) == 0:
            return
        axes = (0, *range(2, x.ndim))
        nb = float(x.size // c)
        mb = x.mean(axis=axes, dtype=np.float64)
        d = x - mb.reshape((1, -1) + (1,) * (x.ndim - 2))
        m2b = np.square(d).sum(axis=axes, dtype=np.float64)
        na = self._n[modality]
        n = na + nb
        delta = mb - self._mean[modality]
        self._mean[modality] = self._mean[modality] + delta * (nb / n)
        self._m2[modality] = self._m2[modality] + m2b + delta**2 * (na * nb / n)
        self._n[modality] = n

    def result(self) -> NormStats:
        """NormStats for every modality seen; std = max(population std, STD_EPS).

        A modality that was updated but never with a usable sample (e.g. a data set without that
        sensor) gets mean 0 / std 1, the identity, and a warning: the model never sees it anyway.
        """
        mean, std = {}, {}
        for m in self._n:
            n = self._n[m]
            if not (n > 0).all():
                _log.warning(
                    "no usable training samples for '%s'; using identity normalisation (mean 0, std 1)", m
                )
                mean[m], std[m] = np.zeros_like(n), np.ones_like(n)
                continue
            mean[m] = self._mean[m].copy()
            std[m] = np.maximum(np.sqrt(self._m2[m] / n), STD_EPS)
        return NormStats(mean=mean, std=std)
