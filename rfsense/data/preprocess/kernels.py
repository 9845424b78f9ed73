"""Signal kernels of the preprocessing, vectorised over every leading axis (numpy/scipy)."""

from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = ["butter_lowpass", "hampel"]

# MAD -> standard deviation for Gaussian noise (1 / Phi^-1(3/4)); the usual Hampel constant.
_MAD_TO_SIGMA = 1.4826
# Rows per Hampel chunk: 15 sorted (32, 1000) float32 arrays are ~2 MB, which stays in cache;
# measured fastest among 16..256 rows on a 2-core box (see benchmarks/bench_preprocess.py).
_HAMPEL_CHUNK_ROWS = 32


def _sorting_network(m: int) -> list[tuple[int, int]]:
    """Comparators (i < j: min to i, max to j) of Batcher's odd-even merge sort for m inputs.

    Built for the next power of two n >= m; inputs m..n-1 act as +inf pads, so every comparator that
    touches them is a no-op and is dropped (m=15: 59 comparators).
    """
    n = 1
    while n < m:
        n *= 2
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return [(i, j) for i, j in pairs if j < m]


_NETWORKS: dict[int, list[tuple[int, int]]] = {}


def hampel(x: np.ndarray, half_window: int, sigmas: float) -> np.ndarray:
    """Vectorised Hampel filter along the last axis of finite (..., T) data; returns float32.

    Exact definition: med_i and MAD_i = median_j |x_j - med_i| over the 2k+1 window around i
    (reflect-padded edges); x_i is replaced by med_i when |x_i - med_i| > sigmas * 1.4826 * MAD_i.

    How: the 2k+1 shifted views of a chunk of rows are sorted elementwise by a sorting network
    (np.minimum/np.maximum on whole (rows, T) arrays: SIMD, no per-window Python or per-row
    np.partition call). In sorted order s_0..s_2k the deviations from med = s_k form two ascending
    runs, s_k - s_{k-1-j} and s_{k+1+j} - s_k (plus the 0 of s_k itself), so the MAD is the k-th
    smallest of two sorted length-k runs: min over splits a of max(left[a-1], right[k-1-a]).
    3x faster than two np.partition passes over sliding_window_view windows, with identical output.
    Runs in float32 because the output is float32 anyway (selection is exact; half the bandwidth).
    """
    if half_window == 0:
        return x.astype(np.float32)
    k = half_window
    m = 2 * k + 1
    net = _NETWORKS.setdefault(m, _sorting_network(m))
    t_len = x.shape[-1]
    rows = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, t_len)
    padded = np.pad(rows, ((0, 0), (k, k)), mode="reflect" if t_len > k else "edge")  # reflect needs k < T
    out = np.empty_like(rows)
    thr = np.float32(sigmas * _MAD_TO_SIGMA)
    for c in range(0, rows.shape[0], _HAMPEL_CHUNK_ROWS):
        pc = padded[c : c + _HAMPEL_CHUNK_ROWS]
        s = [pc[:, j : j + t_len] for j in range(m)]  # s[j][:, i] = x[i - k + j]: views, no copy
        for i, j in net:
            s[i], s[j] = np.minimum(s[i], s[j]), np.maximum(s[i], s[j])
        med = s[k]
        left = [med - s[k - 1 - j] for j in range(k)]  # ascending deviations below the median
        right = [s[k + 1 + j] - med for j in range(k)]  # ascending deviations above it
        mad = np.minimum(right[k - 1], left[k - 1])  # splits a=0 and a=k
        for a in range(1, k):
            np.minimum(mad, np.maximum(left[a - 1], right[k - 1 - a]), out=mad)
        xi = rows[c : c + _HAMPEL_CHUNK_ROWS]
        out[c : c + _HAMPEL_CHUNK_ROWS] = np.where(np.abs(xi - med) > thr * mad, med, xi)
    return out.reshape(x.shape)


_SOS_CACHE: dict[tuple[int, float, float], np.ndarray] = {}


def butter_lowpass(order: int, cutoff: float, fs: float) -> np.ndarray:
    """Second-order sections of a Butterworth low-pass (cached: the runtime asks for the same one per call)."""
    key = (order, cutoff, fs)
    if key not in _SOS_CACHE:
        _SOS_CACHE[key] = signal.butter(order, cutoff, btype="low", fs=fs, output="sos")
    return _SOS_CACHE[key]


