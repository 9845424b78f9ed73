"""The quality rule as it was before the speed work (rfsense 0.1, float64 time-last copies): the reference the
fast `rfsense.data.quality.assess` is held to on every input that passes check 0 (physical plausibility).

Frozen on purpose: only the function body lives here; the helpers it calls are unchanged in the package.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rfsense.data.quality import (
    _CHANNEL,
    _F32_MAX,
    _READ,
    _ZERO_IS_BACKGROUND,
    Assessment,
    QualityConfig,
    _dead_units,
    _from_time_last,
    _nonfinite_extent,
    _pct,
    _read_validity,
    _repair,
    time_last,
)
from rfsense.modalities import SHAPES, Modality


def assess_reference(modality: Modality, x: npt.ArrayLike, cfg: QualityConfig | None = None) -> Assessment:
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
