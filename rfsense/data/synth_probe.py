"""A training-free difficulty probe: nearest class mean on a fixed feature map per modality.

Used to check that the synthetic data ranks the modalities as real XRF55 does (mmWave > WiFi >
RFID, fusion above each) without training a network. Numpy only.

Features (fixed, no learning):
- mmwave (17, 256, 128): log(1 + magnitude), mean-pooled 8 x 8 over range x Doppler -> (17, 32, 16)
- wifi (270, 1000): motion energy log(mean |d amplitude / dt|) in 20 windows of 50 packets -> (270, 20)
- rfid (23, 148): circular phase step |angle(exp(j*(phi[t+1] - phi[t])))| pooled in 12 windows -> (23, 12)

Each feature is standardised with train statistics; a test sample goes to the class whose train
mean is nearest (mean squared distance per feature). Fusion sums the per-modality distances.

Run: ``python -c "from rfsense.data.synth_probe import probe_accuracy; print(probe_accuracy('DIR'))"``
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from rfsense.data.layout import SplitSpec, discover, split_samples
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES

__all__ = ["features", "ncm_distances", "probe_accuracy", "probe_from_features"]


def _pool_last(x: np.ndarray, n: int) -> np.ndarray:
    """Mean over `n` near-equal windows of the last axis: (..., T) -> (..., n)."""
    edges = np.linspace(0, x.shape[-1], n + 1).round().astype(int)
    return np.add.reduceat(x, edges[:-1], axis=-1) / np.diff(edges)


def features(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Flat float64 feature vectors for whichever modalities are in `arrays` (see module docstring)."""
    out: dict[str, np.ndarray] = {}
    if "mmwave" in arrays:
        x = np.log1p(np.asarray(arrays["mmwave"], dtype=np.float32).reshape(17, 256, 128))
        out["mmwave"] = x.reshape(17, 32, 8, 16, 8).mean(axis=(2, 4)).ravel().astype(np.float64)
    if "wifi" in arrays:
        x = np.asarray(arrays["wifi"], dtype=np.float64)
        out["wifi"] = np.log(_pool_last(np.abs(np.diff(x, axis=1)), 20) + 1e-3).ravel()
    if "rfid" in arrays:
        x = np.asarray(arrays["rfid"], dtype=np.float64)
        step = np.abs(np.angle(np.exp(1j * np.diff(x, axis=1))))
        out["rfid"] = _pool_last(step, 12).ravel()
    return out


def ncm_distances(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, classes: np.ndarray
) -> np.ndarray:
    """Mean squared standardised distance of each test row to each class mean: (n_test, n_classes)."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-8
    ztr, zte = (train_x - mu) / sd, (test_x - mu) / sd
    means = np.stack([ztr[train_y == c].mean(0) for c in classes])  # (C, D)
    d = (zte**2).sum(1)[:, None] - 2 * zte @ means.T + (means**2).sum(1)[None, :]
    return d / train_x.shape[1]


def probe_from_features(
    train: Mapping[str, np.ndarray],
    train_y: np.ndarray,
    test: Mapping[str, np.ndarray],
    test_y: np.ndarray,
) -> dict[str, float]:
    """Accuracy per modality and for fusion (summed distances), from (n, D) feature matrices."""
    classes = np.unique(train_y)
    acc: dict[str, float] = {}
    total = None
    for m in MODALITIES:
        d = ncm_distances(train[m], train_y, test[m], classes)
        acc[m] = float(np.mean(classes[d.argmin(1)] == test_y))
        total = d if total is None else total + d
    assert total is not None
    acc["fusion"] = float(np.mean(classes[total.argmin(1)] == test_y))
    return acc


def probe_accuracy(root: str | os.PathLike[str]) -> dict[str, float]:
    """Nearest-class-mean accuracy per modality and fused, on the official split of `root`.

    Args:
        root: an XRF55-layout folder (e.g. written by `rfsense synth`); trials 1-14 train, 15-20 test.

    Returns:
        {'mmwave': acc, 'wifi': acc, 'rfid': acc, 'fusion': acc}, accuracies in [0, 1].

    Raises:
        DataError: no complete samples, or the split leaves train or test empty.
    """
    found = discover(root)
    samples = [s for s in found.samples if all(m in s.files for m in MODALITIES)]
    if not samples:
        raise DataError(f"no complete samples (all of mmWave, WiFi, RFID) under {root}")
    parts = split_samples(samples, SplitSpec())
    if not parts["train"] or not parts["test"]:
        raise DataError(f"probe needs trials 1-14 and 15-20 under {root}; got {len(parts['train'])} train, "
                        f"{len(parts['test'])} test samples")
    feats: dict[str, dict[str, np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    for part, group in parts.items():
        rows = [features({m: np.load(s.files[m]) for m in MODALITIES}) for s in group]
        feats[part] = {m: np.stack([r[m] for r in rows]) for m in MODALITIES}
        labels[part] = np.array([s.label for s in group])
    return probe_from_features(feats["train"], labels["train"], feats["test"], labels["test"])
