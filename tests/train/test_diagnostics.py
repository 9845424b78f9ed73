"""Geometry diagnostics (DAGR §4.3, Eq. 14) on embeddings with known answers."""

from __future__ import annotations

import json
import math
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfsense.modalities import MODALITIES
from rfsense.train.diagnostics import geometry_diagnostics

PAIR_KEYS = ["mmwave-wifi", "mmwave-rfid", "wifi-rfid"]


def _same_everywhere(x: np.ndarray) -> np.ndarray:
    """(N, d) -> (N, 3, d): the same embedding for every modality."""
    return np.repeat(x[:, None, :], 3, axis=1)


def _clustered(n: int, n_classes: int, d: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    centres = np.eye(d)[:n_classes] * 5.0
    return centres[labels] + noise * rng.normal(size=(n, d)), labels


def _brute_margin(x: np.ndarray, labels: np.ndarray) -> float:
    """Eq. 14 Δsem written out literally: macro mean over class pairs and classes, i≠j."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist = np.linalg.norm(x[:, None] - x[None], axis=2)
    classes = np.unique(labels)
    inter = [dist[np.ix_(labels == a, labels == b)].mean() for a in classes for b in classes if a != b]
    intra = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if idx.size >= 2:
            block = dist[np.ix_(idx, idx)]
            intra.append(block[~np.eye(idx.size, dtype=bool)].mean())
    return float(np.mean(inter) - np.mean(intra))


def _brute_rank(x: np.ndarray) -> float:
    """Eq. 14 r_eff written out: entropy of the normalised eigenvalues of np.cov."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    lam = np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False)), 0, None)
    p = lam[lam > 1e-15] / lam.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


# --------------------------------------------------------------------------- semantic margin


def test_margin_exact_on_two_points_per_class() -> None:
    # Class 0 sits at e1, class 1 at e2: intra distance 0, inter distance √2.
    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.5]])
    geo = geometry_diagnostics(_same_everywhere(x), np.ones((4, 3), bool), np.array([0, 0, 1, 1]))
    for mod in MODALITIES:
        assert geo["semantic_margin_per_modality"][mod] == pytest.approx(math.sqrt(2))
    assert geo["semantic_margin"] == pytest.approx(math.sqrt(2))


def test_separated_classes_give_a_large_positive_margin() -> None:
    x, labels = _clustered(300, 5, 16, noise=0.3)
    geo = geometry_diagnostics(_same_everywhere(x), np.ones((300, 3), bool), labels)
    assert geo["semantic_margin"] > 1.0


def test_collapsed_classes_give_about_zero_margin() -> None:
    # Labels independent of the embedding: inter- and intra-class distances agree.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 16))
    labels = rng.integers(0, 5, 1000)
    geo = geometry_diagnostics(_same_everywhere(x), np.ones((1000, 3), bool), labels)
    assert abs(geo["semantic_margin"]) < 0.02


def test_identical_embeddings_give_zero_margin() -> None:
    x = np.ones((40, 8))
    geo = geometry_diagnostics(_same_everywhere(x), np.ones((40, 3), bool), np.arange(40) % 4)
    assert geo["semantic_margin"] == pytest.approx(0.0, abs=1e-6)


def test_margin_matches_the_literal_formula() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(90, 6)) + np.repeat(rng.normal(size=(4, 6)), [10, 20, 30, 30], axis=0)
    labels = np.repeat([3, 7, 11, 50], [10, 20, 30, 30])  # uneven classes, non-contiguous ids
    geo = geometry_diagnostics(_same_everywhere(x), np.ones((90, 3), bool), labels)
    assert geo["semantic_margin"] == pytest.approx(_brute_margin(x, labels), rel=1e-9)


def test_margin_subsample_is_deterministic_and_close() -> None:
    x, labels = _clustered(1200, 4, 12, noise=1.5, seed=3)
    z, present = _same_everywhere(x), np.ones((1200, 3), bool)
    exact = geometry_diagnostics(z, present, labels, max_per_class=10_000)["semantic_margin"]
    first = geometry_diagnostics(z, present, labels, max_per_class=100)["semantic_margin"]
    again = geometry_diagnostics(z, present, labels, max_per_class=100)["semantic_margin"]
    assert first == again
    assert first == pytest.approx(exact, rel=0.05)


def test_margin_none_when_undefined() -> None:
    x = np.random.default_rng(4).normal(size=(6, 4))
    present = np.ones((6, 3), bool)
    one_class = geometry_diagnostics(_same_everywhere(x), present, np.zeros(6, int))
    assert one_class["semantic_margin"] is None
    singletons = geometry_diagnostics(_same_everywhere(x), present, np.arange(6))  # no intra pair
    assert singletons["semantic_margin"] is None


# --------------------------------------------------------------------------- effective rank


def test_isotropic_gaussian_has_rank_close_to_d() -> None:
    d = 16
    x = np.random.default_rng(5).normal(size=(8000, d))
    ranks = geometry_diagnostics(_same_everywhere(x), np.ones((8000, 3), bool), np.zeros(8000, int))[
        "effective_rank"
    ]
    for mod in MODALITIES:
        assert d - 0.2 < ranks[mod] <= d


def test_rank_one_data_has_rank_one() -> None:
    rng = np.random.default_rng(6)
    u = rng.normal(size=32)
    x = (rng.choice([-1.0, 1.0], size=200) * rng.uniform(0.1, 3.0, size=200))[:, None] * u
    rank = geometry_diagnostics(_same_everywhere(x), np.ones((200, 3), bool), np.zeros(200, int))[
        "effective_rank"
    ]["wifi"]
    assert rank == pytest.approx(1.0, abs=1e-6)


def test_k_signed_axes_have_rank_k() -> None:
    # ±e_j with j uniform over k axes and random signs: covariance ≈ I_k / k, r_eff ≈ k.
    rng = np.random.default_rng(7)
    k, n = 5, 20_000
    x = np.zeros((n, 12))
    x[np.arange(n), rng.integers(0, k, n)] = rng.choice([-1.0, 1.0], n)
    rank = geometry_diagnostics(_same_everywhere(x), np.ones((n, 3), bool), np.zeros(n, int))[
        "effective_rank"
    ]["rfid"]
    assert rank == pytest.approx(k, abs=0.01)


@pytest.mark.parametrize("n", [5, 200])  # fewer samples than dimensions, and more
def test_rank_matches_the_literal_formula(n: int) -> None:
    x = np.random.default_rng(8).normal(size=(n, 32)) * np.linspace(0.2, 3.0, 32)
    rank = geometry_diagnostics(_same_everywhere(x), np.ones((n, 3), bool), np.zeros(n, int))[
        "effective_rank"
    ]["mmwave"]
    assert rank == pytest.approx(_brute_rank(x), rel=1e-9)


def test_identical_embeddings_have_rank_zero() -> None:
    x = np.tile([1.0, 2.0, 3.0], (50, 1))
    ranks = geometry_diagnostics(_same_everywhere(x), np.ones((50, 3), bool), np.zeros(50, int))[
        "effective_rank"
    ]
    assert ranks == {mod: 0.0 for mod in MODALITIES}


# --------------------------------------------------------------------------- drift and tau


def test_identical_modalities_have_no_drift() -> None:
    x = np.random.default_rng(9).normal(size=(30, 8))
    z = _same_everywhere(x) * np.array([1.0, 2.0, 0.5])[None, :, None]  # scale does not matter
    geo = geometry_diagnostics(z, np.ones((30, 3), bool), np.arange(30) % 3, tau=0.0)
    assert geo["drift"] == 0.0 and geo["outside_tau"] == 0.0 and geo["excess_drift"] == 0.0
    for key in PAIR_KEYS:
        assert geo["drift_per_pair"][key] == 0.0
        assert geo["outside_tau_per_pair"][key] == 0.0


@pytest.mark.parametrize("tau", [0.0, 0.25, 1.0])
def test_orthogonal_modalities_sit_at_root_two(tau: float) -> None:
    n = 12
    z = np.zeros((n, 3, 3))
    z[:, 0, 0], z[:, 1, 1], z[:, 2, 2] = 1.0, 7.0, 0.1  # distance √2 after normalisation
    geo = geometry_diagnostics(z, np.ones((n, 3), bool), np.arange(n) % 2, tau=tau)
    assert geo["drift"] == pytest.approx(2.0)
    assert geo["outside_tau"] == 1.0
    assert geo["excess_drift"] == pytest.approx((math.sqrt(2) - tau) ** 2)
    for key in PAIR_KEYS:
        assert geo["drift_per_pair"][key] == pytest.approx(2.0)
        assert geo["outside_tau_per_pair"][key] == 1.0


def test_outside_tau_counts_the_fraction_of_pairs_beyond_the_band() -> None:
    # mmwave and wifi at angle θ, distance 2 sin(θ/2) = 0.10, 0.20, 0.30, 0.87, 1.13; rfid absent.
    angles = np.array([0.1, 0.2, 0.3, 0.9, 1.2])
    z = np.zeros((5, 3, 2))
    z[:, 0, 0] = 1.0
    z[:, 1] = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    present = np.array([[True, True, False]] * 5)
    geo = geometry_diagnostics(z, present, np.zeros(5, int), tau=0.25)
    dist = 2 * np.sin(angles / 2)
    assert geo["outside_tau"] == pytest.approx(np.mean(dist > 0.25)) == pytest.approx(0.6)
    assert geo["drift"] == pytest.approx(np.mean(dist**2))
    assert geo["n_pairs"] == {"mmwave-wifi": 5, "mmwave-rfid": 0, "wifi-rfid": 0}
    assert geo["drift_per_pair"]["wifi-rfid"] is None
    assert geo["outside_tau_per_pair"]["mmwave-rfid"] is None


def test_overall_drift_pools_every_present_pair() -> None:
    rng = np.random.default_rng(10)
    z = rng.normal(size=(40, 3, 6))
    present = rng.random((40, 3)) > 0.3
    geo = geometry_diagnostics(z, present, np.arange(40) % 4)
    u = z / np.linalg.norm(z, axis=2, keepdims=True)
    dists = [
        np.linalg.norm(u[i, m] - u[i, n])
        for i in range(40)
        for m, n in combinations(range(3), 2)
        if present[i, m] and present[i, n]
    ]
    assert geo["drift"] == pytest.approx(np.mean(np.square(dists)))
    assert geo["outside_tau"] == pytest.approx(np.mean(np.array(dists) > 0.25))
    assert sum(geo["n_pairs"].values()) == len(dists)


# --------------------------------------------------------------------------- presence and robustness


def _partial(seed: int = 11) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(120, 3, 10))
    present = rng.random((120, 3)) > 0.35
    labels = rng.integers(0, 6, 120)
    return z, present, labels


@pytest.mark.parametrize("garbage", [np.nan, np.inf, 1e30, 0.0])
def test_absent_slots_do_not_matter(garbage: float) -> None:
    z, present, labels = _partial()
    reference = geometry_diagnostics(z, present, labels)
    dirty = z.copy()
    dirty[~present] = garbage
    assert geometry_diagnostics(dirty, present, labels) == reference


def test_per_modality_values_use_only_that_modalitys_present_samples() -> None:
    z, present, labels = _partial()
    geo = geometry_diagnostics(z, present, labels)
    for m, mod in enumerate(MODALITIES):
        rows = present[:, m]
        assert geo["n_present"][mod] == int(rows.sum())
        assert geo["effective_rank"][mod] == pytest.approx(_brute_rank(z[rows, m]), rel=1e-9)
        assert geo["semantic_margin_per_modality"][mod] == pytest.approx(
            _brute_margin(z[rows, m], labels[rows]), rel=1e-9
        )


def test_a_modality_with_fewer_than_two_samples_is_none() -> None:
    z, present, labels = _partial()
    present[:, 2] = False
    present[0, 2] = True
    geo = geometry_diagnostics(z, present, labels)
    assert geo["effective_rank"]["rfid"] is None
    assert geo["semantic_margin_per_modality"]["rfid"] is None
    assert geo["effective_rank"]["mmwave"] is not None
    # The overall margin averages the modalities where it is defined.
    defined = [geo["semantic_margin_per_modality"][m] for m in ("mmwave", "wifi")]
    assert geo["semantic_margin"] == pytest.approx(np.mean(defined))


def test_nothing_present_and_empty_input() -> None:
    z, _, labels = _partial()
    geo = geometry_diagnostics(z, np.zeros((120, 3), bool), labels)
    assert geo["semantic_margin"] is None and geo["drift"] is None and geo["outside_tau"] is None
    assert set(geo["effective_rank"].values()) == {None}
    for d in (4, 0):  # evaluation hands over (0, 3, 0) for an empty split
        empty = geometry_diagnostics(np.zeros((0, 3, d)), np.zeros((0, 3), bool), np.zeros(0, int))
        assert empty["n"] == 0 and empty["drift"] is None and empty["semantic_margin"] is None


def test_result_is_strict_json_with_the_documented_keys() -> None:
    z, present, labels = _partial()
    geo = geometry_diagnostics(z.astype(np.float32), present.astype(np.int64), labels.astype(np.int32))
    json.dumps(geo, allow_nan=False)
    assert {
        "n", "tau", "n_present", "n_pairs", "semantic_margin", "semantic_margin_per_modality",
        "effective_rank", "drift", "drift_per_pair", "outside_tau", "outside_tau_per_pair",
        "excess_drift", "excess_drift_per_pair",
    } == set(geo)  # fmt: skip
    assert list(geo["effective_rank"]) == list(MODALITIES)
    assert list(geo["drift_per_pair"]) == PAIR_KEYS
    assert geo["n"] == 120


def test_bad_inputs_are_named() -> None:
    z, present, labels = _partial()
    with pytest.raises(ValueError, match=r"z has shape"):
        geometry_diagnostics(z[:, :2], present, labels)
    with pytest.raises(ValueError, match=r"present has shape"):
        geometry_diagnostics(z, present[:-1], labels)
    with pytest.raises(ValueError, match=r"present has dtype"):
        geometry_diagnostics(z, present * 2.0, labels)
    with pytest.raises(ValueError, match=r"labels has dtype"):
        geometry_diagnostics(z, present, labels.astype(float))
    with pytest.raises(ValueError, match=r"tau"):
        geometry_diagnostics(z, present, labels, tau=-0.1)
    with pytest.raises(ValueError, match=r"max_per_class"):
        geometry_diagnostics(z, present, labels, max_per_class=1)
    bad = z.copy()
    bad[np.flatnonzero(present[:, 1])[0], 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"wifi embeddings contain NaN"):
        geometry_diagnostics(bad, present, labels)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(2, 30),
    d=st.integers(1, 8),
    tau=st.floats(0.0, 2.0),
)
def test_invariances_and_bounds(seed: int, n: int, d: int, tau: float) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3, d))
    present = rng.random((n, 3)) > 0.3
    labels = rng.integers(0, 3, n)
    geo = geometry_diagnostics(z, present, labels, tau=tau)

    # Invariant to positive rescaling of each embedding and to the order of samples.
    scaled = z * rng.uniform(0.1, 10.0, size=(n, 3, 1))
    perm = rng.permutation(n)
    for other in (
        geometry_diagnostics(scaled, present, labels, tau=tau),
        geometry_diagnostics(z[perm], present[perm], labels[perm], tau=tau),
    ):
        for key in ("semantic_margin", "drift", "outside_tau", "excess_drift"):
            assert (geo[key] is None) == (other[key] is None)
            if geo[key] is not None:
                assert other[key] == pytest.approx(geo[key], rel=1e-6, abs=1e-9)
        for mod in MODALITIES:
            a, b = geo["effective_rank"][mod], other["effective_rank"][mod]
            assert (a is None) == (b is None)
            if a is not None:
                assert b == pytest.approx(a, rel=1e-6, abs=1e-9)

    # Unit vectors: distances in [0, 2]; r_eff at most min(n − 1, d).
    if geo["drift"] is not None:
        assert 0.0 <= geo["drift"] <= 4.0 + 1e-9
        assert 0.0 <= geo["outside_tau"] <= 1.0
    if geo["semantic_margin"] is not None:
        assert -2.0 - 1e-9 <= geo["semantic_margin"] <= 2.0 + 1e-9
    for m, mod in enumerate(MODALITIES):
        r = geo["effective_rank"][mod]
        if r is not None:
            assert 0.0 <= r <= min(int(present[:, m].sum()) - 1, d) + 1e-6
