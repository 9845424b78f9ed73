"""What makes a stream usable: one definition, applied by the packer to training data and by the runtime
to live streams (numpy only).

`assess(modality, batch, cfg)` gives each sample of one modality a status and its reasons:

- ``ok``: passed every check, used as it is;
- ``degraded``: usable, but whole units of it carry no signal (a WiFi receiver whose 90 channels are all
  flat, e.g. a one-NIC capture; RFID tags that never change, e.g. lost tags); the reason says which;
- ``repaired``: a few NaN/Inf values in short gaps were filled by linear interpolation along time
  (RFID phase along the unwrapped phase, so a gap across a 2*pi wrap is not filled through pi);
- ``failed``: unusable for this sample; its values are zero-filled and the modality is masked.

Checks, in order (thresholds in `QualityConfig`; per sample and modality):

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rfsense.config import Fraction, NonNegativeFloat, schema
from rfsense.modalities import SHAPES, TIME_AXIS, Modality

__all__ = ["STATUSES", "USABLE", "Assessment", "QualityConfig", "assess", "repair_nonfinite", "repairable", "time_last"]

STATUSES = ("ok", "degraded", "repaired", "failed", "absent")
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


@dataclass
class Assessment:
    """The outcome of `assess` for a batch of one modality.

    values: float64 (B, *SHAPES[m]) with repairs applied and failed samples zero-filled;
    status: (B,) str, one of STATUSES[:4]; reasons: per sample, human-readable, each prefixed by the modality.
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


def assess(modality: Modality, x: npt.ArrayLike, cfg: QualityConfig | None = None) -> Assessment:
    """Check, repair and classify a batch of one modality (see the module docstring).

    Args:
        modality: "mmwave", "wifi" or "rfid".
        x: (B, *SHAPES[modality]) real array (any float or integer dtype); never modified.
        cfg: thresholds (default `QualityConfig()`).

    Raises:
        ValueError: wrong shape (callers check shapes first and report them as a failed stream).
    """
    cfg = cfg or QualityConfig()
    x = np.asarray(x)
    if x.shape[1:] != SHAPES[modality]:
        raise ValueError(f"{modality} batch has shape {x.shape}; expected (B, {SHAPES[modality]})")
    n = len(x)
    status = np.full(n, "ok", dtype="<U8")
    reasons: list[list[str]] = [[] for _ in range(n)]
    if n == 0:
        return Assessment(np.zeros(x.shape), status, reasons)
    # Work on a (B, C, T) float64 copy: repairs and zero-fills never touch the caller's array.
    raw = np.array(time_last(modality, x), dtype=np.float64)
    n_chan, n_time = raw.shape[1:]
    unit = _CHANNEL[modality]
    with np.errstate(invalid="ignore"):
        finite = np.abs(raw) <= _F32_MAX  # False for NaN, Inf and float32 overflow alike
    validity = _read_validity(modality, raw, finite)

    # 1. NaN/Inf: fraction and longest gap per sample; repair the samples within both limits.
    bad_frac, gaps, gap_channel = _nonfinite_extent(finite)
    failed = (bad_frac > cfg.max_nonfinite_fraction) | (gaps > cfg.max_gap_fraction * n_time)
    repairable = np.flatnonzero((bad_frac > 0) & ~failed)
    if repairable.size:
        raw[repairable] = _repair(raw[repairable], finite[repairable], 2 * np.pi if modality == "rfid" else None)
        status[repairable] = "repaired"
    for i in np.flatnonzero(bad_frac > 0):
        if bad_frac[i] > cfg.max_nonfinite_fraction:
            reasons[i].append(f"{modality}: {_pct(bad_frac[i])} of values are NaN/Inf "
                              f"(limit {_pct(cfg.max_nonfinite_fraction)})")
        elif failed[i]:
            reasons[i].append(
                f"{modality}: NaN/Inf gap of {gaps[i]}/{n_time} time steps in {unit[:-1]} {gap_channel[i]} "
                f"({_pct(gaps[i] / n_time)}, limit {_pct(cfg.max_gap_fraction)})")
        else:
            reasons[i].append(f"{modality}: repaired {_pct(bad_frac[i])} NaN/Inf values by interpolation "
                              f"along time (limit {_pct(cfg.max_nonfinite_fraction)})")
    raw[failed] = 0.0  # rows that failed on NaN/Inf still hold NaN; zero them so the statistics stay quiet

    # 2-5 on the repaired values, vectorised over the batch.
    with np.errstate(all="ignore"):  # huge values overflow the std to inf: that is "not flat", which is right
        stds = raw.std(axis=2)  # (B, C)
        vmax = raw.max(axis=(1, 2))
        vmin = raw.min(axis=(1, 2))
        at_max = (raw == vmax[:, None, None]).mean(axis=(1, 2))
    flat = stds < cfg.flat_std
    if modality in _ZERO_IS_BACKGROUND:
        empty = ~raw.any(axis=2)  # a heatmap cell at zero in every frame: background, not a frozen channel
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
    for i in np.flatnonzero(~failed & (zeros | is_flat | saturated | few_reads)):
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
        failed[i] = True
    status[failed] = "failed"
    raw[failed] = 0.0
    for i in np.flatnonzero(~failed & flat.any(axis=1)):
        why = _dead_units(modality, flat[i])
        if why:
            reasons[i].append(why)
            if status[i] == "ok":
                status[i] = "degraded"
    return Assessment(_from_time_last(modality, raw), status, reasons)
