"""Signal kernels of the preprocessing, vectorised over every leading axis (numpy/scipy).

The runtime calls them on every sample, so each is written for speed without changing its result: the
Hampel filter sorts windows with a sorting network in preallocated buffers, the zero-phase low-pass applies
`sosfiltfilt` as the linear map it is (an FFT convolution plus exact edge corrections), and the percentile
clip selects its level among the few candidates a strided sample bounds. Tests hold each to its textbook
form (tests/data/test_preprocess.py, tests/data/test_kernels.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft
from scipy import signal

from rfsense.data.preprocess import compiled

__all__ = ["butter_lowpass", "hampel", "hampel_lowpass", "kth_value", "lowpass_filtfilt"]

# MAD -> standard deviation for Gaussian noise (1 / Phi^-1(3/4)); the usual Hampel constant.
_MAD_TO_SIGMA = 1.4826
# Rows per Hampel chunk: 15 sorted (32, 1000) float32 arrays are ~2 MB, which stays in cache;
# measured fastest among 16..256 rows on a 2-core box (see benchmarks/bench_preprocess.py).
_HAMPEL_CHUNK_ROWS = 32
# Rows per block of the compiled low-pass: a block's (T + 2 * pad, rows) float64 working array stays in cache.
_IIR_BLOCK_ROWS = 128


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


def hampel(x: np.ndarray, half_window: int, sigmas: float, workers: int = 1, fast: bool = False) -> np.ndarray:
    """Vectorised Hampel filter along the last axis of finite (..., T) data; returns float32.

    Exact definition: med_i and MAD_i = median_j |x_j - med_i| over the 2k+1 window around i
    (reflect-padded edges); x_i is replaced by med_i when |x_i - med_i| > sigmas * 1.4826 * MAD_i.

    How: the 2k+1 shifted views of a chunk of rows are sorted elementwise by a sorting network
    (np.minimum/np.maximum on whole (rows, T) arrays: SIMD, no per-window Python or per-row
    np.partition call), in preallocated buffers (no allocation per comparator). In sorted order s_0..s_2k
    the deviations from med = s_k form two ascending runs, s_k - s_{k-1-j} and s_{k+1+j} - s_k (plus the 0
    of s_k itself), so the MAD is the k-th smallest of two sorted length-k runs: min over splits a of
    max(left[a-1], right[k-1-a]). Runs in float32 because the output is float32 anyway (selection is
    exact; half the bandwidth). `workers` > 1 filters row blocks in that many threads (numpy releases the
    GIL), for one sample's latency on an otherwise idle core; the result is the same. `fast`: once compiled
    (`compiled.start`), the same network runs compiled (`compiled.hampel`), bit-identical, ~8x faster.
    """
    if half_window == 0:
        return x.astype(np.float32)
    k = half_window
    t_len = x.shape[-1]
    n = math.prod(x.shape[:-1])  # np.prod on a tuple costs ~20 us per call here
    out = np.empty((n, t_len), np.float32)
    # NaN/Inf (also after the float32 cast) keep numpy's min/max semantics: the compiled kernel declines them
    if fast and compiled.hampel_ready(k) and x.dtype in (np.float32, np.float64):
        rows = np.ascontiguousarray(x).reshape(n, t_len)
        thr = np.float32(sigmas * _MAD_TO_SIGMA)
        if _all_blocks(lambda a, b: compiled.hampel(rows[a:b], out[a:b], k, thr), n, workers):
            return out.reshape(x.shape)
    rows = np.ascontiguousarray(x, dtype=np.float32).reshape(n, t_len)
    padded = np.pad(rows, ((0, 0), (k, k)), mode="reflect" if t_len > k else "edge")  # reflect needs k < T
    _all_blocks(lambda a, b: _hampel_rows(rows[a:b], padded[a:b], out[a:b], k, sigmas), n, workers)
    return out.reshape(x.shape)


def hampel_lowpass(x: np.ndarray, half_window: int, sigmas: float, order: int, cutoff: float, fs: float,
                   workers: int = 1) -> np.ndarray | None:
    """``lowpass_filtfilt(hampel(x, ...), ..., dtype=np.float32)`` compiled in one pass over blocks of rows
    (`compiled.hampel_lowpass`: each block's Hampel output is low-passed while it is in cache), bit-identical to
    the two calls with ``fast=True``. None where that path does not apply (kernels not compiled yet, no Hampel
    window, T not above sosfiltfilt's padding, a value not finite in float32): the caller runs the two calls.
    """
    t_len = x.shape[-1]
    if not (half_window and compiled.hampel_ready(half_window) and x.size and x.dtype in (np.float32, np.float64)):
        return None
    zi, edge = _sos_padding(order, cutoff, fs)
    if t_len <= edge:
        return None
    n = x.size // t_len
    rows = np.ascontiguousarray(x).reshape(n, t_len)
    out = np.empty((n, t_len), np.float32)
    sos, thr = butter_lowpass(order, cutoff, fs), np.float32(sigmas * _MAD_TO_SIGMA)
    job = lambda a, b: compiled.hampel_lowpass(rows[a:b], out[a:b], half_window, thr, sos, zi, edge)  # noqa: E731
    return out.reshape(x.shape) if _all_blocks(job, n, workers) else None


def _all_blocks(job: Callable[[int, int], bool | None], n: int, workers: int) -> bool:
    """job(a, b) on row blocks of n rows, one per worker (at most one per `_HAMPEL_CHUNK_ROWS` rows; `_run_blocks`);
    True unless a block's job returned False."""
    parts = max(1, min(workers, n // _HAMPEL_CHUNK_ROWS))
    declined: list[int] = []
    _run_blocks(lambda a, b: declined.append(a) if job(a, b) is False else None,
                np.linspace(0, n, parts + 1).astype(int).tolist(), parts)
    return not declined


def _run_blocks(job: Callable[[int, int], None], bounds: list[int], workers: int) -> None:
    """job(a, b) for each block [a, b) between consecutive `bounds`; in `workers` threads when there are several
    blocks (numpy and the compiled kernels release the GIL). Each block writes its own rows: same result."""
    blocks = list(zip(bounds[:-1], bounds[1:], strict=True))
    if workers > 1 and len(blocks) > 1:
        for f in [_pool(workers).submit(job, a, b) for a, b in blocks]:
            f.result()
    else:
        for a, b in blocks:
            job(a, b)


def _finite(x: np.ndarray, dtype: type[np.floating] | None = None) -> bool:
    """Whether every value of x is finite (also once cast to `dtype`): two SIMD reductions (NaN propagates
    through max), no mask array."""
    if x.size == 0:
        return True
    lo, hi = x.min(), x.max()
    bound = np.finfo(dtype or x.dtype).max
    return bool(np.isfinite(lo) and np.isfinite(hi) and -bound <= lo and hi <= bound)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rfsense-hampel")
    return _POOLS[workers]


def _hampel_rows(rows: np.ndarray, padded: np.ndarray, out: np.ndarray, k: int, sigmas: float) -> None:
    """`hampel` on (n, T) float32 rows and their padded copy (n, T + 2k), written into `out`."""
    m = 2 * k + 1
    net = _NETWORKS.setdefault(m, _sorting_network(m))
    t_len = rows.shape[-1]
    thr = np.float32(sigmas * _MAD_TO_SIGMA)
    chunk = min(_HAMPEL_CHUNK_ROWS, max(1, rows.shape[0]))
    buf = np.empty((m + 2, chunk, t_len), np.float32)  # the m window slots and two scratch arrays
    replace = np.empty((chunk, t_len), bool)
    for c in range(0, rows.shape[0], chunk):
        r = min(chunk, rows.shape[0] - c)
        pc = padded[c : c + r]
        s = [buf[j, :r] for j in range(m)]
        for j in range(m):
            s[j][...] = pc[:, j : j + t_len]  # s[j][:, i] = x[i - k + j]
        spare, tmp = buf[m, :r], buf[m + 1, :r]
        for i, j in net:
            np.minimum(s[i], s[j], out=spare)
            np.maximum(s[i], s[j], out=s[j])
            s[i], spare = spare, s[i]
        med = s[k]
        for j in range(k):  # in place: left[j] = med - s[k-1-j], right[j] = s[k+1+j] - med (both ascending)
            np.subtract(med, s[k - 1 - j], out=s[k - 1 - j])
            np.subtract(s[k + 1 + j], med, out=s[k + 1 + j])
        left = [s[k - 1 - j] for j in range(k)]
        right = [s[k + 1 + j] for j in range(k)]
        mad = np.minimum(right[k - 1], left[k - 1], out=spare)  # splits a=0 and a=k
        for a in range(1, k):
            np.maximum(left[a - 1], right[k - 1 - a], out=tmp)
            np.minimum(mad, tmp, out=mad)
        xi = rows[c : c + r]
        np.multiply(mad, thr, out=mad)
        np.subtract(xi, med, out=tmp)
        np.abs(tmp, out=tmp)
        np.greater(tmp, mad, out=replace[:r])
        res = out[c : c + r]
        res[...] = xi
        np.copyto(res, med, where=replace[:r])


_SOS_CACHE: dict[tuple[int, float, float], np.ndarray] = {}


def butter_lowpass(order: int, cutoff: float, fs: float) -> np.ndarray:
    """Second-order sections of a Butterworth low-pass (cached: the runtime asks for the same one per call)."""
    key = (order, cutoff, fs)
    if key not in _SOS_CACHE:
        _SOS_CACHE[key] = signal.butter(order, cutoff, btype="low", fs=fs, output="sos")
    return _SOS_CACHE[key]


_PAD_CACHE: dict[tuple[int, float, float], tuple[np.ndarray, int]] = {}


def _sos_padding(order: int, cutoff: float, fs: float) -> tuple[np.ndarray, int]:
    """sosfiltfilt's initial state per unit step (``sosfilt_zi``) and its default odd-padding length."""
    key = (order, cutoff, fs)
    if key not in _PAD_CACHE:
        sos = butter_lowpass(order, cutoff, fs)
        ntaps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
        _PAD_CACHE[key] = (signal.sosfilt_zi(sos), 3 * ntaps)
    return _PAD_CACHE[key]


# Impulse-response tolerance of the low-pass operator: entries below this fraction of the largest are zero.
_OPERATOR_TOL = 1e-13
_Corner = tuple[np.ndarray, np.ndarray]
_FILTFILT_CACHE: dict[tuple[int, float, float, int], tuple[int, np.ndarray, int, _Corner, _Corner] | None] = {}


def _low_rank(block: np.ndarray, tol: float) -> _Corner:
    """(E, E) -> (E, r), (r, E) factors whose product equals `block` to `tol` (absolute)."""
    u, s, vt = np.linalg.svd(block)
    r = max(1, int((s > tol).sum()))
    return np.ascontiguousarray(u[:, :r] * s[:r]), np.ascontiguousarray(vt[:r])


def _filtfilt_operator(order: int, cutoff: float, fs: float, t_len: int
                       ) -> tuple[int, np.ndarray, int, _Corner, _Corner] | None:
    """sosfiltfilt on length-T signals as y = x @ R, split into a convolution and two edge corners.

    R (T x T) is the filter applied to the identity. Away from the edges R is Toeplitz (the zero-phase
    impulse response h); the odd-extension padding and the initial conditions change only the two corners,
    and only through a few numbers (the filter states, the padded samples), so each corner has a tiny rank
    (5 for the WiFi default): it is kept as two thin factors. Returns (FFT length, rfft of h, E, start corner
    factors, end corner factors), or None when h or the corners are too long for this to pay (a very narrow
    band): then sosfiltfilt itself runs.
    """
    key = (order, cutoff, fs, t_len)
    if key not in _FILTFILT_CACHE:
        _FILTFILT_CACHE[key] = None
        r = signal.sosfiltfilt(butter_lowpass(order, cutoff, fs), np.eye(t_len), axis=-1)  # (T, T): y = x @ r
        c = t_len // 2
        h = r[c]  # the response in the middle: h[c + k] = R[c, c + k]
        big = np.abs(r).max()
        support = np.flatnonzero(np.abs(h) > _OPERATOR_TOL * big)
        half = int(max(c - support.min(), support.max() - c))  # h is negligible beyond offsets -half..half
        off = np.arange(t_len)[None, :] - np.arange(t_len)[:, None]  # j - i
        toeplitz = np.where(np.abs(off) <= half, h[np.clip(off + c, 0, t_len - 1)], 0.0)
        rest = np.abs(r - toeplitz) > _OPERATOR_TOL * big
        rows, cols = np.nonzero(rest)
        # Each correction must sit in one of the two corners: its size is the farthest such entry's reach.
        reach = np.minimum(np.maximum(rows, cols), np.maximum(t_len - 1 - rows, t_len - 1 - cols))
        edge = int(reach.max()) + 1 if reach.size else 0
        if 4 * half < t_len and 4 * edge < t_len:
            n = scipy.fft.next_fast_len(t_len + half, real=True)
            kernel = np.zeros(n)
            kernel[: half + 1] = h[c : c + half + 1]
            kernel[n - half :] = h[c - half : c]
            corr = r - toeplitz
            tol = _OPERATOR_TOL * big
            _FILTFILT_CACHE[key] = (n, scipy.fft.rfft(kernel), edge, _low_rank(corr[:edge, :edge], tol),
                                    _low_rank(corr[t_len - edge :, t_len - edge :], tol))
    return _FILTFILT_CACHE[key]


def lowpass_filtfilt(x: np.ndarray, order: int, cutoff: float, fs: float, workers: int | None = None,
                     fast: bool = False, dtype: type[np.floating] = np.float64) -> np.ndarray:
    """Zero-phase Butterworth low-pass along the last axis: scipy's ``sosfiltfilt`` (odd padding, default
    length) of `butter_lowpass(order, cutoff, fs)`, computed in float64 and returned as `dtype` (..., T)
    (float32: rounded once, as ``.astype(np.float32)`` would; the compiled path writes it directly).

    Computed as the linear map it is (see `_filtfilt_operator`): an FFT convolution with the zero-phase
    impulse response plus low-rank corrections at both edges; equal to sosfiltfilt to ~1e-12 relative, 2-3x
    faster on (270, 1000) WiFi windows. NaN/Inf spread over their whole row, as with sosfiltfilt. `fast`: once
    compiled (`compiled.start`), finite input runs sosfiltfilt's own recursion compiled (`compiled.sosfiltfilt`:
    bit-identical to scipy, ~2x faster than the operator).
    """
    x = np.asarray(x)
    if fast and compiled.ready() and x.dtype in (np.float32, np.float64) and x.size:
        zi, edge = _sos_padding(order, cutoff, fs)
        if x.shape[-1] > edge and _finite(x):  # else numpy's path: sosfiltfilt's own error, NaN/Inf semantics
            rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
            out = np.empty(rows.shape, dtype)
            sos = butter_lowpass(order, cutoff, fs)
            _run_blocks(lambda a, b: compiled.sosfiltfilt(rows[a:b], sos, zi, edge, out[a:b]),
                        [*range(0, len(rows), _IIR_BLOCK_ROWS), len(rows)], workers or 1)
            return out.reshape(x.shape)
    x = np.asarray(x, dtype=np.float64)
    op = _filtfilt_operator(order, cutoff, fs, x.shape[-1])
    if op is None:
        return signal.sosfiltfilt(butter_lowpass(order, cutoff, fs), x, axis=-1).astype(dtype, copy=False)
    n, spectrum, edge, start, end = op
    shape, t_len = x.shape, x.shape[-1]
    x = x.reshape(-1, t_len)
    spec = scipy.fft.rfft(x, n, axis=-1, workers=workers)
    spec *= spectrum
    y = scipy.fft.irfft(spec, n, axis=-1, workers=workers)[:, :t_len]
    if edge:  # contiguous 2-D operands: numpy's matmul takes BLAS only for those
        y[:, :edge] += (np.ascontiguousarray(x[:, :edge]) @ start[0]) @ start[1]
        y[:, t_len - edge :] += (np.ascontiguousarray(x[:, t_len - edge :]) @ end[0]) @ end[1]
    return y.reshape(shape).astype(dtype, copy=False)


def kth_value(v: np.ndarray, kth: int) -> np.floating:
    """``np.partition(v, kth)[kth]`` of a 1-D array, exactly, and fast when kth sits in the top tail.

    The values are split into s strided groups of equal size (one elementwise max over s rows: SIMD); the
    (above + 1)-th largest group maximum is a lower bound that at least above + 1 values reach, so the answer
    (the (above + 1)-th largest value) is among the values that reach it, and only they are partitioned (about
    a thousand of the 557,056 values of a mmWave sample for its 99.9th percentile). The bound holds for any
    data; NaN/Inf anywhere (partition's order puts NaN last) and small arrays partition the whole array.
    """
    n = v.size
    above = n - 1 - kth  # values sorted after the answer
    if n < 4096 or above > n // 64 or not _finite(v):
        return np.partition(v, kth)[kth]
    s = 1  # groups: as many as allowed while there are >= 8x more groups than values above the answer
    while n % (2 * s) == 0 and n // (2 * s) >= 8 * (above + 1):
        s *= 2
    if s < 4:
        return np.partition(v, kth)[kth]
    groups = n // s
    gmax = np.ascontiguousarray(v).reshape(s, groups).max(axis=0)
    bound = np.partition(gmax, groups - 1 - above)[groups - 1 - above]
    cand = v[v >= bound]
    return np.partition(cand, cand.size - 1 - above)[cand.size - 1 - above]
