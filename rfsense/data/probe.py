"""A training-free difficulty probe: nearest class mean on a fixed feature map per modality.

It checks, without training a network, that data (synthetic or real) rank the modalities as on
real XRF55 (mmWave > WiFi > RFID) and that fusing them helps. Numpy only.

Fixed features (no learning):

- mmwave (17, 256, 128): log(1 + magnitude) mean-pooled 4 x 4 over range x Doppler -> (17, 64, 32)
- wifi (270, 1000): spectrogram energy of each antenna's amplitude (mean over its 30 subcarriers):
  4 windows of 1.25 s x 6 bands (0.8-2.4, -5.6, -10.4, -20, -40, -100 Hz), log -> (9, 4, 6).
  Motion shows up as amplitude fluctuation at the Doppler rate 2v/lambda.
- rfid (23, 148): circular variance of each tag's phase in 4 windows of 37 slots -> (23, 4); it
  ignores the unknown tag offsets and the 2*pi wraps.

Classifier: features are centred per feature with train statistics and scaled by one global
standard deviation per modality (so noise-only cells do not weigh as much as moving-body cells).
A test sample goes to the class whose train mean is nearest (mean squared distance per feature).

Fusion: each modality's distances become class posteriors softmax(-d / T_m), with T_m fitted by
maximum likelihood on leave-one-out train distances (calibration); the fused class maximises the
sum of log posteriors (product rule). Calibration lets a weak modality speak only as loudly as
its train evidence allows.

Run: ``python -c "from rfsense.data.probe import probe_accuracy; print(probe_accuracy('DIR'))"``
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from itertools import pairwise

import numpy as np

from rfsense.data.layout import SplitSpec, discover, split_samples
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES

__all__ = ["features", "probe_accuracy", "probe_from_features"]

_WIFI_BANDS = (1, 3, 7, 13, 25, 50, 126)  # rfft bins of a 250-sample window at 200 Hz (0.8 Hz each)
_TEMPERATURES = np.geomspace(1e-4, 1e2, 241)


def features(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Flat float64 feature vectors for whichever modalities are in `arrays` (see module docstring)."""
    out: dict[str, np.ndarray] = {}
    if "mmwave" in arrays:
        x = np.log1p(np.asarray(arrays["mmwave"], dtype=np.float32).reshape(17, 256, 128))
        out["mmwave"] = x.reshape(17, 64, 4, 32, 4).mean(axis=(2, 4)).ravel().astype(np.float64)
    if "wifi" in arrays:
        x = np.asarray(arrays["wifi"], dtype=np.float64).reshape(9, 30, 4, 250)
        x = x - x.mean(-1, keepdims=True)
        power = np.abs(np.fft.rfft(x * np.hanning(250), axis=-1)) ** 2  # (9, 30, 4, 126)
        bands = np.stack([power[..., a:b].mean(-1) for a, b in pairwise(_WIFI_BANDS)], -1)
        out["wifi"] = np.log(bands.mean(1) + 1e-6).ravel()
    if "rfid" in arrays:
        z = np.exp(1j * np.asarray(arrays["rfid"], dtype=np.float64))[:, :148]
        out["rfid"] = (1 - np.abs(z.reshape(23, 4, 37).mean(-1))).ravel()
    return out


def _log_softmax(v: np.ndarray) -> np.ndarray:
    v = v - v.max(1, keepdims=True)
    return v - np.log(np.exp(v).sum(1, keepdims=True))


def _ncm(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared distances to the class means: (leave-one-out train (n_tr, C), test (n_te, C))."""
    mu = train_x.mean(0)
    scale = train_x.std() + 1e-12
    a, b = (train_x - mu) / scale, (test_x - mu) / scale
    own = np.searchsorted(classes, train_y)
    counts = np.bincount(own, minlength=len(classes)).astype(np.float64)
    means = np.stack([a[own == i].mean(0) for i in range(len(classes))])  # (C, D)

    def dist(q: np.ndarray) -> np.ndarray:
        return ((q**2).sum(1)[:, None] - 2 * q @ means.T + (means**2).sum(1)[None, :]) / a.shape[1]

    d_tr = dist(a)
    # leave-one-out: without x itself its class mean moves to (n*mu - x)/(n-1), which scales the
    # distance from x by (n/(n-1))^2
    n = counts[own]
    d_tr[np.arange(len(a)), own] *= (n / np.maximum(n - 1, 1)) ** 2
    return d_tr, dist(b)


def _temperature(d_tr: np.ndarray, own: np.ndarray) -> float:
    """Softmax temperature minimising the leave-one-out negative log likelihood (grid search)."""
    rows = np.arange(len(d_tr))
    nll = [-_log_softmax(-d_tr / t)[rows, own].mean() for t in _TEMPERATURES]
    return float(_TEMPERATURES[int(np.argmin(nll))])


def probe_from_features(
    train: Mapping[str, np.ndarray],
    train_y: np.ndarray,
    test: Mapping[str, np.ndarray],
    test_y: np.ndarray,
) -> dict[str, float]:
    """Accuracy per modality and fused, from (n, D) feature matrices keyed by modality.

    Returns:
        {'mmwave', 'wifi', 'rfid', 'fusion'} -> accuracy in [0, 1].
    """
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    classes = np.unique(train_y)
    own = np.searchsorted(classes, train_y)
    acc: dict[str, float] = {}
    fused = np.zeros((len(test_y), len(classes)))
    for m in MODALITIES:
        d_tr, d_te = _ncm(np.asarray(train[m], float), train_y, np.asarray(test[m], float), classes)
        acc[m] = float(np.mean(classes[d_te.argmin(1)] == test_y))
        fused += _log_softmax(-d_te / _temperature(d_tr, own))
    acc["fusion"] = float(np.mean(classes[fused.argmax(1)] == test_y))
    return acc


def probe_accuracy(root: str | os.PathLike[str]) -> dict[str, float]:
    """Nearest-class-mean accuracy per modality and fused, on the official split of `root`.

    Args:
        root: an XRF55-layout folder (e.g. written by `rfsense synth`); trials 1-14 train,
            15-20 test. Only samples with all three modalities are used.

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
        raise DataError(
            f"the probe needs trials 1-14 (train) and 15-20 (test) under {root}; "
            f"found {len(parts['train'])} train and {len(parts['test'])} test samples"
        )
    feats: dict[str, dict[str, np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    for part, group in parts.items():
        rows = [features({m: np.load(s.files[m]) for m in MODALITIES}) for s in group]
        feats[part] = {m: np.stack([r[m] for r in rows]) for m in MODALITIES}
        labels[part] = np.array([s.label for s in group])
    return probe_from_features(feats["train"], labels["train"], feats["test"], labels["test"])
