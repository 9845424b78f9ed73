"""The plausibility statistics: the OOD fit and score, the per-channel distribution check, the manifest section."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rfsense.config import to_data
from rfsense.deploy.plausibility import (
    PlausibilityConfig,
    channel_features,
    check_distribution,
    distribution_scores,
    fit_distribution,
    fit_ood,
    loo_scores,
    ood_scores,
    read_plausibility,
    threshold_of,
)
from rfsense.errors import ModelFileError


def _clusters(n_per: int = 60, d: int = 16, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (k, d))
    labels = np.repeat(np.arange(k), n_per)
    mix = rng.normal(size=(d, d)) / math.sqrt(d)
    return centres[labels] + rng.normal(size=(len(labels), d)) @ mix, labels


def test_ood_score_is_the_mahalanobis_distance_to_the_nearest_class_mean():
    z, y = _clusters()
    fit = fit_ood(z, y)
    means = np.stack([z[y == k].mean(axis=0) for k in range(4)])
    np.testing.assert_allclose(fit.means, means)
    cov = np.linalg.inv(fit.whiten @ fit.whiten.T)  # what the whitening encodes
    resid = z - means[y]
    emp = resid.T @ resid / len(z)
    target = np.trace(emp) / emp.shape[0] * np.eye(emp.shape[0])
    np.testing.assert_allclose(cov, (1 - fit.shrinkage) * emp + fit.shrinkage * target, rtol=1e-8, atol=1e-10)
    assert 0.0 <= fit.shrinkage <= 1.0
    probe = np.random.default_rng(1).normal(0, 3, (9, z.shape[1]))
    prec = np.linalg.inv(cov)
    brute = np.sqrt(np.min([np.einsum("bi,ij,bj->b", probe - m, prec, probe - m) for m in means], axis=0))
    np.testing.assert_allclose(ood_scores(probe, fit), brute, rtol=1e-9)
    assert ood_scores(means[2:3], fit)[0] == pytest.approx(0.0, abs=1e-9)


def test_ood_scores_separate_in_and_out_of_distribution_rows():
    z, y = _clusters(seed=2)
    fit = fit_ood(z[::2], y[::2])
    held_out = ood_scores(z[1::2], fit)
    threshold = threshold_of(held_out, PlausibilityConfig())
    assert threshold == pytest.approx(np.quantile(held_out, 0.995) * 1.25)
    far = ood_scores(np.random.default_rng(3).normal(0, 30, (50, z.shape[1])), fit)
    assert (far > threshold).mean() > 0.9
    assert (ood_scores(z[::2], fit) <= threshold).all()


def test_leave_one_out_scores_refit_the_own_class_mean_without_the_row():
    z, y = _clusters(n_per=5, seed=4)
    y = y.copy()
    y[0] = 7  # a class of one row: only the other classes remain for it
    fit = fit_ood(z, y)
    got = loo_scores(z, y, fit)
    prec = fit.whiten @ fit.whiten.T
    for i in (0, 1, 6, 19):
        others = np.arange(len(z)) != i
        means = [z[others & (y == c)].mean(axis=0) for c in np.unique(y) if (others & (y == c)).any()]
        want = min(math.sqrt((z[i] - mu) @ prec @ (z[i] - mu)) for mu in means)
        assert got[i] == pytest.approx(want, rel=1e-9)
    assert (got >= ood_scores(z, fit) - 1e-12).all()  # a row is never closer to a mean it did not shape


def test_ood_fit_needs_rows():
    with pytest.raises(ValueError, match="at least 2"):
        fit_ood(np.zeros((1, 4)), np.zeros(1))


def _batch(n: int, seed: int) -> np.ndarray:
    """(n, 6, 200) channels with their own levels and spreads; channel 5 is flat (a dead receiver)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 6, 200)) * np.array([1, 2, 0.5, 1, 3, 0])[None, :, None]
    return x + np.array([10, 20, 5, -3, 0, 7])[None, :, None]


def test_channel_features_are_level_spread_and_roughness():
    x = _batch(3, 0)
    f = channel_features(x)
    assert f.shape == (3, 6, 3)
    np.testing.assert_allclose(f[..., 0], x.mean(axis=-1))
    np.testing.assert_allclose(f[:, :5, 1], np.log10(x[:, :5].std(axis=-1)))
    np.testing.assert_allclose(f[:, :5, 2], np.log10(np.abs(np.diff(x[:, :5], axis=-1)).mean(axis=-1) / x[:, :5].std(axis=-1)))
    assert np.isneginf(f[:, 5, 1]).all()
    smooth = np.sin(np.linspace(0, 6, 200))[None, None]  # a slow wave is smooth, noise of its std is rough
    noise = np.random.default_rng(0).normal(0, smooth.std(), (1, 1, 200))
    assert channel_features(smooth)[0, 0, 2] < channel_features(noise)[0, 0, 2] - 1.0


def test_distribution_score_is_the_median_channel_distance_and_flags_shifts():
    center, scale = fit_distribution(channel_features(_batch(200, 0)))
    assert np.isinf(scale[5]).all() and (center[5] == 0).all()  # flat in every row: never judged
    clean = distribution_scores(_batch(300, 1), center, scale)
    threshold = threshold_of(clean, PlausibilityConfig())
    f = channel_features(_batch(1, 9))
    z = (np.abs(f[:, :5] - center[:5]) / scale[:5]).max(axis=-1)[0]  # 5 judged channels, 3 features each
    assert distribution_scores(_batch(1, 9), center, scale)[0] == pytest.approx(np.median(z))
    loud = _batch(2, 2) * 1000.0  # wrong scale
    noisy = _batch(2, 3) + np.random.default_rng(4).normal(0, 30, (2, 6, 200))  # white noise
    bad, why, scores = check_distribution("wifi", np.concatenate([_batch(2, 7), loud, noisy]), center, scale, threshold)
    assert bad.tolist() == [False, False, True, True, True, True] and why[:2] == [None, None]
    assert why[2] == (f"wifi: distribution score {scores[2]:.3g} above {threshold:.3g} (median robust distance of its "
                      "channels' level, spread and roughness to the training split's): wrong scale, noise, or not this "
                      "sensor")
    two = _batch(1, 5)
    two[0, :2] *= 1000  # two odd channels of five: the median does not move
    assert not check_distribution("wifi", two, center, scale, threshold)[0][0]
    flat = np.full((1, 6, 200), 3.0)  # nothing judged: the health check's business
    assert distribution_scores(flat, center, scale)[0] == 0.0


def test_manifest_section_round_trip_and_errors():
    center, scale = fit_distribution(channel_features(np.random.default_rng(0).normal(5, 1, (20, 23, 148))))
    stats = {"center": to_data(center), "scale": to_data(scale), "threshold": 2.5}
    assert center.shape == (23, 3)
    section = json.loads(json.dumps({"config": to_data(PlausibilityConfig(margin=1.5)),
                                     "distribution": {"rfid": stats},
                                     "ood": {"rfid": {"threshold": 12.5, "rows": 9, "split": "validation"}}},
                                    allow_nan=False))
    p = read_plausibility(section, "m.json")
    assert p.config.margin == 1.5 and p.ood_threshold == {"rfid": 12.5} and set(p.distribution) == {"rfid"}
    assert p.distribution["rfid"][0].shape == (23, 3) and p.distribution["rfid"][2] == 2.5
    with pytest.raises(ModelFileError, match=r"plausibility.distribution.rfid: center/scale have shapes"):
        read_plausibility({**section, "distribution": {"rfid": {"center": [[0, 0, 0]], "scale": [[1, 1, 1]],
                                                                        "threshold": 1}}}, "m.json")
    with pytest.raises(ModelFileError, match=r"plausibility.distribution.radar"):
        read_plausibility({**section, "distribution": {"radar": stats}}, "m.json")
    with pytest.raises(ModelFileError, match=r"plausibility.ood.rfid.threshold must be a positive number"):
        read_plausibility({**section, "ood": {"rfid": {"threshold": "high"}}}, "m.json")
    none = read_plausibility({**section, "ood": {"rfid": {"threshold": None, "note": "too few rows"}}}, "m.json")
    assert none.ood_threshold == {}  # set at export as none: no check
