"""Compiled versions of the runtime's hot kernels, used where numba is installed (the `fast` extra).

numpy's whole-array passes leave the runtime's cores waiting on memory and per-call overhead: the Hampel
filter's sorting network alone is ~120 passes over each WiFi window. Compiled, the network runs in
registers on every time step at once (SIMD over time), the low-pass runs as the recursive filter it is (SIMD
over channels), and the per-channel statistics of the plausibility check take one pass. Each returns what its
numpy counterpart returns:

- `hampel`: bit-identical to `kernels.hampel` (same float32 comparisons and arithmetic, same padding);
- `sosfiltfilt`: bit-identical to scipy's ``signal.sosfiltfilt`` (the numpy path's FFT operator agrees with it
  to ~1e-12 relative);
- `hampel_lowpass`: the two in one pass over blocks of rows (each block's Hampel output is low-passed while it
  is in cache), bit-identical to `hampel` then `sosfiltfilt`;
- `channel_moments`: mean, std and mean absolute step, each run along the last axis summed in the input's
  precision and the run totals in float64 (numpy sums float32 pairwise in float32: they agree to ~1e-6
  relative).

Compiling takes ~8 s on 2 cores (numba's import included), so it is explicit: `start` compiles in a background
thread (the runtime calls it when it loads a model and runs the numpy kernels until the compiled ones are ready),
`warm_up` waits for it. Nothing is cached on disk (numba's cache is pickled). Callers opt in per call
(``fast=True``) and fall back to numpy for non-finite input, so NaN/Inf behave exactly as there; packing never
opts in, so packs do not depend on timing. ``RFSENSE_KERNELS=numpy`` turns the compiled kernels off. A child
forked while a compile runs inherits the finished kernels and never compiles (the locks the compile held stay
held in it).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["available", "channel_moments", "hampel", "hampel_lowpass", "hampel_ready", "ready", "sosfiltfilt", "start",
           "warm_up"]

_logger = logging.getLogger(__name__)

_LOCK = threading.Lock()  # guards _THREADS
_COMPILE_LOCK = threading.Lock()  # one compile at a time (windows started together share the common kernels)
_THREADS: dict[int, threading.Thread] = {}  # hampel window -> its compile thread
_KERNELS: dict[str, Callable[..., Any]] = {}  # name -> compiled dispatcher, set once compiled
_HAMPEL: dict[int, Callable[..., Any]] = {}  # half-window -> compiled Hampel (+ low-pass) kernel
_NO_COMPILE = False  # set in a child forked while a compile ran: its locks (ours, numba's, LLVM's) may be held
_COMPILING = 0  # compile threads running (threading marks them dead in a forked child before we can ask)


def _after_fork_in_child() -> None:
    """A forked child inherits the finished kernels but not the compile threads; if one was running, the locks
    it held stay held in the child, so the child never compiles (it runs what is ready, else numpy)."""
    global _LOCK, _COMPILE_LOCK, _NO_COMPILE
    _NO_COMPILE = _NO_COMPILE or _COMPILING > 0
    _LOCK, _COMPILE_LOCK = threading.Lock(), threading.Lock()
    _THREADS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@functools.cache
def _numba() -> Any | None:
    if os.environ.get("RFSENSE_KERNELS", "").lower() == "numpy":
        return None
    try:
        import numba
    except ImportError:
        return None
    return numba


def available() -> bool:
    """True when numba is importable and RFSENSE_KERNELS is not "numpy" (the kernels can be compiled)."""
    return _numba() is not None


def ready() -> bool:
    """True once the low-pass and channel-statistics kernels are compiled."""
    return "moments" in _KERNELS


def hampel_ready(half_window: int) -> bool:
    """True once the Hampel kernel for this half-window is compiled."""
    return half_window in _HAMPEL


def start(hampel_window: int = 7) -> threading.Thread | None:
    """Compile every kernel (the Hampel one for `hampel_window`) in a background thread, once per process and
    window; returns the thread (None without numba). Calls before it finishes run the numpy kernels."""
    if not available() or _NO_COMPILE:
        return None
    with _LOCK:
        if hampel_window not in _THREADS:
            _THREADS[hampel_window] = threading.Thread(target=_compile, args=(hampel_window,), daemon=True,
                                                       name="rfsense-compile")
            _THREADS[hampel_window].start()
        return _THREADS[hampel_window]


def warm_up(hampel_window: int = 7) -> bool:
    """`start` and wait for it; True when the compiled kernels are ready."""
    thread = start(hampel_window)
    if thread is not None:
        thread.join()
    return ready() and (hampel_window == 0 or hampel_ready(hampel_window))


def _compile(hampel_window: int) -> None:
    """Compile with explicit signatures (float32/float64, C-contiguous), then freeze the dispatchers: a call with
    other types raises instead of compiling in the middle of a batch."""
    global _COMPILING
    numba = _numba()
    jit = functools.partial(numba.njit, nogil=True, boundscheck=False)  # type: ignore[union-attr]
    with _LOCK:
        _COMPILING += 1
    try:
        with _COMPILE_LOCK:
            if not ready():
                # name: (function, signatures, fastmath); reassociation lets the sums vectorise, NaN still propagates
                table = {"extend": (_odd_extension, ["float64[:, ::1](float32[:, ::1], int64)",
                                                     "float64[:, ::1](float64[:, ::1], int64)"], False),
                         "sos": (_sos_pass, [f"void(float64[:, ::1], float64[:, ::1], float64[:, ::1], boolean, "
                                             f"{out}[:, ::1], int64)" for out in ("float64", "float32")], False),
                         "moments": (_moments, ["void(float32[:, ::1], int64, float64[:, ::1])",
                                                "void(float64[:, ::1], int64, float64[:, ::1])"], {"reassoc"})}
                built = {}
                for name, (fn, sigs, fastmath) in table.items():
                    built[name] = jit(sigs, fastmath=fastmath)(fn)
                    built[name].disable_compile()
                _KERNELS.update(built)  # all at once: ready() turns true only with every kernel in place
            if hampel_window and hampel_window not in _HAMPEL:
                # The kernel calls the low-pass's two steps on each block of rows: compiled into it, same code.
                namespace: dict[str, Any] = {"np": np, "F32_MAX": np.float32(np.finfo(np.float32).max),
                                             "extend": numba.njit(nogil=True)(_odd_extension),  # type: ignore[union-attr]
                                             "sos_pass": numba.njit(nogil=True)(_sos_pass)}  # type: ignore[union-attr]
                exec(compile(_hampel_source(hampel_window, _network(hampel_window)), "<rfsense hampel>", "exec"),  # noqa: S102
                     namespace)
                disp = jit([f"boolean({rows}[:, ::1], float32[:, ::1], float32, float64[:, ::1], float64[:, ::1], int64, "
                            "int64)" for rows in ("float32", "float64")])(namespace["kernel"])
                disp.disable_compile()
                _HAMPEL[hampel_window] = disp
    except Exception as err:  # a broken numba/llvmlite install must not take the runtime down: numpy runs
        _logger.warning("compiled kernels unavailable (%s: %s); the numpy kernels run", type(err).__name__, err)
    finally:
        with _LOCK:
            _COMPILING -= 1


def _network(half_window: int) -> list[tuple[int, int]]:
    from rfsense.data.preprocess.kernels import _sorting_network

    return _sorting_network(2 * half_window + 1)


# ----------------------------------------------------------------------------------------------- Hampel


def _hampel_source(k: int, network: list[tuple[int, int]]) -> str:
    """Python source of the Hampel kernel for half-window k: the sorting network written out comparator by
    comparator on scalars, so numba keeps the 2k+1 window values in registers and vectorises over time.

    Same arithmetic as `kernels.hampel`: each row converted to float32 and padded as there (reflect, or edge when
    T <= k) in a row buffer, min/max exchanges, the MAD as the k-th smallest of the two ascending runs around the
    median, and the test |x - med| > thr * MAD. It returns False, at once, on a row with a value that is not finite
    in float32 (the caller then runs numpy's kernel, which defines NaN/Inf). With `block` > 0 it filters blocks of
    that many rows and low-passes each block's output while it is in cache (`extend`, then the two `sos_pass`
    directions, as `sosfiltfilt`); with block 0 it is the Hampel filter alone, into `out`. (One function: the
    network is compiled once per dtype.)
    """
    m = 2 * k + 1
    body = [f"            s{j} = p[t + {j}]" for j in range(m)]
    for i, j in network:
        body += [f"            a = s{i}", f"            b = s{j}",
                 f"            s{i} = a if a < b else b", f"            s{j} = b if a < b else a"]
    body.append(f"            med = s{k}")
    for j in range(k):  # left[j] = med - s[k-1-j], right[j] = s[k+1+j] - med: both ascending in j
        body += [f"            l{j} = med - s{k - 1 - j}", f"            r{j} = s{k + 1 + j} - med"]
    body.append(f"            mad = r{k - 1} if r{k - 1} < l{k - 1} else l{k - 1}")
    for a in range(1, k):
        body += [f"            v = l{a - 1} if l{a - 1} > r{k - 1 - a} else r{k - 1 - a}",
                 "            mad = mad if mad < v else v"]
    body += [f"            d = p[t + {k}] - med", "            d = d if d >= 0 else -d",
             f"            o[t] = med if d > mad * thr else p[t + {k}]"]
    head = [
        "def kernel(rows, out, thr, sos, zi, edge, block):",
        "    n, t_len = out.shape",
        "    step = block if block > 0 else max(n, 1)",
        "    filtered = np.empty((min(step, n) if block > 0 else 0, t_len), np.float32)",
        f"    p = np.empty(t_len + {2 * k}, np.float32)",
        "    for lo in range(0, n, step):  # lo, hi: the body uses a and b for its comparators",
        "        hi = min(lo + step, n)",
        "        for r in range(lo, hi):",
        "            x = rows[r]",
        "            bad = False",
        "            for t in range(t_len):",
        "                v = np.float32(x[t])",
        f"                p[{k} + t] = v",
        "                bad |= not abs(v) <= F32_MAX",
        "            if bad:",
        "                return False",
        f"            for j in range({k}):",
        f"                if t_len > {k}:",
        f"                    p[{k - 1} - j] = p[{k + 1} + j]",
        f"                    p[{k} + t_len + j] = p[{k} + t_len - 2 - j]",
        "                else:",
        f"                    p[{k - 1} - j] = p[{k}]",
        f"                    p[{k} + t_len + j] = p[{k} + t_len - 1]",
        "            o = filtered[r - lo] if block > 0 else out[r]",
        "            for t in range(t_len):",
    ]
    body = ["    " + line for line in body]
    tail = [
        "        if block > 0:",
        "            ext = extend(filtered[: hi - lo], edge)",
        "            sos_pass(ext, sos, zi, False, out[lo:hi], edge)",
        "            sos_pass(ext, sos, zi, True, out[lo:hi], edge)",
        "    return True",
    ]
    return "\n".join(head + body + tail) + "\n"


_NO_FILTER = np.zeros((0, 6))  # the low-pass arguments of a Hampel-only call (block 0: unused)
# Rows per block of `hampel_lowpass`: the block's input, Hampel output and (T + 2 * pad, rows) float64 working array
# stay in a core's cache between the two filters (measured at batch 1: 64 rows 1.26 ms, 32 1.29, 16 1.34).
_BLOCK_ROWS = 64


def hampel(rows: np.ndarray, out: np.ndarray, k: int, thr: np.float32) -> bool:
    """`kernels.hampel` compiled: C-contiguous float32 or float64 (n, T) rows -> `out` float32 (n, T) (once
    `hampel_ready(k)`). False, with `out` unfinished, when a value is not finite in float32."""
    return bool(_HAMPEL[k](rows, out, thr, _NO_FILTER, _NO_FILTER, 0, 0))


def hampel_lowpass(rows: np.ndarray, out: np.ndarray, k: int, thr: np.float32, sos: np.ndarray, zi: np.ndarray,
                   edge: int) -> bool:
    """`hampel` then `sosfiltfilt` into float32 `out`, a block of rows at a time, bit-identical to the two calls
    (once `hampel_ready(k)`; T > edge). False, with `out` unfinished, when a value is not finite in
    float32."""
    return bool(_HAMPEL[k](rows, out, thr, sos, zi, edge, _BLOCK_ROWS))


# ----------------------------------------------------------------------------------------- the low-pass


def _sos_pass(ext: np.ndarray, sos: np.ndarray, zi: np.ndarray, reverse: bool, out: np.ndarray, edge: int) -> None:
    """One pass of scipy's ``sosfilt`` (direct form II transposed, the same operations in the same order) along
    axis 0 of ext (L, R), in place, from the state zi * the first sample; the R columns are SIMD lanes. The
    reverse pass also writes its samples edge..L-edge, transposed, into out (R, L - 2 * edge)."""
    n_len, n_rows = ext.shape
    n_sec = sos.shape[0]
    z = np.empty((n_sec, 2, n_rows))
    first = n_len - 1 if reverse else 0
    for s in range(n_sec):
        for r in range(n_rows):
            z[s, 0, r] = zi[s, 0] * ext[first, r]
            z[s, 1, r] = zi[s, 1] * ext[first, r]
    cur = np.empty(n_rows)
    for step in range(n_len):
        t = n_len - 1 - step if reverse else step
        for r in range(n_rows):
            cur[r] = ext[t, r]
        for s in range(n_sec):
            b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
            for r in range(n_rows):
                x = cur[r]
                y = b0 * x + z[s, 0, r]
                z[s, 0, r] = b1 * x - a1 * y + z[s, 1, r]
                z[s, 1, r] = b2 * x - a2 * y
                cur[r] = y
        if not reverse:
            for r in range(n_rows):
                ext[t, r] = cur[r]
        elif edge <= t < n_len - edge:
            for r in range(n_rows):  # out's rows are few cache lines at a time: t-major writes stay in L1
                out[r, t - edge] = cur[r]


def _odd_extension(x: np.ndarray, edge: int) -> np.ndarray:
    """Rows x (R, T) -> float64 (T + 2 * edge, R): transposed (time first) and extended as scipy's ``odd_ext``."""
    n_rows, t_len = x.shape
    ext = np.empty((t_len + 2 * edge, n_rows))
    for t in range(t_len):  # time outer: the R source rows are read a cache line at a time, ext written in order
        for r in range(n_rows):
            ext[edge + t, r] = x[r, t]
    for j in range(edge):
        for r in range(n_rows):
            ext[edge - 1 - j, r] = 2.0 * ext[edge, r] - ext[edge + j + 1, r]
            ext[edge + t_len + j, r] = 2.0 * ext[edge + t_len - 1, r] - ext[edge + t_len - 2 - j, r]
    return ext


def sosfiltfilt(x: np.ndarray, sos: np.ndarray, zi: np.ndarray, edge: int, out: np.ndarray) -> None:
    """scipy's ``sosfiltfilt(sos, x, axis=-1)`` (odd padding of `edge` samples; zi = ``sosfilt_zi(sos)``) of finite
    C-contiguous rows x (R, T), float32 or float64, with T > edge, into `out` (R, T), bit-identical: float64, or
    float32 rounded once from it (once `ready()`; `kernels.lowpass_filtfilt` hands it blocks of rows)."""
    ext = _KERNELS["extend"](x, edge)
    _KERNELS["sos"](ext, sos, zi, False, out, edge)
    _KERNELS["sos"](ext, sos, zi, True, out, edge)


# ------------------------------------------------------------------------------------ channel statistics


def _moments(x: np.ndarray, t_last: int, out: np.ndarray) -> None:
    """Per row of x (n, L): mean, std and mean |step| within runs of t_last values. One pass: each run is summed in
    x's precision (SIMD; numpy's own float32 sums are no better), run totals in float64; the variance is taken
    about the row's first value, so it does not cancel. (Two plain loops per run: one fused loop does not
    vectorise.)"""
    n, length = x.shape
    runs = length // t_last
    for i in range(n):
        row = x[i]
        shift = row[0]
        total, squares, steps = 0.0, 0.0, 0.0
        for q in range(runs):
            seg = row[q * t_last : (q + 1) * t_last]
            s1 = seg[0] - seg[0]  # zero in x's dtype
            s2, st = s1, s1
            for j in range(t_last):
                d = seg[j] - shift
                s1 += d
                s2 += d * d
            for j in range(1, t_last):
                st += abs(seg[j] - seg[j - 1])
            total += s1
            squares += s2
            steps += st
        mean = total / length
        out[i, 0] = mean + shift
        out[i, 1] = np.sqrt(max(squares / length - mean * mean, 0.0))
        out[i, 2] = steps / (runs * (t_last - 1)) if t_last > 1 else np.nan


def channel_moments(x: np.ndarray, t_last: int) -> np.ndarray:
    """For rows x (n, L) (each row a channel; steps taken within its runs of t_last values along time):
    float64 (n, 3) mean, std and mean absolute step (once `ready()`)."""
    out = np.empty((len(x), 3))
    _KERNELS["moments"](np.ascontiguousarray(x), t_last, out)
    return out
