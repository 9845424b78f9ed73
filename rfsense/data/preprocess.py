"""Per-modality signal preprocessing shared by training (applied once by the packer) and the runtime.

numpy/scipy only: `rfsense.deploy.runtime` imports this module without torch, and the packer runs it
over all 42,900 XRF55 samples, so everything is vectorised over the leading batch axis B.

Pipeline per modality (each step configurable in `PreprocessConfig`):

- wifi  (B, 270, 1000) amplitude: non-finite repair -> Hampel outlier removal along time
  -> zero-phase Butterworth low-pass (`sosfiltfilt`, fs=200 Hz) -> optional `resample_poly`.
- rfid  (B, 23, 148) wrapped phase: pi-ambiguity folding (unwrap 2*phase, halve) or plain unwrap
  -> missing-read repair in the unwrapped domain -> per-tag offset removal (median).
- mmwave (B, 17, 256, 128) heatmap: non-finite repair along the 17-frame axis
  -> sign-preserving log1p -> per-sample percentile clip and/or absolute clip.

Non-finite values are never propagated: up to `max_repair_fraction` of a sample's values are
interpolated along time; beyond that the sample's modality is reported unusable (`usable[b]` False)
and its output is zero-filled. Outputs are always finite float32.

Normalisation statistics (`NormAccumulator` -> `NormStats`) are fitted per channel on the training
split only, after preprocessing; export bakes them into the ONNX graph.

Throughput: `python benchmarks/bench_preprocess.py`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal

from rfsense.errors import ConfigError, DataError
from rfsense.modalities import MODALITIES, SHAPE_MEANING, SHAPES

__all__ = [
    "MmwavePrep",
    "NormAccumulator",
    "NormStats",
    "PreprocessConfig",
    "RfidPrep",
    "WifiPrep",
    "hampel",
    "output_shape",
    "preprocess",
    "repair_nonfinite",
]

_log = logging.getLogger(__name__)

# MAD -> standard deviation for Gaussian noise (1 / Phi^-1(3/4)); the usual Hampel constant.
_MAD_TO_SIGMA = 1.4826
# Rows per Hampel chunk: 15 sorted (32, 1000) float32 arrays are ~2 MB, which stays in cache;
# measured fastest among 16..256 rows on a 2-core box (see benchmarks/bench_preprocess.py).
_HAMPEL_CHUNK_ROWS = 32
_F32_MAX = float(np.finfo(np.float32).max)
# Floor for per-channel std: a constant channel (e.g. a missing receiver's zeros) must not divide by 0.
STD_EPS = 1e-6


# --------------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class WifiPrep:
    """WiFi CSI amplitude settings.

    hampel_window is the HALF-window k: each sample is compared with the median of the 2k+1 samples
    centred on it (k=7 -> 15 samples = 75 ms at 200 Hz, the 7-8 range used by xrf55 benchmarks).
    0 disables the Hampel step. Edges use reflected padding so every window is full.
    """

    hampel_window: int = 7
    hampel_sigmas: float = 3.0  # replace when |x - median| > sigmas * 1.4826 * MAD
    # 20 Hz keeps the torso/limb Doppler band of everyday actions and drops the per-packet noise floor;
    # None disables the filter.
    lowpass_hz: float | None = 20.0
    order: int = 4  # Butterworth order per pass; sosfiltfilt runs it twice (zero phase, 2x the dB)
    fs: float = 200.0  # XRF55 packet rate (one packet every 5000 us)
    # Off by default: the model's WiFi input is fixed at 1000 samples. When set, the output time axis
    # becomes `resample_to` samples (anti-aliased polyphase FIR, scipy.signal.resample_poly).
    resample_to: int | None = None
    # Subtract each channel's per-sample median: the static paths (scene, position, AGC level) set the
    # amplitude's level, the body's motion only its fluctuation. Off by default until measured more widely:
    # WiFi-only on the quick start (one seed, 12 epochs) it gave W 25.8% against 18.3% without.
    remove_static: bool = False

    def __post_init__(self) -> None:
        _require(self.hampel_window >= 0, "wifi.hampel_window", self.hampel_window, ">= 0")
        _require(self.hampel_sigmas > 0, "wifi.hampel_sigmas", self.hampel_sigmas, "> 0")
        _require(self.fs > 0, "wifi.fs", self.fs, "> 0")
        _require(self.order >= 1, "wifi.order", self.order, ">= 1")
        if self.lowpass_hz is not None:
            _require(
                0 < self.lowpass_hz < self.fs / 2,
                "wifi.lowpass_hz",
                self.lowpass_hz,
                f"in (0, fs/2 = {self.fs / 2})",
            )
        if self.resample_to is not None:
            _require(self.resample_to >= 1, "wifi.resample_to", self.resample_to, ">= 1 or null")


@dataclass(frozen=True)
class RfidPrep:
    """RFID phase settings.

    fix_jumps handles the reader's random 180-degree ambiguity by folding modulo pi: the phase is
    doubled (theta and theta+pi both map to 2*theta mod 2*pi), unwrapped, and halved. The result is
    continuous but defined up to a constant multiple of pi, which the offset removal makes irrelevant.
    The price: the true phase may move at most pi/2 between reads (plain unwrap allows pi); at 30 Hz
    and 922 MHz that is ~1.2 m/s radial tag speed.
    """

    unwrap: bool = True  # False: result re-wrapped into [0, 2*pi) (or [0, pi) with fix_jumps)
    remove_offset: bool = True  # subtract each tag's median phase (robust to a bad first read)
    fix_jumps: bool = True


@dataclass(frozen=True)
class MmwavePrep:
    """mmWave heatmap settings.

    log: sign(x) * log1p(|x|) -- monotone and finite for any real input (XRF55 heatmaps are
    non-negative magnitudes, where it is plain log1p), compressing the radar's large dynamic range.
    clip_percentile: per-sample upper clip at this percentile of the (log) heatmap, so rare saturated
    cells do not dominate; per sample because absolute gain varies between sessions. None disables.
    clip_max: absolute upper clip in output units (after log). None disables.
    """

    log: bool = True
    clip_percentile: float | None = 99.9
    clip_max: float | None = None

    def __post_init__(self) -> None:
        if self.clip_percentile is not None:
            _require(
                0 < self.clip_percentile <= 100, "mmwave.clip_percentile", self.clip_percentile, "in (0, 100]"
            )


@dataclass(frozen=True)
class PreprocessConfig:
    """All preprocessing settings; saved in run configs and export manifests via `to_dict`."""

    wifi: WifiPrep = field(default_factory=WifiPrep)
    rfid: RfidPrep = field(default_factory=RfidPrep)
    mmwave: MmwavePrep = field(default_factory=MmwavePrep)
    # Share of a sample's values (per modality) that may be non-finite and still be interpolated;
    # above it the modality is unusable for that sample (masked, output zeros).
    max_repair_fraction: float = 0.2

    def __post_init__(self) -> None:
        _require(
            0.0 <= self.max_repair_fraction <= 1.0,
            "max_repair_fraction",
            self.max_repair_fraction,
            "in [0, 1]",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able nested dict (dicts, floats, ints, bools, None)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, prefix: str = "") -> PreprocessConfig:
        """Build from a (partial) nested dict; missing keys keep their defaults.

        Args:
            d: e.g. `{"wifi": {"lowpass_hz": 15.0}, "max_repair_fraction": 0.1}`.
            prefix: dotted location used in error messages, e.g. "data.preprocess".

        Raises:
            ConfigError: unknown key (the message names it and the allowed ones) or wrong value type.
        """
        return _dataclass_from_dict(cls, d, prefix)


def _require(ok: bool, key: str, value: object, what: str) -> None:
    if not ok:
        raise ConfigError(f"preprocess {key} = {value!r}; expected {what}")


# Field types as written in the annotations above (strings under `from __future__ import annotations`).
_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "None": (),
}
_NESTED: dict[str, type] = {"WifiPrep": WifiPrep, "RfidPrep": RfidPrep, "MmwavePrep": MmwavePrep}


def _dataclass_from_dict(cls: type, d: Any, prefix: str) -> Any:
    where = prefix or "preprocess"
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise ConfigError(f"unknown key '{path}'; allowed: {', '.join(fields)}")
        ftype = str(fields[key].type)
        if ftype in _NESTED:
            kwargs[key] = _dataclass_from_dict(_NESTED[ftype], value, path)
            continue
        names = [t.strip() for t in ftype.split("|")]
        if value is None:
            if "None" not in names:
                raise ConfigError(f"'{path}' may not be null; expected {ftype}")
        else:
            allowed = tuple(t for n in names for t in _SCALAR_TYPES[n])
            # bool is an int subclass; only accept it where a bool is declared.
            if isinstance(value, bool) and "bool" not in names or not isinstance(value, allowed):
                raise ConfigError(f"'{path}' = {value!r} ({type(value).__name__}); expected {ftype}")
            if "float" in names and not isinstance(value, bool):
                value = float(value)
        kwargs[key] = value
    return cls(**kwargs)


def output_shape(modality: str, cfg: PreprocessConfig = PreprocessConfig()) -> tuple[int, ...]:
    """Per-sample shape after `preprocess` (wifi's time axis follows `cfg.wifi.resample_to`)."""
    _check_modality(modality)
    if modality == "wifi" and cfg.wifi.resample_to is not None:
        return (SHAPES["wifi"][0], cfg.wifi.resample_to)
    return SHAPES[modality]  # type: ignore[index]


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality '{modality}'; expected one of {', '.join(MODALITIES)}")


# --------------------------------------------------------------------------------------------------
# Non-finite repair


def _nonfinite_usable(x: np.ndarray, max_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(finite mask like x, usable bool[B]); usable = some finite value and bad share <= max_fraction.

    Values beyond float32's range count as non-finite: the model input is float32, where they would
    become inf. (The comparison is also False for NaN, so one pass covers both.)
    """
    if x.dtype.kind == "f" and x.dtype.itemsize > 4:
        finite = np.abs(x) <= _F32_MAX
    else:  # float16/32 cannot exceed the range (only inf); integers are always finite
        finite = np.isfinite(x)
    per_sample = finite.reshape(len(x), -1)
    n = per_sample.shape[1]
    n_finite = per_sample.sum(axis=1)
    usable = ((n - n_finite) <= max_fraction * n) & (n_finite > 0)
    return finite, usable


def _interp_rows(rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation of invalid entries of each row (N, T) from its valid ones; edge-hold outside.

    Every row must hold at least one valid entry. Vectorised: the previous/next valid index of each
    position comes from running max/min over the index grid, so there is no Python loop over rows.
    """
    n, t_len = rows.shape
    t = np.arange(t_len)
    prev = np.where(valid, t, -1)
    np.maximum.accumulate(prev, axis=1, out=prev)
    nxt = np.where(valid, t, t_len)[:, ::-1]
    nxt = np.minimum.accumulate(nxt, axis=1)[:, ::-1]
    prev = np.where(prev < 0, nxt, prev)  # leading gap: hold the first valid value
    nxt = np.where(nxt >= t_len, prev, nxt)  # trailing gap: hold the last valid value
    r = np.arange(n)[:, None]
    v0 = rows[r, prev]
    v1 = rows[r, nxt]
    span = nxt - prev
    w = (t - prev) / np.maximum(span, 1)
    return np.where(valid, rows, v0 + (v1 - v0) * w)


def _fill_rows(
    x: np.ndarray, finite: np.ndarray, usable: np.ndarray, time_axis: int, period: float | None = None
) -> np.ndarray:
    """In place on float64 `x`: interpolate non-finite values of usable samples along `time_axis` (>= 1).

    Rows (one channel/pixel over time) with no finite value at all get the sample's finite median.
    With `period`, rows are unwrapped before interpolating and repaired values wrapped to [0, period).
    """
    need = usable & ~finite.reshape(len(x), -1).all(axis=1)
    ax = time_axis - 1  # axis within one sample
    for b in np.flatnonzero(need):  # only damaged samples; the healthy path stays fully vectorised
        xs = np.moveaxis(x[b], ax, -1)
        fs = np.moveaxis(finite[b], ax, -1)
        rows = np.ascontiguousarray(xs).reshape(-1, xs.shape[-1])
        valid = np.ascontiguousarray(fs).reshape(-1, xs.shape[-1])
        bad = ~valid.all(axis=1)
        empty = bad & ~valid.any(axis=1)
        if empty.any():
            rows[empty] = np.median(x[b][finite[b]])
            valid[empty] = True
        if period is None:
            rows[bad] = _interp_rows(rows[bad], valid[bad])
        else:
            unwrapped = np.unwrap(_hold_fill(rows[bad], valid[bad]), period=period, axis=-1)
            rows[bad] = np.where(valid[bad], rows[bad], np.mod(_interp_rows(unwrapped, valid[bad]), period))
        xs[...] = rows.reshape(xs.shape)  # xs is a view into x[b]
    return x


def repair_nonfinite(
    x: npt.ArrayLike, max_fraction: float, *, time_axis: int = -1, period: float | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Repair NaN/Inf by linear interpolation along time, per channel.

    Args:
        x: (B, C, T) or (B, ...) real array; `time_axis` (default last) is the time-like axis
            (use 1 for mmWave's 17 frames).
        max_fraction: largest share of a sample's values that may be repaired.
        time_axis: axis of `x` interpolated along (not 0).
        period: for circular data (RFID phase: 2*pi) interpolate along the unwrapped signal, so a
            gap between 6.2 and 0.1 rad is bridged near 0, not through pi; repaired values are
            wrapped into [0, period). Finite values are never changed.

    Returns:
        (repaired float64 copy of x, usable bool[B]). Values beyond float32's range count as
        non-finite (they would be inf in the float32 model input). A sample whose non-finite share exceeds
        `max_fraction` (or that has no finite value) is unusable and returned zero-filled. A channel
        with no finite value in a usable sample is filled with the sample's median.
    """
    x = np.array(x, dtype=np.float64)  # always a copy
    if x.ndim < 2:
        raise ValueError(f"repair_nonfinite needs a batch (B, C, ...); got shape {x.shape}")
    axis = time_axis % x.ndim
    if axis == 0:
        raise ValueError("time_axis must not be the batch axis 0")
    finite, usable = _nonfinite_usable(x, max_fraction)
    _fill_rows(x, finite, usable, axis, period)
    x[~usable] = 0.0
    return x, usable


# --------------------------------------------------------------------------------------------------
# Per-modality kernels (finite input; float32 or float64 output)


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


def _wifi(x: np.ndarray, cfg: WifiPrep) -> np.ndarray:
    """(B, 270, T) amplitude -> (B, 270, T or resample_to)."""
    y = hampel(x, cfg.hampel_window, cfg.hampel_sigmas)
    if cfg.lowpass_hz is not None:
        sos = _butter_lowpass(cfg.order, cfg.lowpass_hz, cfg.fs)
        y = signal.sosfiltfilt(sos, y, axis=-1)
    if cfg.resample_to is not None and cfg.resample_to != y.shape[-1]:
        g = np.gcd(cfg.resample_to, y.shape[-1])
        # padtype='line' avoids the ringing a zero-padded edge would cause on an offset amplitude.
        y = signal.resample_poly(y, cfg.resample_to // g, y.shape[-1] // g, axis=-1, padtype="line")
    if cfg.remove_static:
        y = y - np.median(y, axis=-1, keepdims=True)
    return y


_SOS_CACHE: dict[tuple[int, float, float], np.ndarray] = {}


def _butter_lowpass(order: int, cutoff: float, fs: float) -> np.ndarray:
    key = (order, cutoff, fs)
    if key not in _SOS_CACHE:
        _SOS_CACHE[key] = signal.butter(order, cutoff, btype="low", fs=fs, output="sos")
    return _SOS_CACHE[key]


def _hold_fill(x: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Non-finite entries of (N, T) rows replaced by the previous finite one (the next at the start)."""
    t_len = x.shape[-1]
    t = np.arange(t_len)
    prev = np.where(finite, t, -1)
    np.maximum.accumulate(prev, axis=-1, out=prev)
    nxt = np.minimum.accumulate(np.where(finite, t, t_len)[..., ::-1], axis=-1)[..., ::-1]
    idx = np.where(prev < 0, nxt, prev)
    idx = np.minimum(idx, t_len - 1)  # rows with no finite value: any index, filled later
    return np.take_along_axis(x, idx, axis=-1)


def _rfid(x: np.ndarray, finite: np.ndarray, cfg: RfidPrep) -> np.ndarray:
    """(B, 23, 148) wrapped phase (radians) -> processed phase.

    Missing reads are repaired in the unwrapped domain: linear interpolation between the wrapped
    values 6.2 and 0.1 would pass through pi, whereas after unwrapping it is a short step. Like any
    unwrap, this needs the phase to change by less than pi (pi/2 with fix_jumps) across the gap.
    """
    x = _hold_fill(x, finite)  # held values add zero-length steps, so unwrap sees only real reads
    period = np.pi if cfg.fix_jumps else 2 * np.pi
    # Unwrap even when cfg.unwrap is False: the repair needs the continuous phase; re-wrapped below.
    y = np.unwrap(2.0 * x, axis=-1) / 2.0 if cfg.fix_jumps else np.unwrap(x, axis=-1)
    if not finite.all():
        rows = y.reshape(-1, y.shape[-1])
        valid = finite.reshape(rows.shape)
        bad = ~valid.all(axis=1)
        empty = ~valid.any(axis=1)
        rows[empty] = 0.0  # a tag never read in a usable sample: flat line (0 after offset removal)
        valid = valid.copy()
        valid[empty] = True
        rows[bad] = _interp_rows(rows[bad], valid[bad])
    if not cfg.unwrap:
        y = np.mod(y, period)
    if cfg.remove_offset:
        y = y - np.median(y, axis=-1, keepdims=True)
    return y


def _mmwave(x: np.ndarray, cfg: MmwavePrep) -> np.ndarray:
    """(B, 17, 256, 128) heatmap -> compressed, clipped heatmap (float32).

    One sample (2.2 MB in float32) at a time with in-place operations: the passes then run in
    cache, measured ~1.7x faster than whole-batch passes at B=32.
    """
    out = np.empty(x.shape, np.float32)
    if cfg.clip_percentile is not None and cfg.clip_percentile < 100:
        n = out[0].size
        # Nearest-rank percentile via np.partition: one O(n) selection per sample, no interpolation,
        # so the clip level is always an actual value of the sample.
        kth: int | None = int(round(cfg.clip_percentile / 100 * (n - 1)))
    else:
        kth = None
    for b in range(len(x)):
        y = out[b]
        y[...] = x[b]
        if cfg.log:
            a = np.abs(y)
            np.log1p(a, out=a)
            np.copysign(a, y, out=y)
        if kth is not None:
            hi = np.partition(y.ravel(), kth)[kth]
            np.minimum(y, hi, out=y)
        if cfg.clip_max is not None:
            np.minimum(y, np.float32(cfg.clip_max), out=y)
    return out


# --------------------------------------------------------------------------------------------------
# Public entry point


def _as_batch(modality: str, x: npt.ArrayLike) -> np.ndarray:
    _check_modality(modality)
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{modality} batch has dtype {x.dtype}; expected a real float (or integer) array")
    expected = SHAPES[modality]  # type: ignore[index]
    if modality == "mmwave" and x.ndim == 5 and x.shape[1] == 1:
        x = x[:, 0]  # XRF55 files carry a leading 1: (1, 17, 256, 128)
    if x.shape[1:] != expected:
        raise ValueError(
            f"{modality} batch has shape {x.shape}; expected (B, {', '.join(map(str, expected))})"
            f" = B x {SHAPE_MEANING[modality]}"  # type: ignore[index]
            + (" (or (B, 1, 17, 256, 128))" if modality == "mmwave" else "")
        )
    return x


def preprocess(
    modality: str, x: npt.ArrayLike, cfg: PreprocessConfig = PreprocessConfig()
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Preprocess a batch of one modality; deterministic, per-sample independent.

    Args:
        modality: "mmwave", "wifi" or "rfid".
        x: (B, *SHAPES[modality]) real array of any float dtype; mmwave may be (B, 1, 17, 256, 128).
        cfg: settings; the same object must be used in training and deployment (manifest).

    Returns:
        (float32 (B, *output_shape(modality, cfg)), usable bool[B]). Always finite; rows of
        unusable samples (too many non-finite values) are zeros.

    Raises:
        ValueError: unknown modality, wrong shape (message names both shapes) or non-real dtype.
    """
    x = _as_batch(modality, x)
    b = len(x)
    out_shape = (b, *output_shape(modality, cfg))
    if b == 0:
        return np.zeros(out_shape, np.float32), np.zeros(0, bool)

    if modality == "mmwave":
        # Interpolate along the 17 frames; float32 is enough for a heatmap and halves the memory
        # of a (32, 17, 256, 128) batch, so mmwave skips the float64 copy unless repair is needed.
        finite, usable = _nonfinite_usable(x, cfg.max_repair_fraction)
        if finite.all():
            xr = x
        else:
            xr = _fill_rows(x.astype(np.float64), finite, usable, time_axis=1)
            xr[~usable] = 0.0
        y = _mmwave(xr, cfg.mmwave)
    elif modality == "wifi":
        xr, usable = repair_nonfinite(x, cfg.max_repair_fraction)
        y = _wifi(xr, cfg.wifi)
    else:
        xf = np.array(x, dtype=np.float64)
        finite, usable = _nonfinite_usable(xf, cfg.max_repair_fraction)
        finite[~usable] = True  # unusable rows: no repair needed, zeroed below
        xf[~usable] = 0.0
        y = _rfid(xf, finite, cfg.rfid)

    out = np.asarray(y, dtype=np.float32)
    # Finite float64 values beyond float32's range become inf here; never hand those on.
    overflow = ~np.isfinite(out.reshape(b, -1)).all(axis=1)
    if overflow.any():
        _log.warning(
            "%s: %d sample(s) overflow float32 after preprocessing; marked unusable", modality, overflow.sum()
        )
        usable = usable & ~overflow
    if not usable.all():
        out[~usable] = 0.0
        _log.debug(
            "%s: %d of %d sample(s) unusable (non-finite share > %s)",
            modality,
            (~usable).sum(),
            b,
            cfg.max_repair_fraction,
        )
    return out, usable


# --------------------------------------------------------------------------------------------------
# Normalisation statistics


@dataclass
class NormStats:
    """Per-channel mean/std per modality (channel = axis 1: 17 frames, 270 links, 23 tags), float64."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    def apply(self, modality: str, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """(x - mean) / std broadcast over channel axis 1 of a (B, C, ...) batch; float32."""
        if modality not in self.mean:
            raise KeyError(f"no normalisation statistics for '{modality}'; have {', '.join(self.mean)}")
        x = np.asarray(x)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return ((x - self.mean[modality].reshape(shape)) / self.std[modality].reshape(shape)).astype(
            np.float32
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an .npz of plain float64 arrays (keys `mean__<mod>`, `std__<mod>`), loadable without pickle."""
        arrays = {f"mean__{m}": np.asarray(v, np.float64) for m, v in self.mean.items()}
        arrays.update({f"std__{m}": np.asarray(v, np.float64) for m, v in self.std.items()})
        with open(path, "wb") as f:  # a file object stops numpy from appending ".npz" to the name
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NormStats:
        """Read what `save` wrote.

        Raises:
            DataError: missing or malformed file, or mean/std keys that do not pair up.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as err:
            raise DataError(
                f"normalisation stats {path}: cannot read ({err}); expected an .npz from NormStats.save"
            ) from err
        mean = {k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith("mean__")}
        std = {k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith("std__")}
        if set(mean) != set(std) or len(mean) + len(std) != len(arrays) or not mean:
            raise DataError(
                f"normalisation stats {path}: keys {sorted(arrays)}; expected matching mean__<modality> and "
                "std__<modality> arrays"
            )
        return cls(mean=mean, std=std)


class NormAccumulator:
    """Streaming per-channel mean/std over batches of the TRAINING split only.

    Merges exact per-batch mean and sum of squared deviations with Chan et al.'s parallel update,
    in float64, so the result matches np.mean/np.std (ddof=0) of the concatenation without the
    cancellation of a sum/sum-of-squares formula.
    """

    def __init__(self) -> None:
        self._n: dict[str, np.ndarray] = {}
        self._mean: dict[str, np.ndarray] = {}
        self._m2: dict[str, np.ndarray] = {}

    def update(self, modality: str, x: npt.ArrayLike, usable: npt.ArrayLike | None = None) -> None:
        """Add a (B, C, ...) batch of preprocessed data; samples with usable[b] False are skipped."""
        _check_modality(modality)
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"{modality} batch has shape {x.shape}; expected (B, C, ...)")
        if usable is not None:
            x = x[np.asarray(usable, dtype=bool)]
        c = x.shape[1]
        if modality not in self._n:
            self._n[modality] = np.zeros(c)
            self._mean[modality] = np.zeros(c)
            self._m2[modality] = np.zeros(c)
        elif self._mean[modality].shape[0] != c:
            raise ValueError(
                f"{modality} batch has {c} channels; earlier batches had {self._mean[modality].shape[0]}"
            )
        if len(x) == 0:
            return
        axes = (0, *range(2, x.ndim))
        nb = float(x.size // c)
        mb = x.mean(axis=axes, dtype=np.float64)
        d = x - mb.reshape((1, -1) + (1,) * (x.ndim - 2))
        m2b = np.square(d).sum(axis=axes, dtype=np.float64)
        na = self._n[modality]
        n = na + nb
        delta = mb - self._mean[modality]
        self._mean[modality] = self._mean[modality] + delta * (nb / n)
        self._m2[modality] = self._m2[modality] + m2b + delta**2 * (na * nb / n)
        self._n[modality] = n

    def result(self) -> NormStats:
        """NormStats for every modality seen; std = max(population std, STD_EPS).

        A modality that was updated but never with a usable sample (e.g. a data set without that
        sensor) gets mean 0 / std 1, the identity, and a warning: the model never sees it anyway.
        """
        mean, std = {}, {}
        for m in self._n:
            n = self._n[m]
            if not (n > 0).all():
                _log.warning(
                    "no usable training samples for '%s'; using identity normalisation (mean 0, std 1)", m
                )
                mean[m], std[m] = np.zeros_like(n), np.ones_like(n)
                continue
            mean[m] = self._mean[m].copy()
            std[m] = np.maximum(np.sqrt(self._m2[m] / n), STD_EPS)
        return NormStats(mean=mean, std=std)
