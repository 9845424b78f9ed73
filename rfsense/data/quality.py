"""What makes a stream usable: one definition, applied by the packer to training data and by the runtime
to live streams (numpy only).

`assess(modality, batch, cfg)` gives each sample of one modality a status and its reasons:

- ``ok``: passed every check, used as it is;
- ``degraded``: usable, but whole units of it carry no signal (a WiFi receiver whose 90 channels are all
  flat, e.g. a one-NIC capture; RFID tags that never change, e.g. lost tags); the reason says which;
- ``repaired``: a few NaN/Inf values in short gaps were filled by linear interpolation along time
  (RFID phase along the unwrapped phase, so a gap across a 2*pi wrap is not filled through pi);
- ``implausible``: no sensor of this kind produces these values (check 0); zero-filled and masked;
- ``failed``: unusable for this sample; its values are zero-filled and the modality is masked.

Checks, in order (thresholds in `QualityConfig`; per sample and modality):

0. physical plausibility, from the data contract (status ``implausible``, the other checks are skipped):
   - dtype: the contract's streams are floating point (amplitude, radians, magnitude). An integer or boolean
     array is refused as a whole: it holds raw counts (ADC samples, Impinj's 0-4095 phase units) or a
     quantised copy of unknown scale. The rule is explicit, not a guess: convert in your own code
     (``x.astype(np.float64)``) when the integers already are in the contract's units;
   - WiFi amplitude and mmWave magnitude are |.| >= 0: a negative value is implausible;
   - RFID phase lies inside one of the ranges readers report, [0, 2*pi) or [-pi, pi);
   - a finite value above ``max_wifi_amplitude`` / ``max_mmwave_magnitude`` (1e20 spikes, raw counts, bit
     flips; a value beyond float32's range counts too, unless the bound itself is larger);
1. NaN/Inf (values beyond float32's range count too: they would be inf in the model input): the fraction
   of values, and the longest gap along time in any channel; within both limits the gaps are repaired,
   beyond either the sample fails;
2. all zeros (a dead sensor or a zero-filled file);
3. flat line: a channel whose std over time is below ``flat_std``; fails when too many channels are flat
   (a frozen stream). mmWave cells that are zero in every frame are empty background and not counted;
4. saturation: the fraction of values sitting exactly at the sample's maximum (a clipping ADC or a capped
   heatmap); only the top is checked, the bottom of an amplitude or heatmap stream is legitimately full of
   values at its minimum (zeros, the noise floor);
5. valid reads: RFID reads that are NaN/Inf *or* repeat the previous read of the same tag exactly (readers
   and resamplers hold the last value when a read is missed), WiFi packets dropped as an all-NaN column,
   mmWave frames that are entirely NaN/Inf.

Per-sample axes follow `rfsense.modalities.TIME_AXIS`: mmWave (17 frames, 256 range, 128 Doppler) has time
on axis 0 and a "channel" is a range-Doppler cell; WiFi (270 channels, 1000 packets) and RFID (23 tags, 148
reads) have time last.

Speed: a clean sample is checked in its own layout and dtype, without a copy (the runtime calls this on
every sample): per-sample and per-channel extremes decide checks 0-4 (a channel's std is bounded by its range,
so the exact std is computed only for the rare channels the bounds leave undecided); only samples holding
NaN/Inf take the float64 repair path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rfsense.config import Fraction, NonNegativeFloat, PositiveFloat, schema
from rfsense.modalities import SHAPES, TIME_AXIS, Modality

__all__ = [
    "ASSESSED", "STATUSES", "USABLE", "Assessment", "QualityConfig", "assess", "repair_nonfinite", "repairable",
    "time_last",
]

STATUSES = ("ok", "degraded", "repaired", "implausible", "failed", "absent")
ASSESSED = STATUSES[:-1]  # what `assess` gives; "absent" is the caller's (no stream at all)
USABLE = ("ok", "degraded", "repaired")

_F32_MAX = float(np.finfo(np.float32).max)
_CHANNEL = {"mmwave": "range-Doppler cells", "wifi": "channels", "rfid": "tags"}
_READ = {"mmwave": "frames", "wifi": "packets", "rfid": "reads"}
# Modalities whose all-zero channels are background (radar heatmap cells), not dead channels.
_ZERO_IS_BACKGROUND = {"mmwave"}
_WIFI_RX_CHANNELS = 90  # 3 antennas x 30 subcarriers per receiver


@schema
class QualityConfig:
    """Thresholds of the stream checks; in the run config (data.quality), the pack and the export manifest.

    Fractions are in [0, 1] and apply per sample and per modality.
    """

    # Above this fraction of NaN/Inf values the sample fails: interpolation would invent too much of it.
    max_nonfinite_fraction: Fraction = 0.2
    # Longest run of consecutive NaN/Inf time steps in any one channel, as a fraction of the window
    # (WiFi 1000 packets, RFID 148 reads, mmWave 17 frames). Only short gaps are safe to interpolate:
    # 0.1 is 0.5 s of a 5 s action, i.e. one mmWave frame (1/17 = 0.06) but not two (0.12).
    max_gap_fraction: Fraction = 0.1
    # A channel whose std over time is below this is flat. Absolute, in the units of the raw stream
    # (amplitude, radians, heatmap power); real sensor noise is orders of magnitude above 1e-6.
    flat_std: NonNegativeFloat = 1e-6
    # The sample fails when more than this fraction of its channels is flat (a frozen stream). Single dead
    # channels (a broken tag, a null subcarrier) are tolerated, and so is a one-NIC WiFi capture: one of
    # three receivers leaves 180/270 channels zero (0.67), reported as degraded, not dead.
    max_flat_channel_fraction: Fraction = 0.7
    # The sample fails when more than this fraction of its values sits exactly at its maximum.
    max_saturated_fraction: Fraction = 0.2
    # The sample fails when fewer than this fraction of its reads is valid (see module docstring, check 5).
    # XRF55 RFID nominally gets 148-150 of 150 reads, so 0.5 means a reader that lost half its reads.
    min_valid_read_fraction: Fraction = 0.5
    # Check 0 (physical plausibility): raw values above these are implausible. Generous on purpose, they
    # catch what no sensor produces (1e20 spikes, raw counts, bit flips), not unusual scenes: RSSI-scaled
    # Intel 5300 amplitudes stay below 100 and the other NICs' int16 I/Q below 5e4 (the vendored captures:
    # 37-700); DCA1000 range-Doppler magnitudes (int16 ADC, window gain removed) stay below 1e5.
    max_wifi_amplitude: PositiveFloat = 1e6
    max_mmwave_magnitude: PositiveFloat = 1e9


@dataclass
class Assessment:
    """The outcome of `assess` for a batch of one modality.

    values: (B, *SHAPES[m]) with repairs applied and unusable samples zero-filled, float64 for a float64 input
        and float32 otherwise; the input array itself when nothing had to change (treat it as read-only);
    status: (B,) str, one of ASSESSED; reasons: per sample, human-readable, each prefixed by the modality.
    """

    values: npt.NDArray[np.float64]
    status: npt.NDArray[np.str_]
    reasons: list[list[str]]

    @property
    def usable(self) -> npt.NDArray[np.bool_]:
        return np.isin(self.status, USABLE)


def _pct(frac: float) -> str:
    """Percent for messages: whole numbers normally, one decimal below 10% so 0.4% does not read 0%."""
    p = 100.0 * frac
    return f"{p:.1f}%" if 0 < p < 10 else f"{p:.0f}%"


def time_last(modality: Modality, x: np.ndarray) -> np.ndarray:
    """(B, *SHAPES[m]) -> (B, channels, T) (a view when the layout allows)."""
    t_axis = TIME_AXIS[modality] + 1
    moved = np.moveaxis(x, t_axis, -1)
    return moved.reshape(x.shape[0], -1, x.shape[t_axis])


def _from_time_last(modality: Modality, series: np.ndarray) -> np.ndarray:
    """Inverse of `time_last`: (B, channels, T) -> (B, *SHAPES[m])."""
    shape = list(SHAPES[modality])
    t_axis = TIME_AXIS[modality]
    t_len = shape.pop(t_axis)
    moved = series.reshape(series.shape[0], *shape, t_len)
    return np.ascontiguousarray(np.moveaxis(moved, -1, t_axis + 1))


def _longest_run(bad: np.ndarray) -> np.ndarray:
    """Longest run of True along the last axis: bool (..., T) -> int (...)."""
    c = np.cumsum(bad, axis=-1, dtype=np.int32)
    # Value of the running count at the last False, carried forward; subtracting it restarts each run.
    reset = np.maximum.accumulate(np.where(bad, 0, c), axis=-1)
    return (c - reset).max(axis=-1, initial=0)


def _interp_rows(rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation of invalid entries of each row (N, T) from its valid ones; edge-hold outside.

    Every row must hold at least one valid entry. Vectorised: the previous/next valid index of each
    position comes from running max/min over the index grid, so there is no Python loop over rows.
    """
    n, t_len = rows.shape
    t = np.arange(t_len)
    prev = np.where(valid, t, -1)
    np.maximum.accumulate(prev, axis=1, out=prev)
    nxt = np.minimum.accumulate(np.where(valid, t, t_len)[:, ::-1], axis=1)[:, ::-1]
    prev = np.where(prev < 0, nxt, prev)  # leading gap: hold the first valid value
    nxt = np.where(nxt >= t_len, prev, nxt)  # trailing gap: hold the last valid value
    r = np.arange(n)[:, None]
    v0, v1 = rows[r, prev], rows[r, nxt]
    w = (t - prev) / np.maximum(nxt - prev, 1)
    return np.where(valid, rows, v0 + (v1 - v0) * w)


def _hold_fill(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid entries of (N, T) rows replaced by the previous valid one (the next at the start)."""
    t_len = x.shape[-1]
    t = np.arange(t_len)
    prev = np.maximum.accumulate(np.where(valid, t, -1), axis=-1)
    nxt = np.minimum.accumulate(np.where(valid, t, t_len)[..., ::-1], axis=-1)[..., ::-1]
    idx = np.minimum(np.where(prev < 0, nxt, prev), t_len - 1)
    return np.take_along_axis(x, idx, axis=-1)


def _repair(series: np.ndarray, valid: np.ndarray, period: float | None) -> np.ndarray:
    """Interpolate the invalid entries of (B, C, T) samples along T; a channel with nothing valid gets its
    sample's median. Circular data (`period`) is interpolated along its unwrapped values, result wrapped."""
    b, c, t_len = series.shape
    rows = series.reshape(-1, t_len).copy()
    ok = valid.reshape(-1, t_len).copy()
    empty = ~ok.any(axis=1)
    if empty.any():
        medians = np.array([np.median(s[v]) for s, v in zip(series, valid, strict=True)])
        rows[empty] = np.repeat(medians, c)[empty, None]
        ok[empty] = True
    bad = ~ok.all(axis=1)
    if period is None:
        rows[bad] = _interp_rows(rows[bad], ok[bad])
    else:
        unwrapped = np.unwrap(_hold_fill(rows[bad], ok[bad]), period=period, axis=-1)
        rows[bad] = np.where(ok[bad], rows[bad], np.mod(_interp_rows(unwrapped, ok[bad]), period))
    return rows.reshape(b, c, t_len)


def _nonfinite_extent(finite: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample of a (B, C, T) finite mask: share of bad values, longest bad run, the channel holding it."""
    bad_frac = 1.0 - finite.mean(axis=(1, 2))
    gaps = np.zeros(len(finite), dtype=np.int64)
    where = np.zeros(len(finite), dtype=np.int64)
    damaged = np.flatnonzero(bad_frac > 0)
    if damaged.size:
        runs = _longest_run(~finite[damaged])  # (k, C)
        gaps[damaged], where[damaged] = runs.max(axis=1), runs.argmax(axis=1)
    return bad_frac, gaps, where


def repairable(lost: np.ndarray, cfg: QualityConfig | None = None) -> npt.NDArray[np.bool_]:
    """Whether check 1 would repair samples whose (B, C, T) values are missing at `lost` (else: failed)."""
    cfg = cfg or QualityConfig()
    bad_frac, gaps, _ = _nonfinite_extent(~lost)
    return (bad_frac <= cfg.max_nonfinite_fraction) & (gaps <= cfg.max_gap_fraction * lost.shape[-1])


def repair_nonfinite(
    modality: Modality, x: np.ndarray, cfg: QualityConfig | None = None, period: float | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Check 1 alone (NaN/Inf), on any (B, *SHAPES[m]) batch, raw or preprocessed: samples within both limits are
    interpolated along time (circular values with `period`), the others zero-filled and not usable.

    Returns (float64 values, usable bool[B]). Used where the other checks do not apply (preprocessed arrays).
    """
    cfg = cfg or QualityConfig()
    raw = np.array(time_last(modality, np.asarray(x)), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        finite = np.abs(raw) <= _F32_MAX
    usable = repairable(~finite, cfg)
    fix = np.flatnonzero(usable & ~finite.all(axis=(1, 2)))
    if fix.size:
        raw[fix] = _repair(raw[fix], finite[fix], period)
    raw[~usable] = 0.0
    return _from_time_last(modality, raw), usable


def _read_validity(modality: Modality, raw: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Fraction of valid reads per sample of (B, C, T) raw values (see check 5)."""
    if modality == "rfid":
        repeat = np.zeros_like(finite)
        with np.errstate(invalid="ignore"):
            repeat[..., 1:] = (raw[..., 1:] == raw[..., :-1]) & finite[..., 1:]
        return (finite & ~repeat).mean(axis=(1, 2))
    return 1.0 - (~finite.any(axis=1)).mean(axis=1)  # a dropped packet/frame: no finite value in it


def _dead_units(modality: Modality, flat: np.ndarray) -> str | None:
    """Reason for a degraded sample from its flat channels (C,), or None: WiFi receivers, RFID tags."""
    if modality == "wifi":
        dead = [r + 1 for r in range(flat.size // _WIFI_RX_CHANNELS)
                if flat[r * _WIFI_RX_CHANNELS : (r + 1) * _WIFI_RX_CHANNELS].all()]
        if dead:
            rx = " and ".join(f"rx{r}" for r in dead)
            return f"wifi: {rx} give{'s' if len(dead) == 1 else ''} no signal ({len(dead) * 90}/270 channels flat)"
    elif modality == "rfid" and flat.any():
        tags = np.flatnonzero(flat)
        shown = ", ".join(str(t) for t in tags[:5]) + (", ..." if tags.size > 5 else "")
        return f"rfid: {tags.size}/23 tags never change (lost or blocked tags: {shown})"
    return None



# The ranges RFID readers report phase in (radians); float32 rounding of pi and 2*pi is tolerated.
_RFID_PHASE_RANGES = ((0.0, 2 * np.pi), (-np.pi, np.pi))
_PHASE_TOL = 1e-5
_UNITS = {"mmwave": "heatmap magnitude", "wifi": "CSI amplitude", "rfid": "phase in radians"}


def _dtype_reason(modality: Modality, dtype: np.dtype) -> str:
    return (f"{modality}: {dtype} array; the contract's streams are floating point ({_UNITS[modality]}), "
            "and integers are raw counts or quantised data of unknown scale: convert explicitly "
            "(x.astype(float)) when the values already are in these units")


def _physical(modality: Modality, lo: np.ndarray, hi: np.ndarray, cfg: QualityConfig) -> list[list[str]]:
    """Check 0 on each sample's finite extremes (float64 (B,); lo > hi when it has no finite value):
    the reasons a sample is implausible, an empty list when it is not."""
    out: list[list[str]] = [[] for _ in range(len(lo))]
    if modality == "rfid":
        inside = np.zeros(len(lo), dtype=bool)
        for a, b in _RFID_PHASE_RANGES:
            inside |= (lo >= a - _PHASE_TOL) & (hi <= b + _PHASE_TOL)
        for i in np.flatnonzero(~inside & (lo <= hi)):
            out[i].append(f"rfid: phase spans [{lo[i]:.4g}, {hi[i]:.4g}] rad, inside neither range readers report, "
                          "[0, 2pi) or [-pi, pi) (wrong units or corrupt data)")
        return out
    wifi = modality == "wifi"
    what, bound = ("amplitude", cfg.max_wifi_amplitude) if wifi else ("magnitude", cfg.max_mmwave_magnitude)
    for i in np.flatnonzero(lo < 0):
        out[i].append(f"{modality}: negative {what} {lo[i]:.3g} ({'|CSI| amplitude' if wifi else 'a heatmap magnitude'} "
                      "is >= 0: a signed, phase or dB stream?)")
    for i in np.flatnonzero(np.maximum(hi, -lo) > bound):
        out[i].append(f"{modality}: {what} {max(hi[i], -lo[i]):.3g} above {bound:g}, more than any "
                      f"{'WiFi NIC reports' if wifi else 'radar heatmap holds'} (a spike, raw counts or corrupt data)")
    return out


def _flat_channels(modality: Modality, values: np.ndarray, rng: np.ndarray, flat_std: float) -> np.ndarray:
    """Channels whose std over time is below `flat_std`: bool (B, C) from each channel's range (max - min).

    std <= range / 2 and std >= range / sqrt(2 T) for any T values, so the range decides almost every
    channel; the exact float64 std is computed only for those it leaves undecided.
    """
    n_time = values.shape[TIME_AXIS[modality] + 1]
    flat = rng < 2.0 * flat_std
    unsure = ~flat & (rng < np.sqrt(2.0 * n_time) * flat_std)
    if unsure.any():
        rows = np.flatnonzero(unsure.any(axis=1))
        series = time_last(modality, values[rows])  # (k, C, T)
        k, c = np.nonzero(unsure[rows])
        flat[rows[k], c] = series[k, c].astype(np.float64).std(axis=-1) < flat_std
    return flat


def _extremes(x: np.ndarray, t_axis: int) -> tuple[np.ndarray, ...]:
    """Per-channel (B, C) and per-sample (B,) maxima and minima of (B, *SHAPES[m]) values along `t_axis`, float64.

    A sample's extremes are those of its channels' (NaN propagates through both): two passes over the data, not
    four."""
    n = len(x)
    with np.errstate(invalid="ignore"):
        cmax = x.max(axis=t_axis).reshape(n, -1).astype(np.float64)
        cmin = x.min(axis=t_axis).reshape(n, -1).astype(np.float64)
    return cmax, cmin, cmax.max(axis=1), cmin.min(axis=1)


def _at_max_fraction(values: np.ndarray, t_axis: int, cmax: np.ndarray, vmax: np.ndarray) -> np.ndarray:
    """Fraction of each sample's values equal to its maximum `vmax` (B,), counted only in the channels whose
    maximum `cmax` (B, C) reaches it: no other channel can hold such a value (one channel, on a clean sample)."""
    n = len(values)
    out = np.zeros(n)
    for i in range(n):
        chans = np.flatnonzero(cmax[i] == vmax[i])
        if chans.size == 0:  # NaN maximum: nothing equals it
            continue
        v = values[i]
        # a view with time on axis 0 (mmWave) or 1 (time last) and the channels flattened on the other
        series = v.reshape(v.shape[0], -1) if t_axis == 1 else v.reshape(-1, v.shape[-1])
        picked = np.take(series, chans, axis=1 if t_axis == 1 else 0)
        out[i] = np.count_nonzero(picked == vmax[i].astype(values.dtype)) / v.size
    return out


def assess(modality: Modality, x: npt.ArrayLike, cfg: QualityConfig | None = None) -> Assessment:
    """Check, repair and classify a batch of one modality (see the module docstring).

    Args:
        modality: "mmwave", "wifi" or "rfid".
        x: (B, *SHAPES[modality]) real array; never modified. Integer and boolean arrays are implausible
            (check 0); float16 is read as float32.
        cfg: thresholds (default `QualityConfig()`).

    Raises:
        ValueError: wrong shape (callers check shapes first and report them as a failed stream).
    """
    cfg = cfg or QualityConfig()
    x = np.asarray(x)
    if x.shape[1:] != SHAPES[modality]:
        raise ValueError(f"{modality} batch has shape {x.shape}; expected (B, {SHAPES[modality]})")
    n = len(x)
    status = np.full(n, "ok", dtype="<U11")
    reasons: list[list[str]] = [[] for _ in range(n)]
    if x.dtype.kind != "f":
        status[:] = "implausible"
        return Assessment(np.zeros(x.shape, np.float32), status, [[_dtype_reason(modality, x.dtype)] for _ in range(n)])
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32 if x.dtype.itemsize < 4 else np.float64)
    if n == 0:
        return Assessment(np.zeros(x.shape, x.dtype), status, reasons)
    values = x  # copied on the first change: a clean batch is returned as it came
    axes = tuple(range(1, x.ndim))
    t_axis = TIME_AXIS[modality] + 1
    cmax, cmin, vmax, vmin = _extremes(x, t_axis)
    # Samples with NaN/Inf or values beyond float32 (NaN propagates through max/min, so the test is False).
    damaged = ~((np.abs(vmax) <= _F32_MAX) & (np.abs(vmin) <= _F32_MAX))
    unit = _CHANNEL[modality]
    n_time = x.shape[TIME_AXIS[modality] + 1]

    # 0. Physical plausibility on the finite values of each sample.
    lo, hi = vmin.copy(), vmax.copy()
    rows = np.flatnonzero(damaged)
    if rows.size:
        part = x[rows]
        finite = np.isfinite(part)
        lo[rows] = np.where(finite, part, np.inf).min(axis=axes)
        hi[rows] = np.where(finite, part, -np.inf).max(axis=axes)
    why = _physical(modality, lo, hi, cfg)
    implausible = np.array([bool(w) for w in why])
    for i in np.flatnonzero(implausible):
        reasons[i] = why[i]
    status[implausible] = "implausible"
    failed = implausible.copy()

    # Check 5's read validity, before any repair; without NaN/Inf only RFID can lose reads (repeats).
    validity = np.ones(n)
    if modality == "rfid":
        repeats = np.count_nonzero(x[..., 1:] == x[..., :-1], axis=axes)
        validity = 1.0 - repeats / (x[0].size)

    # 1. NaN/Inf: fraction and longest gap per sample; repair the samples within both limits (float64).
    rows = np.flatnonzero(damaged & ~implausible)
    if rows.size:
        raw = np.array(time_last(modality, x[rows]), dtype=np.float64)  # (k, C, T)
        with np.errstate(invalid="ignore"):
            finite = np.abs(raw) <= _F32_MAX  # False for NaN, Inf and float32 overflow alike
        validity[rows] = _read_validity(modality, raw, finite)
        bad_frac, gaps, gap_channel = _nonfinite_extent(finite)
        lost = (bad_frac > cfg.max_nonfinite_fraction) | (gaps > cfg.max_gap_fraction * n_time)
        for j, i in enumerate(rows):
            if bad_frac[j] > cfg.max_nonfinite_fraction:
                reasons[i].append(f"{modality}: {_pct(bad_frac[j])} of values are NaN/Inf "
                                  f"(limit {_pct(cfg.max_nonfinite_fraction)})")
            elif lost[j]:
                reasons[i].append(
                    f"{modality}: NaN/Inf gap of {gaps[j]}/{n_time} time steps in {unit[:-1]} {gap_channel[j]} "
                    f"({_pct(gaps[j] / n_time)}, limit {_pct(cfg.max_gap_fraction)})")
            else:
                reasons[i].append(f"{modality}: repaired {_pct(bad_frac[j])} NaN/Inf values by interpolation "
                                  f"along time (limit {_pct(cfg.max_nonfinite_fraction)})")
        failed[rows[lost]] = True
        fix = ~lost
        values = x.copy()
        if fix.any():
            raw = _repair(raw[fix], finite[fix], 2 * np.pi if modality == "rfid" else None)
            values[rows[fix]] = _from_time_last(modality, raw)
            status[rows[fix]] = "repaired"
    if failed.any():
        values = values if values is not x else x.copy()
        values[failed] = 0.0  # rows that failed on NaN/Inf still hold NaN; zero them so the statistics stay quiet
    if values is not x:
        cmax, cmin, vmax, vmin = _extremes(values, t_axis)

    # 2-5, vectorised over the batch in the stream's own layout: per-channel extremes over time decide the
    # flat and empty channels, per-sample extremes the zeros and the saturation.
    with np.errstate(all="ignore"):  # huge values overflow a range to inf: that is "not flat", which is right
        flat = _flat_channels(modality, values, cmax - cmin, cfg.flat_std)
    at_max = _at_max_fraction(values, t_axis, cmax, vmax)
    n_chan = flat.shape[1]
    if modality in _ZERO_IS_BACKGROUND:
        empty = (cmax == 0.0) & (cmin == 0.0)  # a heatmap cell at zero in every frame: background, not frozen
        n_considered = n_chan - empty.sum(axis=1)
        flat &= ~empty
        what = f"non-empty {unit}"
    else:
        n_considered = np.full(n, n_chan)
        what = unit
    n_flat = flat.sum(axis=1)
    zeros = (vmax == 0.0) & (vmin == 0.0)
    is_flat = n_flat > cfg.max_flat_channel_fraction * n_considered
    saturated = (vmax > vmin) & (at_max > cfg.max_saturated_fraction)
    few_reads = (validity < cfg.min_valid_read_fraction) & ~is_flat  # a flat stream is all repeats anyway
    newly = np.flatnonzero(~failed & (zeros | is_flat | saturated | few_reads))
    for i in newly:
        if zeros[i]:  # one reason says it all (it is also flat and "saturated" at 0)
            reasons[i] = [f"{modality}: all values are zero (dead sensor or zero-filled stream)"]
        else:
            reasons[i] = [r for r in reasons[i] if ": repaired " not in r]  # a repair note would only confuse
            if is_flat[i]:
                reasons[i].append(f"{modality}: flat line on {n_flat[i]}/{n_considered[i]} {what} "
                                  f"(std < {cfg.flat_std:g}; limit {_pct(cfg.max_flat_channel_fraction)})")
            if saturated[i]:
                reasons[i].append(f"{modality}: {_pct(at_max[i])} of values sit at the maximum {vmax[i]:g} "
                                  f"(saturated; limit {_pct(cfg.max_saturated_fraction)})")
            if few_reads[i]:
                how = "NaN/Inf or repeated values" if modality == "rfid" else "dropped as NaN/Inf"
                reasons[i].append(f"{modality}: only {_pct(validity[i])} of {_READ[modality]} are valid ({how}; "
                                  f"minimum {_pct(cfg.min_valid_read_fraction)})")
    if newly.size:
        failed[newly] = True
        values = values if values is not x else x.copy()
        values[newly] = 0.0
    status[failed & ~implausible] = "failed"
    for i in np.flatnonzero(~failed & flat.any(axis=1)):
        reason = _dead_units(modality, flat[i])
        if reason:
            reasons[i].append(reason)
            if status[i] == "ok":
                status[i] = "degraded"
    return Assessment(values, status, reasons)
