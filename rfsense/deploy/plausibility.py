"""Plausibility of preprocessed streams: the checks a model's training data sets (numpy only, no torch).

The physical checks on raw values are part of the quality rule (`rfsense.data.quality`, check 0). These two
come from the pack's training split, are fitted at export and stored in the manifest (rfsense-onnx/2), and
run in the runtime after preprocessing; a stream that fails either becomes ``implausible`` (masked):

- distribution: per channel (WiFi link, RFID tag, mmWave frame) three features of the preprocessed stream,
  its level (mean), spread (log10 std over the rest of the sample) and roughness (log10 mean step along time,
  or Doppler for mmWave, over the std), against robust statistics of the training split (median, 1.4826
  MAD). A channel's distance is the largest of its features' robust z-scores; the stream's distribution score is the median over its non-flat channels (flat channels, e.g. a
  missing receiver, are the health check's business; a few odd channels do not move a median, a stream
  that is not this sensor's moves all of them). Catches wrong scales, white noise and streams of another
  sensor, whatever the model makes of them.
- out of distribution: the Mahalanobis distance of the modality's pooled embedding to the nearest class
  mean (class means and one shared covariance, Ledoit-Wolf shrunk, fitted on the training rows; Lee et al.
  2018), computed inside each ONNX encoder graph as its ``ood`` output so the runtime stays torch-free.

Both scores get a threshold the same way: the ``quantile`` of the scores on the validation slice (the rows
training held out), times ``margin``. Without enough held-out rows, the OOD threshold comes from leave-one-out
scores of the training rows and the distribution threshold from the training rows (its median and MAD are
robust to any one row); with too few of those as well there is no threshold (a handful of rows calibrates
nothing) and no check, and the manifest says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rfsense.config import Fraction, PositiveFloat, PositiveInt, StrictBool, from_data, schema
from rfsense.data.preprocess import compiled
from rfsense.errors import ConfigError, ModelFileError
from rfsense.modalities import MODALITIES, SHAPES

__all__ = [
    "OodFit",
    "FEATURES",
    "Plausibility",
    "PlausibilityConfig",
    "channel_features",
    "check_distribution",
    "distribution_scores",
    "fit_distribution",
    "fit_ood",
    "loo_scores",
    "scores_of_features",
    "ood_scores",
    "threshold_of",
    "read_plausibility",
]

_MAD_TO_SIGMA = 1.4826
# A preprocessed channel with a std below this carries nothing (dead receiver, lost tag): not judged here.
_FLAT = 1e-6
# Floors of the robust scales, so a feature that hardly varies over the training split (e.g. RFID levels,
# which offset removal pins near 0) does not turn every small difference into an alarm: levels in units of
# the channel's typical std, spread and roughness in log10 units (0.05 = 12 %).
_LEVEL_FLOOR, _SPREAD_FLOOR = 0.25, 0.05


@schema
class PlausibilityConfig:
    """Settings of the plausibility checks after preprocessing; in the manifest (plausibility.config).

    The runtime reads the two switches; the rest sets the statistics and thresholds at export (stored
    beside them in the manifest).
    """

    distribution: StrictBool = True  # check the distribution score against its threshold
    ood: StrictBool = True  # check the out-of-distribution score against its threshold
    # Each threshold: this quantile of held-out in-distribution scores, times the margin (> 1 leaves room for
    # the sampling error of a high quantile on a few hundred rows, and for data a little unlike the pack's).
    quantile: Fraction = 0.995
    margin: PositiveFloat = 1.25
    # Rows per modality the statistics are fitted on and thresholds set on (a seeded subset beyond it).
    max_rows: PositiveInt = 2048
    # Fewer rows than this cannot calibrate a check: with fewer held-out rows the thresholds come from the
    # training rows (leave-one-out for the OOD score); with fewer of those too, there is none.
    min_rows: PositiveInt = 20


# ------------------------------------------------------------------------------------ distribution


FEATURES = ("level", "spread", "roughness")


def channel_features(x: npt.ArrayLike, fast: bool = False) -> npt.NDArray[np.float64]:
    """Per-channel (axis 1) level, spread and roughness of a preprocessed batch.

    Args:
        x: (B, C, ...) float array (preprocessed: wifi (B, 270, 1000), rfid (B, 23, 148), mmwave (B, 17, 256, 128)).

    Returns:
        float64 (B, C, 3): the mean and the log10 std over the channel's other axes (-inf for a flat channel), and
        the log10 of the mean absolute step along the last axis (time; Doppler for mmWave) over that std. Sensor
        data is smooth at its sampling rate (motion, blobs in a heatmap), so noise stands out in the last one
        even when its level and spread match. `fast`: one compiled pass once compiled
        (`rfsense.data.preprocess.compiled.channel_moments`; the runtime's choice; equal to ~1e-6 relative).
    """
    x = np.asarray(x)
    b, c = x.shape[:2]
    if fast and compiled.ready() and x.dtype in (np.float32, np.float64) and x.ndim >= 3 and x.size:
        m = compiled.channel_moments(x.reshape(b * c, -1), x.shape[-1]).reshape(b, c, 3)
        mean, std, steps = m[..., 0], m[..., 1], m[..., 2]
    else:
        flat = x.reshape(b, c, -1)
        with np.errstate(all="ignore"):
            mean = flat.mean(axis=-1).astype(np.float64)
            std = flat.std(axis=-1).astype(np.float64)
            steps = np.abs(np.diff(x, axis=-1)).reshape(b, c, -1).mean(axis=-1).astype(np.float64)
    with np.errstate(all="ignore"):
        return np.stack([mean, np.log10(std), np.log10(steps / std)], axis=-1)


def fit_distribution(features: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Robust per-channel statistics of training features (N, C, F) -> (center, scale), each float64 (C, F).

    Flat channels (std below 1e-6) are left out of the fit; a channel flat in every row gets center 0 and an
    infinite scale (null in the manifest's JSON): it is never judged.
    """
    f = np.array(features, dtype=np.float64)
    f[~(f[..., 1] >= math.log10(_FLAT))] = np.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: channels flat in every training row
        center = np.nanmedian(f, axis=0)  # (C, F)
        scale = _MAD_TO_SIGMA * np.nanmedian(np.abs(f - center), axis=0)
    scale[:, 0] = np.maximum(scale[:, 0], _LEVEL_FLOOR * 10.0 ** center[:, 1])
    scale[:, 1:] = np.maximum(scale[:, 1:], _SPREAD_FLOOR)
    never = np.isnan(center).any(axis=1)
    center[never], scale[never] = 0.0, np.inf
    return center, scale


def distribution_scores(x: npt.ArrayLike, center: np.ndarray, scale: np.ndarray,
                        fast: bool = False) -> npt.NDArray[np.float64]:
    """Distribution score of each sample of a preprocessed batch (B, C, ...): float64 (B,).

    The median, over the sample's non-flat channels, of the largest robust z-score of the channel's features
    (`center`, `scale`: float64 (C, 3) from `fit_distribution`; channels with an infinite scale are never
    judged). 0 when no channel is judged.
    """
    return scores_of_features(channel_features(x, fast), center, scale)


def scores_of_features(f: np.ndarray, center: np.ndarray, scale: np.ndarray) -> npt.NDArray[np.float64]:
    """`distribution_scores` from `channel_features` already computed: (B, C, 3) -> (B,)."""
    live = np.isfinite(f[..., 1]) & (f[..., 1] >= math.log10(_FLAT)) & np.isfinite(scale[:, 0])
    with np.errstate(all="ignore"):
        z = np.where(live, (np.abs(f - center) / scale).max(axis=-1), np.nan)  # (B, C)
    z[~np.isfinite(z) & live] = np.inf  # a feature overflowing to inf/NaN is as far as it gets
    return np.nan_to_num(_nanmedian_rows(z), nan=0.0)


def _nanmedian_rows(z: np.ndarray) -> npt.NDArray[np.float64]:
    """``np.nanmedian(z, axis=1)`` of a small (B, C) array (NaN for an all-NaN row), sorting once instead of
    numpy's masked-array path, which costs ~0.3 ms per call at B=1."""
    ordered = np.sort(z, axis=1)  # NaN sorts last
    count = (~np.isnan(z)).sum(axis=1)
    rows = np.arange(len(z))
    lo, hi = ordered[rows, np.maximum(count - 1, 0) // 2], ordered[rows, count // 2 - (count == 0)]
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, (lo + hi) / 2, np.nan)


def check_distribution(
    modality: str, x: npt.ArrayLike, center: np.ndarray, scale: np.ndarray, threshold: float, fast: bool = False
) -> tuple[npt.NDArray[np.bool_], list[str | None], npt.NDArray[np.float64]]:
    """The distribution check on a preprocessed batch (B, C, ...).

    Returns:
        (implausible bool (B,), reason per sample or None, scores float64 (B,)).
    """
    scores = distribution_scores(x, center, scale, fast)
    bad = ~(scores <= threshold)
    unit = {"mmwave": "frames", "wifi": "channels", "rfid": "tags"}[modality]
    reasons: list[str | None] = [None] * len(bad)
    for i in np.flatnonzero(bad):
        reasons[i] = (f"{modality}: distribution score {scores[i]:.3g} above {threshold:.3g} (median robust distance "
                      f"of its {unit}' level, spread and roughness to the training split's): wrong scale, noise, or "
                      "not this sensor")
    return bad, reasons, scores


# ------------------------------------------------------------------------------------- OOD score


@dataclass
class OodFit:
    """Class means and the whitening of one modality's pooled embeddings.

    means: float64 (K, d), the K classes seen in training; whiten: float64 (d, d) with
    (z - mu) @ whiten @ whiten.T @ (z - mu).T the squared Mahalanobis distance; shrinkage: the Ledoit-Wolf
    weight of the identity target.
    """

    means: np.ndarray
    whiten: np.ndarray
    shrinkage: float
    n_rows: int


def _ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Shrunk covariance of centred rows x (N, d): (1 - s) S + s (tr S / d) I with Ledoit-Wolf's s."""
    n, d = x.shape
    x2 = x**2
    emp = x.T @ x / n
    trace = x2.sum(axis=0) / n
    mu = trace.sum() / d
    beta_ = float((x2.T @ x2).sum())
    delta_ = float((emp**2).sum())
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * trace.sum() + d * mu**2) / d
    s = 0.0 if delta <= 0 else min(max(beta, 0.0), delta) / delta
    return (1.0 - s) * emp + s * mu * np.eye(d), s


def fit_ood(z: npt.ArrayLike, labels: npt.ArrayLike) -> OodFit:
    """Class means and shared (within-class) covariance of embeddings z (N, d) with integer labels (N,).

    Raises:
        ValueError: fewer than 2 rows, or z not finite.
    """
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels)
    if len(z) < 2 or not np.isfinite(z).all():
        raise ValueError(f"OOD fit needs at least 2 finite embeddings; got {len(z)}")
    classes, inverse = np.unique(labels, return_inverse=True)
    means = np.stack([z[inverse == k].mean(axis=0) for k in range(len(classes))])
    cov, s = _ledoit_wolf(z - means[inverse])
    # Cholesky of the precision: cov^-1 = L L^T, so d^2 = |(z - mu) L|^2.
    evals, evecs = np.linalg.eigh(cov)
    floor = max(float(evals.max()), 1e-12) * 1e-9  # keeps an ill-conditioned covariance invertible
    whiten = evecs / np.sqrt(np.maximum(evals, floor))  # (d, d): cov^-1 = W W^T
    return OodFit(means=means, whiten=whiten, shrinkage=s, n_rows=len(z))


def ood_scores(z: npt.ArrayLike, fit: OodFit) -> npt.NDArray[np.float64]:
    """Mahalanobis distance of each embedding (B, d) to the nearest class mean: float64 (B,).

    The numpy reference of what the encoder graphs compute in float32.
    """
    u = np.asarray(z, dtype=np.float64) @ fit.whiten
    nu = fit.means @ fit.whiten
    d2 = ((u[:, None, :] - nu[None]) ** 2).sum(axis=-1)
    return np.sqrt(d2.min(axis=1))


def loo_scores(z: npt.ArrayLike, labels: npt.ArrayLike, fit: OodFit) -> npt.NDArray[np.float64]:
    """Leave-one-out scores of the rows `fit` was fitted on: each row's own class mean without the row.

    Stand-in for held-out scores when there is no validation slice (in-sample distances are too small).
    Without its own row a class mean of n rows moves to (n mu - z) / (n - 1), which scales the row's distance
    to it by n / (n - 1); a class of one row leaves only the other classes (inf when there are none).
    """
    u = np.asarray(z, dtype=np.float64) @ fit.whiten
    nu = fit.means @ fit.whiten
    d2 = ((u[:, None, :] - nu[None]) ** 2).sum(axis=-1)  # (N, K), classes in np.unique order as in fit_ood
    classes, own, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    assert len(classes) == len(nu), "labels must be the ones fit_ood saw"
    n = counts[own].astype(np.float64)
    rows = np.arange(len(u))
    d2[rows, own] = np.where(n > 1, d2[rows, own] * (n / np.maximum(n - 1, 1)) ** 2, np.inf)
    return np.sqrt(d2.min(axis=1))


def threshold_of(scores: npt.ArrayLike, cfg: PlausibilityConfig) -> float:
    """The alarm threshold from held-out in-distribution scores: quantile times margin."""
    s = np.asarray(scores, dtype=np.float64)
    return float(np.quantile(s, cfg.quantile) * cfg.margin)


# ----------------------------------------------------------------------------- in the manifest


@dataclass
class Plausibility:
    """The plausibility section of an rfsense-onnx/2 manifest, parsed for the runtime.

    config: the settings (switches may be changed before predict()); distribution[m]: (center, scale float64
    (C, 3), threshold) or absent; ood_threshold[m]: float or absent (too few rows to set one at export).
    """

    config: PlausibilityConfig
    distribution: dict[str, tuple[np.ndarray, np.ndarray, float]]
    ood_threshold: dict[str, float]


def read_plausibility(section: Any, where: str) -> Plausibility:
    """Validate the manifest's ``plausibility`` object.

    Raises:
        ModelFileError: naming `where` and the key that is malformed.
    """

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"manifest {where}: plausibility.{what}")

    if not isinstance(section, dict):
        raise ModelFileError(f"manifest {where}: plausibility must be an object; got {type(section).__name__}")
    try:
        cfg = from_data(PlausibilityConfig, section.get("config", {}), "plausibility.config")
    except ConfigError as err:
        raise ModelFileError(f"manifest {where}: {err}") from None
    dist: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for m, entry in (section.get("distribution") or {}).items():
        if m not in MODALITIES or not isinstance(entry, dict):
            raise bad(f"distribution.{m}: expected one object per modality ({', '.join(MODALITIES)})")
        t = _threshold(entry, f"distribution.{m}", bad)
        if t is None:
            continue  # too few rows to set one at export: no distribution check for this modality
        try:
            arrs = [np.array([[np.inf if v is None else v for v in row] for row in entry[k]], dtype=np.float64)
                    for k in ("center", "scale")]
        except (KeyError, TypeError, ValueError):
            raise bad(f"distribution.{m}: expected center and scale, lists of [{', '.join(FEATURES)}] per channel") from None
        want = (SHAPES[m][0], len(FEATURES))
        if any(a.shape != want for a in arrs):
            raise bad(f"distribution.{m}: center/scale have shapes {[a.shape for a in arrs]}; expected {want}")
        dist[m] = (np.nan_to_num(arrs[0], posinf=0.0), arrs[1], t)
    thresholds: dict[str, float] = {}
    for m, entry in (section.get("ood") or {}).items():
        if m not in MODALITIES or not isinstance(entry, dict):
            raise bad(f"ood.{m}: expected one object per modality ({', '.join(MODALITIES)})")
        t = _threshold(entry, f"ood.{m}", bad)
        if t is not None:
            thresholds[m] = t
    return Plausibility(cfg, dist, thresholds)


def _threshold(entry: dict[str, Any], where: str, bad: Any) -> float | None:
    t = entry.get("threshold")
    if t is None:
        return None
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0:
        raise bad(f"{where}.threshold must be a positive number or null; got {t!r}")
    return float(t)
