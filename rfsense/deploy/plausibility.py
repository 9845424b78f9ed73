"""Plausibility of preprocessed streams: the checks a model's training data sets (numpy only, no torch).

The physical checks on raw values are part of the quality rule (`rfsense.data.quality`, check 0). These two
come from the pack's training split, are fitted at export and stored in the manifest (rfsense-onnx/2), and
run in the runtime after preprocessing; a stream that fails either becomes ``implausible`` (masked):

- distribution: per channel (WiFi link, RFID tag, mmWave frame) two features of the preprocessed stream,
  its level (mean) and its spread (log10 std over the rest of the sample), against robust statistics of the
  training split (median, 1.4826 MAD). A channel is out when a feature lies more than ``channel_sigmas``
  robust stds from the training median; the stream is implausible when more than ``max_out_fraction`` of
  its non-flat channels are out (flat channels, e.g. a missing receiver, are the health check's business).
  Catches wrong scales, white noise and streams of another sensor, whatever the model makes of them.
- out of distribution: the Mahalanobis distance of the modality's pooled embedding to the nearest class
  mean (class means and one shared covariance, Ledoit-Wolf shrunk, fitted on the training rows; Lee et al.
  2018), computed inside each ONNX encoder graph as its ``ood`` output so the runtime stays torch-free.
  The threshold is the ``ood_quantile`` of the scores on the validation slice (the rows training held out),
  times ``ood_margin``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rfsense.config import Fraction, PositiveFloat, PositiveInt, StrictBool, from_data, schema, to_data
from rfsense.errors import ConfigError, ModelFileError
from rfsense.modalities import MODALITIES, SHAPES

__all__ = [
    "OodFit",
    "Plausibility",
    "PlausibilityConfig",
    "channel_features",
    "check_distribution",
    "fit_distribution",
    "fit_ood",
    "ood_scores",
    "ood_threshold",
    "read_plausibility",
]

_MAD_TO_SIGMA = 1.4826
# A preprocessed channel with a std below this carries nothing (dead receiver, lost tag): not judged here.
_FLAT = 1e-6
# Floors of the robust scales, so a feature that hardly varies over the training split (e.g. RFID levels,
# which offset removal pins near 0) does not turn every small difference into an alarm: levels in units of
# the channel's typical std, spreads in log10 units (0.05 = 12 %).
_LEVEL_FLOOR, _SPREAD_FLOOR = 0.25, 0.05


@schema
class PlausibilityConfig:
    """Settings of the plausibility checks after preprocessing; in the manifest (plausibility.config).

    The runtime reads the switches and the distribution limits; the OOD quantile and margin set each
    modality's threshold at export (the threshold itself is stored beside them).
    """

    distribution: StrictBool = True  # check per-channel statistics against the training split
    ood: StrictBool = True  # check the out-of-distribution score against its threshold
    # A channel is out of range beyond this many robust stds of the training split (per feature).
    channel_sigmas: PositiveFloat = 8.0
    # The stream is implausible when more than this fraction of its non-flat channels is out of range.
    max_out_fraction: Fraction = 0.5
    # The OOD threshold: this quantile of the validation slice's scores, times the margin (> 1 leaves room
    # for the sampling error of a high quantile on a few hundred rows).
    ood_quantile: Fraction = 0.995
    ood_margin: PositiveFloat = 1.25
    # Rows per modality the statistics are fitted on and thresholds set on (a seeded subset beyond it).
    max_rows: PositiveInt = 2048


# ------------------------------------------------------------------------------------ distribution


def channel_features(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Per-channel (axis 1) level and spread of a preprocessed batch.

    Args:
        x: (B, C, ...) float array (preprocessed: wifi (B, 270, 1000), rfid (B, 23, 148), mmwave (B, 17, 256, 128)).

    Returns:
        float64 (B, C, 2): mean and log10(std) over the channel's other axes (-inf for a flat channel).
    """
    x = np.asarray(x)
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    with np.errstate(all="ignore"):
        mean = flat.mean(axis=-1)
        std = flat.std(axis=-1)
        return np.stack([mean.astype(np.float64), np.log10(std.astype(np.float64))], axis=-1)


def fit_distribution(features: npt.ArrayLike) -> dict[str, list[list[float]]]:
    """Robust per-channel statistics of training features (N, C, 2) -> {"center", "scale"}, each (C, 2).

    Flat channels (std below 1e-6) are left out of the fit; a channel flat in every row gets center 0 and an
    infinite scale (null in JSON): it is never judged.
    """
    f = np.array(features, dtype=np.float64)
    f[~(f[..., 1] >= math.log10(_FLAT))] = np.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: channels flat in every training row
        center = np.nanmedian(f, axis=0)  # (C, 2)
        scale = _MAD_TO_SIGMA * np.nanmedian(np.abs(f - center), axis=0)
    scale[:, 0] = np.maximum(scale[:, 0], _LEVEL_FLOOR * 10.0 ** center[:, 1])
    scale[:, 1] = np.maximum(scale[:, 1], _SPREAD_FLOOR)
    never = np.isnan(center).any(axis=1)
    center[never], scale[never] = 0.0, np.inf
    return {"center": to_data(center), "scale": to_data(scale)}


def check_distribution(
    modality: str, x: npt.ArrayLike, center: np.ndarray, scale: np.ndarray, cfg: PlausibilityConfig
) -> tuple[npt.NDArray[np.bool_], list[str | None]]:
    """The distribution check on a preprocessed batch (B, C, ...).

    Args:
        center, scale: float64 (C, 2) from `fit_distribution` (scale inf: channel never judged).

    Returns:
        (implausible bool (B,), reason per sample or None).
    """
    f = channel_features(x)  # (B, C, 2)
    live = np.isfinite(f[..., 1]) & (f[..., 1] >= math.log10(_FLAT)) & np.isfinite(scale[:, 0])
    with np.errstate(all="ignore"):
        out = ((np.abs(f - center) / scale) > cfg.channel_sigmas).any(axis=-1) & live
    n_live = live.sum(axis=1)
    n_out = out.sum(axis=1)
    frac = n_out / np.maximum(n_live, 1)
    bad = frac > cfg.max_out_fraction
    reasons: list[str | None] = [None] * len(bad)
    unit = {"mmwave": "frames", "wifi": "channels", "rfid": "tags"}[modality]
    for i in np.flatnonzero(bad):
        lv = np.abs(f[i, :, 0] - center[:, 0]) / scale[:, 0] > cfg.channel_sigmas
        what = "level" if (lv & live[i]).sum() * 2 >= n_out[i] else "spread"
        reasons[i] = (f"{modality}: {n_out[i]}/{n_live[i]} {unit} outside the training distribution (mostly their "
                      f"{what}: more than {cfg.channel_sigmas:g} robust stds from the training split; limit "
                      f"{100 * cfg.max_out_fraction:.0f}%): wrong scale, noise, or not this sensor")
    return bad, reasons


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


def ood_threshold(scores: npt.ArrayLike, cfg: PlausibilityConfig) -> float:
    """The alarm threshold from held-out in-distribution scores: quantile times margin."""
    s = np.asarray(scores, dtype=np.float64)
    return float(np.quantile(s, cfg.ood_quantile) * cfg.ood_margin)


# ----------------------------------------------------------------------------- in the manifest


@dataclass
class Plausibility:
    """The plausibility section of an rfsense-onnx/2 manifest, parsed for the runtime.

    config: the settings (switches may be changed before predict()); distribution[m]: (center, scale) float64
    (C, 2) or absent; ood_threshold[m]: float or absent (a modality training had no usable rows of).
    """

    config: PlausibilityConfig
    distribution: dict[str, tuple[np.ndarray, np.ndarray]]
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
    dist: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for m, entry in (section.get("distribution") or {}).items():
        if m not in MODALITIES or not isinstance(entry, dict):
            raise bad(f"distribution.{m}: expected one object per modality ({', '.join(MODALITIES)})")
        try:
            arrs = [np.array([[np.inf if v is None else v for v in row] for row in entry[k]], dtype=np.float64)
                    for k in ("center", "scale")]
        except (KeyError, TypeError, ValueError):
            raise bad(f"distribution.{m}: expected center and scale, lists of [level, spread] pairs") from None
        want = (SHAPES[m][0], 2)
        if any(a.shape != want for a in arrs):
            raise bad(f"distribution.{m}: center/scale have shapes {[a.shape for a in arrs]}; expected {want}")
        dist[m] = (np.nan_to_num(arrs[0], posinf=0.0), arrs[1])
    thresholds: dict[str, float] = {}
    for m, entry in (section.get("ood") or {}).items():
        t = entry.get("threshold") if isinstance(entry, dict) else None
        if m not in MODALITIES or not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0:
            raise bad(f"ood.{m}.threshold must be a positive number; got {t!r}")
        thresholds[m] = float(t)
    return Plausibility(cfg, dist, thresholds)
