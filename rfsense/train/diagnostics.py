"""Geometry diagnostics of the pooled per-modality embeddings (DAGR paper, §4.3, Eq. 14).

Numpy only, so evaluation reports can be produced without torch. Given the pooled
embeddings `z_m` of a test set, :func:`geometry_diagnostics` measures the two pathologies
DAGR targets:

* semantic margin Δsem (Eq. 14, first line): mean inter-class minus mean intra-class
  Euclidean distance, per modality;
* effective rank r_eff (Eq. 14, second line): exp of the Shannon entropy of the normalised
  covariance eigenvalues, per modality (intra-modal collapse);
* cross-modal drift d_drift (Eq. 14, third line): mean squared distance between paired
  embeddings of one sample, overall and per modality pair;
* the violation rate behind Eq. 13 / Theorem A.3: the fraction of paired distances outside
  the agreement band τ of Eq. 7, and the excess drift A_τ = mean (‖z^m − z^n‖ − τ)₊².

All of it is computed on L2-normalised embeddings, as in §4.3 ("all diagnostics are computed
from the ℓ2-normalized modality-wise embeddings used by the regularizer").

    from rfsense.train.diagnostics import geometry_diagnostics
    geo = geometry_diagnostics(z, present, labels, tau=0.25)   # z: (N, 3, d)
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

from rfsense.modalities import MODALITIES

__all__ = ["PAIRS", "geometry_diagnostics", "pair_name"]

# Unordered modality pairs in MODALITIES order; ‖z^m − z^n‖ is symmetric, so the mean over the
# ordered pairs m≠n of Eq. 7 / Eq. 14 equals the mean over these.
PAIRS: tuple[tuple[int, int], ...] = tuple(combinations(range(len(MODALITIES)), 2))

_EPS = 1e-12  # norm floor for L2 normalisation; a zero vector stays zero
_CHUNK = 512  # rows of the pairwise-distance matrix held in memory at once


def pair_name(m: int, n: int) -> str:
    """Key of a modality pair in the result, e.g. ``'mmwave-wifi'``."""
    return f"{MODALITIES[m]}-{MODALITIES[n]}"


def geometry_diagnostics(
    z: npt.ArrayLike,
    present: npt.ArrayLike,
    labels: npt.ArrayLike,
    tau: float = 0.25,
    *,
    max_per_class: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Semantic margin, effective rank, cross-modal drift and band violations (paper §4.3).

    Only present modalities count: the slots of absent modalities may hold anything (zeros,
    garbage, NaN) without changing the result.

    Args:
        z: (N, 3, d) float, pooled per-modality embeddings in MODALITIES order, unnormalised
            (they are L2-normalised here).
        present: (N, 3) bool presence mask (0/1 integers are accepted).
        labels: (N,) int class labels (any integer ids).
        tau: agreement radius τ ≥ 0 of Eq. 7; pairs with ‖z^m − z^n‖₂ > τ are "outside".
        max_per_class: Δsem looks at most this many samples per class and modality, drawn
            with a fixed seed, so its cost is bounded by (C·max_per_class)²·d instead of N²·d.
            The estimate is exact when no class is larger.
        seed: seed of that subsample.

    Returns:
        A JSON-able dict (floats, ints, None):

        - ``n``: N; ``tau``; ``n_present``: {modality: samples with it present};
          ``n_pairs``: {pair: samples with both present}.
        - ``semantic_margin``: mean of the per-modality Δsem; ``semantic_margin_per_modality``.
        - ``effective_rank``: {modality: r_eff}.
        - ``drift``: d_drift over all present within-sample pairs; ``drift_per_pair``.
        - ``outside_tau``: fraction of those pairs with distance > τ; ``outside_tau_per_pair``.
        - ``excess_drift``: mean (d − τ)₊² (the A_τ of Theorem A.3); ``excess_drift_per_pair``.

        A value is None when it is undefined: a modality with fewer than 2 samples (or, for
        Δsem, fewer than 2 classes or no class with 2 samples), a pair never present together.

    Raises:
        ValueError: on wrong shapes or dtypes, τ < 0, max_per_class < 2, or a NaN/Inf in a
            present slot.
    """
    z, present, labels = _check_inputs(z, present, labels, tau, max_per_class)
    n_samples = z.shape[0]

    # Per-modality quantities: Δsem and r_eff on each modality's present, normalised rows.
    margins: dict[str, float | None] = {}
    ranks: dict[str, float | None] = {}
    normed: list[np.ndarray] = []  # (N, d) each; absent rows zeroed, never read
    for m, mod in enumerate(MODALITIES):
        zm = np.zeros((n_samples, z.shape[2]), dtype=np.float64)  # (N, d)
        rows = present[:, m]
        zm[rows] = _l2_normalise(z[rows, m].astype(np.float64))
        normed.append(zm)
        margins[mod] = _semantic_margin(zm[rows], labels[rows], max_per_class, seed)
        ranks[mod] = _effective_rank(zm[rows])
    defined = [v for v in margins.values() if v is not None]

    # Pairwise quantities on the same sample: d_drift (Eq. 14), band violations (Eq. 7, 13).
    dists: dict[str, np.ndarray] = {}
    for m, n in PAIRS:
        both = present[:, m] & present[:, n]
        # The difference, not 2 − 2·cos: identical embeddings give exactly 0, so τ = 0 works.
        dists[pair_name(m, n)] = np.linalg.norm(normed[m][both] - normed[n][both], axis=1)
    pooled = np.concatenate(list(dists.values()))  # E over (i, (m, n)) pools all pairs

    return {
        "n": int(n_samples),
        "tau": float(tau),
        "n_present": {mod: int(present[:, m].sum()) for m, mod in enumerate(MODALITIES)},
        "n_pairs": {k: int(d.size) for k, d in dists.items()},
        "semantic_margin": float(np.mean(defined)) if defined else None,
        "semantic_margin_per_modality": margins,
        "effective_rank": ranks,
        "drift": _mean_or_none(pooled**2),
        "drift_per_pair": {k: _mean_or_none(d**2) for k, d in dists.items()},
        "outside_tau": _mean_or_none(pooled > tau),
        "outside_tau_per_pair": {k: _mean_or_none(d > tau) for k, d in dists.items()},
        "excess_drift": _mean_or_none(np.maximum(pooled - tau, 0.0) ** 2),
        "excess_drift_per_pair": {k: _mean_or_none(np.maximum(d - tau, 0.0) ** 2) for k, d in dists.items()},
    }


def _check_inputs(
    z: npt.ArrayLike, present: npt.ArrayLike, labels: npt.ArrayLike, tau: float, max_per_class: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes and dtypes; returns (z (N,3,d), present (N,3) bool, labels (N,) int)."""
    z = np.asarray(z)
    present = np.asarray(present)
    labels = np.asarray(labels)
    n_mod = len(MODALITIES)
    if z.ndim != 3 or z.shape[1] != n_mod or (z.shape[2] < 1 and z.shape[0] > 0):
        raise ValueError(f"z has shape {z.shape}; expected (N, {n_mod}, d) in the order {list(MODALITIES)}")
    if not np.issubdtype(z.dtype, np.floating):
        raise ValueError(f"z has dtype {z.dtype}; expected a float array")
    n = z.shape[0]
    if present.shape != (n, n_mod):
        raise ValueError(f"present has shape {present.shape}; expected ({n}, {n_mod}) to match z")
    if present.dtype != np.bool_:
        if not np.issubdtype(present.dtype, np.integer) or not np.isin(present, (0, 1)).all():
            raise ValueError(f"present has dtype {present.dtype}; expected bool (or 0/1 integers)")
        present = present.astype(bool)
    if labels.shape != (n,):
        raise ValueError(f"labels has shape {labels.shape}; expected ({n},) to match z")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels has dtype {labels.dtype}; expected integer class ids")
    if not np.isfinite(tau) or tau < 0:
        raise ValueError(f"tau is {tau}; expected a finite radius >= 0 (Eq. 7)")
    if max_per_class < 2:
        raise ValueError(f"max_per_class is {max_per_class}; Δsem needs at least 2 samples per class")
    for m, mod in enumerate(MODALITIES):
        bad = ~np.isfinite(z[present[:, m], m]).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{mod} embeddings contain NaN/Inf in {int(bad.sum())} of {int(present[:, m].sum())} "
                "present samples; only absent slots may hold non-finite values"
            )
    return z, present, labels


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, d) rows scaled to unit L2 norm (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


def _mean_or_none(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if x.size else None


def _semantic_margin(x: np.ndarray, labels: np.ndarray, max_per_class: int, seed: int) -> float | None:
    """Δsem of Eq. 14 for (n, d) unit rows x with (n,) labels.

    Δsem = E_{y≠y'}[E_{i∈I_y, j∈I_y'} ‖z_i − z_j‖₂] − E_y[E_{i,j∈I_y, i≠j} ‖z_i − z_j‖₂]: class
    pairs and classes are averaged with equal weight (macro), as the outer expectations of
    Eq. 14 read. Self-pairs i = j are left out of the intra-class mean; they are 0 by
    construction and would bias it towards 0 for small classes.
    """
    classes, y = np.unique(labels, return_inverse=True)
    if classes.size < 2 or x.shape[0] < 2:
        return None
    # Deterministic per-class subsample: each class-pair mean stays unbiased, so the macro
    # average is too, and the cost no longer grows as N².
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(classes.size):
        idx = np.flatnonzero(y == c)
        if idx.size > max_per_class:
            idx = np.sort(rng.choice(idx, size=max_per_class, replace=False))
        keep.append(idx)
    idx = np.concatenate(keep)
    x, y = x[idx], y[idx]
    counts = np.bincount(y, minlength=classes.size).astype(np.float64)  # (C,)
    if not (counts >= 2).any():
        return None

    # S[a, b] = sum of ‖z_i − z_j‖ over i in class a, j in class b, built in row chunks so the
    # (P, P) distance matrix is never held whole.
    onehot = np.zeros((x.shape[0], classes.size))  # (P, C)
    onehot[np.arange(x.shape[0]), y] = 1.0
    sums = np.zeros((classes.size, classes.size))  # (C, C)
    sqnorm = np.einsum("pd,pd->p", x, x)  # (P,)
    for start in range(0, x.shape[0], _CHUNK):
        stop = min(start + _CHUNK, x.shape[0])
        # ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b (the norms are 1, or 0 for an all-zero embedding).
        sq = sqnorm[start:stop, None] + sqnorm[None, :] - 2.0 * (x[start:stop] @ x.T)
        d = np.sqrt(np.maximum(sq, 0.0))  # (b, P)
        d[np.arange(stop - start), np.arange(start, stop)] = 0.0
        sums += onehot[start:stop].T @ (d @ onehot)

    intra_ok = counts >= 2
    intra = np.diag(sums)[intra_ok] / (counts[intra_ok] * (counts[intra_ok] - 1))
    off = ~np.eye(classes.size, dtype=bool)
    inter = sums[off] / np.outer(counts, counts)[off]
    return float(inter.mean() - intra.mean())


def _effective_rank(x: np.ndarray) -> float | None:
    """r_eff of Eq. 14 for (n, d) unit rows: exp(−Σ p_i log p_i), p_i = λ_i / Σ_j λ_j.

    λ are the eigenvalues of the covariance Σ of the embeddings (centred, as "covariance
    matrix" in §4.3 says). 0 when there is no variance at all (every embedding identical).
    """
    n, d = x.shape
    if n < 2:
        return None
    xc = x - x.mean(axis=0)
    # The non-zero eigenvalues of xcᵀxc (d, d) and xc·xcᵀ (n, n) agree: take the smaller one.
    # The 1/(n − 1) factor of Σ cancels in p.
    gram = xc.T @ xc if d <= n else xc @ xc.T
    lam = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    total = lam.sum()
    # Unit rows have total variance 1 − ‖mean‖² ∈ [0, 1]; below this the spectrum is round-off.
    if total <= 1e-12 * n:
        return 0.0
    p = lam[lam > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))
