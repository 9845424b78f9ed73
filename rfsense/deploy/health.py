"""Stream health checks run on every sample before inference (numpy only, no torch).

For each modality and each sample the check gives one `Verdict`:

- ``ok``: the stream passed every check and is used as it is;
- ``repaired``: a few NaN/Inf values in short gaps were filled by linear interpolation along time
  (the shared `rfsense.data.preprocess.repair_nonfinite`, the same interpolator training used);
- ``failed``: the stream is unusable for this sample; it is zero-filled and masked (present=False);
- ``absent``: no stream was given.

Checks, in order (thresholds in `HealthConfig`):

1. shape and dtype of the whole array (a wrong shape fails that modality for every sample; it does not
   raise, so one bad stream cannot take the others down);
2. NaN/Inf: fraction of values, and the longest gap along time in any channel; within both limits the
   gaps are repaired, beyond either the sample fails;
3. all zeros (a dead sensor or a zero-filled file);
4. flat line: a channel whose std over time is below ``flat_std``; fails when too many channels are flat
   (a frozen stream). mmWave cells that are zero in every frame are empty background and not counted;
5. saturation: the fraction of values sitting exactly at the sample's maximum (a clipping ADC or a
   capped heatmap); only the top is checked because the bottom of an amplitude or heatmap stream is
   legitimately full of values at its minimum (zeros, the noise floor);
6. valid reads: RFID reads that are NaN/Inf *or* repeat the previous read of the same tag exactly (readers
   and resamplers hold the last value when a read is missed), WiFi packets dropped as an all-NaN column,
   mmWave frames that are entirely NaN/Inf.

Per-sample axes: mmWave (17 frames, 256 range, 128 Doppler) has time on axis 0 and a "channel" is a
range-Doppler cell; WiFi (270 channels, 1000 packets) and RFID (23 tags, 148 reads) have time last.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rfsense.data.preprocess import repair_nonfinite
from rfsense.errors import ConfigError, DataError
from rfsense.modalities import MODALITIES, SHAPE_MEANING, SHAPES

__all__ = ["STATUSES", "HealthConfig", "Verdict", "batch_size", "check_streams"]

_logger = logging.getLogger(__name__)

STATUSES = ("ok", "repaired", "failed", "absent")

# Per-sample time axis and the name of one "channel" in messages.
_TIME_AXIS = {"mmwave": 0, "wifi": 1, "rfid": 1}
_CHANNEL_NAME = {"mmwave": "range-Doppler cells", "wifi": "channels", "rfid": "tags"}
# Modalities whose all-zero channels are background (radar heatmap cells), not dead channels.
_ZERO_IS_BACKGROUND = {"mmwave"}
# Accepted dtype kinds: float, signed/unsigned int, bool (all real numbers; cast to float64).
_REAL_KINDS = "fiub"


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds of the stream health checks; stored in the export manifest under "health".

    Fractions are in [0, 1] and apply per sample and per modality.
    """

    # Above this fraction of NaN/Inf values the sample fails: interpolation would invent too much of it.
    max_nonfinite_fraction: float = 0.2
    # Longest run of consecutive NaN/Inf time steps in any one channel, as a fraction of the window
    # (WiFi 1000 packets, RFID 148 reads, mmWave 17 frames). Only short gaps are safe to interpolate:
    # 0.1 is 0.5 s of a 5 s action, i.e. one mmWave frame (1/17 = 0.06) but not two (0.12).
    max_gap_fraction: float = 0.1
    # A channel whose std over time is below this is flat. Absolute, in the units of the raw stream
    # (amplitude, radians, heatmap power); real sensor noise is orders of magnitude above 1e-6.
    flat_std: float = 1e-6
    # The sample fails when more than this fraction of its channels is flat (a frozen stream). Single dead
    # channels (a broken tag, a null subcarrier) are tolerated, and so is a one-NIC WiFi capture: one of
    # three receivers leaves 180/270 channels zero (0.67), which ingest flags as degraded, not dead.
    max_flat_channel_fraction: float = 0.7
    # The sample fails when more than this fraction of its values sits exactly at its maximum.
    max_saturated_fraction: float = 0.2
    # The sample fails when fewer than this fraction of its reads is valid (see module docstring, check 6).
    # XRF55 RFID nominally gets 148-150 of 150 reads, so 0.5 means a reader that lost half its reads.
    min_valid_read_fraction: float = 0.5

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ConfigError(f"health.{f.name} must be a finite number; got {value!r}")
            if f.name == "flat_std":
                if value < 0:
                    raise ConfigError(f"health.flat_std must be >= 0; got {value!r}")
            elif not 0.0 <= value <= 1.0:
                raise ConfigError(f"health.{f.name} is a fraction and must be in [0, 1]; got {value!r}")

    def to_dict(self) -> dict[str, float]:
        """Plain dict for the JSON manifest."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HealthConfig:
        """Build from a dict (e.g. a manifest's "health"); missing keys take the defaults.

        Raises:
            ConfigError: `d` is not a dict, has an unknown key, or a value is not a number in range.
        """
        if not isinstance(d, dict):
            raise ConfigError(f"health config must be a mapping; got {type(d).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in allowed:
                raise ConfigError(f"unknown key 'health.{key}'; allowed: {', '.join(allowed)}")
        return cls(**d)


@dataclass
class Verdict:
    """Health of one modality of one sample: status is "ok" | "repaired" | "failed" | "absent"."""

    modality: str
    status: str
    reasons: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """True when the stream goes to the model (ok or repaired)."""
        return self.status in ("ok", "repaired")

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "status": self.status, "reasons": list(self.reasons)}


def _pct(frac: float) -> str:
    """Percent for messages: whole numbers normally, one decimal below 10% so 0.4% does not read 0%."""
    p = 100.0 * frac
    return f"{p:.1f}%" if 0 < p < 10 else f"{p:.0f}%"


def _expected_text(modality: str) -> str:
    extra = " (mmwave also (batch, 1, 17, 256, 128))" if modality == "mmwave" else ""
    return f"(batch, {', '.join(map(str, SHAPES[modality]))}){extra} = {SHAPE_MEANING[modality]}"


def _canonical(modality: str, arr: np.ndarray) -> np.ndarray | None:
    """(B, *SHAPES[m]) view of `arr`, accepting mmWave's file layout (B, 1, 17, 256, 128); None if wrong."""
    want = SHAPES[modality]
    if arr.ndim >= 1 and arr.shape[1:] == want:
        return arr
    if modality == "mmwave" and arr.ndim >= 2 and arr.shape[1:] == (1, *want):
        return arr.reshape(arr.shape[0], *want)
    return None


def _longest_run(bad: np.ndarray) -> np.ndarray:
    """Longest run of True along the last axis: bool (..., T) -> int (...)."""
    c = np.cumsum(bad, axis=-1, dtype=np.int32)
    # Value of the running count at the last False, carried forward; subtracting it restarts each run.
    reset = np.maximum.accumulate(np.where(bad, 0, c), axis=-1)
    return (c - reset).max(axis=-1, initial=0)


def _time_last(modality: str, x: np.ndarray) -> np.ndarray:
    """(B, *SHAPES[m]) -> (B, channels, T)."""
    t_axis = _TIME_AXIS[modality] + 1
    moved = np.moveaxis(x, t_axis, -1)
    return moved.reshape(x.shape[0], -1, x.shape[t_axis])


def _read_validity(modality: str, raw: np.ndarray) -> tuple[np.ndarray, str]:
    """Fraction of valid reads per sample and the word for a read: (B, C, T) raw -> (float[B], noun)."""
    finite = np.isfinite(raw)
    if modality == "rfid":
        # A missed read shows up as NaN or as an exact repeat of the tag's previous read (hold-last-value).
        repeat = np.zeros_like(finite)
        with np.errstate(invalid="ignore"):
            repeat[..., 1:] = (raw[..., 1:] == raw[..., :-1]) & finite[..., 1:]
        valid = finite & ~repeat
        return valid.mean(axis=(1, 2)), "reads"
    # WiFi: a dropped packet is an all-NaN column; mmWave: a dropped frame is an all-NaN frame.
    dropped = ~finite.any(axis=1)  # (B, T)
    return 1.0 - dropped.mean(axis=1), "packets" if modality == "wifi" else "frames"


def _check_modality(
    modality: str, x: np.ndarray, cfg: HealthConfig
) -> tuple[np.ndarray, np.ndarray, list[list[str]], np.ndarray]:
    """Run checks 2-6 on a correctly shaped batch.

    Args:
        x: (B, *SHAPES[m]), any real dtype.

    Returns:
        (float64 (B, *SHAPES[m]) with failed rows zero-filled, failed bool[B], reasons per sample,
        repaired bool[B]).
    """
    n = x.shape[0]
    out = np.array(x, dtype=np.float64)  # always a copy: repairs and zero-fills must not touch the caller's array
    reasons: list[list[str]] = [[] for _ in range(n)]
    failed = np.zeros(n, dtype=bool)
    repaired = np.zeros(n, dtype=bool)
    if n == 0:
        return out, failed, reasons, repaired
    unit = _CHANNEL_NAME[modality]
    raw = _time_last(modality, out)  # (B, C, T) view of the unrepaired values
    n_chan, n_time = raw.shape[1], raw.shape[2]

    # 2. NaN/Inf: fraction and longest gap; repair the rows within both limits.
    finite = np.isfinite(raw)
    bad_frac = 1.0 - finite.mean(axis=(1, 2))
    need = np.flatnonzero(bad_frac > 0)
    to_repair = []
    for i in need:
        if bad_frac[i] > cfg.max_nonfinite_fraction:
            failed[i] = True
            reasons[i].append(
                f"{modality}: {_pct(bad_frac[i])} of values are NaN/Inf (limit {_pct(cfg.max_nonfinite_fraction)})"
            )
            continue
        runs = _longest_run(~finite[i])  # (C,)
        gap = int(runs.max())
        if gap > cfg.max_gap_fraction * n_time:
            failed[i] = True
            reasons[i].append(
                f"{modality}: NaN/Inf gap of {gap}/{n_time} time steps in {unit[:-1]} {int(runs.argmax())} "
                f"({_pct(gap / n_time)}, limit {_pct(cfg.max_gap_fraction)})"
            )
            continue
        to_repair.append(i)
    validity, read_noun = _read_validity(modality, raw)  # on the raw values, before any repair
    if to_repair:
        idx = np.asarray(to_repair)
        # RFID phase is circular: interpolate along the unwrapped signal so a gap across a wrap is not filled through pi.
        period = 2 * np.pi if modality == "rfid" else None
        fixed, usable = repair_nonfinite(
            out[idx], cfg.max_nonfinite_fraction, time_axis=_TIME_AXIS[modality] + 1, period=period
        )
        for k, i in enumerate(idx):
            if not bool(usable[k]) or not np.isfinite(fixed[k]).all():
                failed[i] = True
                reasons[i].append(f"{modality}: {_pct(bad_frac[i])} NaN/Inf values could not be repaired by interpolation")
            else:
                out[i] = fixed[k]
                repaired[i] = True
                reasons[i].append(
                    f"{modality}: repaired {_pct(bad_frac[i])} NaN/Inf values by interpolation along time "
                    f"(limit {_pct(cfg.max_nonfinite_fraction)})"
                )
    # Rows that failed on NaN/Inf still hold NaN; zero them so the statistics below stay quiet and finite.
    out[failed] = 0.0

    series = _time_last(modality, out)  # (B, C, T), repaired values
    flat_limit = cfg.max_flat_channel_fraction
    with np.errstate(all="ignore"):  # huge values overflow the std to inf: that is "not flat", which is right
        stds = series.std(axis=2)  # (B, C)
        vmax = series.max(axis=(1, 2))
        vmin = series.min(axis=(1, 2))
        at_max = (series == vmax[:, None, None]).mean(axis=(1, 2))
    for i in range(n):
        if failed[i]:
            continue
        # 3. All zeros: one reason says it all (it is also flat and "saturated" at 0).
        if vmax[i] == 0.0 and vmin[i] == 0.0:
            failed[i] = True
            reasons[i].append(f"{modality}: all values are zero (dead sensor or zero-filled stream)")
            continue
        # 4. Flat line. A heatmap cell that is zero in every frame is empty background, not a frozen
        # channel, so mmWave counts flat cells among the non-empty ones (WiFi/RFID zeros are dead channels).
        flat = stds[i] < cfg.flat_std
        n_considered, what = n_chan, unit
        if modality in _ZERO_IS_BACKGROUND:
            empty = ~series[i].any(axis=1)
            flat, n_considered, what = flat & ~empty, n_chan - int(empty.sum()), f"non-empty {unit}"
        n_flat = int(np.count_nonzero(flat))
        is_flat = n_flat > flat_limit * n_considered
        if is_flat:
            failed[i] = True
            reasons[i].append(
                f"{modality}: flat line on {n_flat}/{n_considered} {what} (std < {cfg.flat_std:g}; "
                f"limit {_pct(flat_limit)})"
            )
        # 5. Saturation; a constant stream is reported as flat, not as saturated.
        if vmax[i] > vmin[i] and at_max[i] > cfg.max_saturated_fraction:
            failed[i] = True
            reasons[i].append(
                f"{modality}: {_pct(at_max[i])} of values sit at the maximum {vmax[i]:g} (saturated; "
                f"limit {_pct(cfg.max_saturated_fraction)})"
            )
        # 6. Valid reads; a flat stream is all repeats, which the flat-line reason already says.
        if validity[i] < cfg.min_valid_read_fraction and not is_flat:
            failed[i] = True
            how = "NaN/Inf or repeated values" if modality == "rfid" else "dropped as NaN/Inf"
            reasons[i].append(
                f"{modality}: only {_pct(validity[i])} of {read_noun} are valid ({how}; "
                f"minimum {_pct(cfg.min_valid_read_fraction)})"
            )
    repaired &= ~failed
    for i in np.flatnonzero(failed):
        # Keep only the failure reasons; a repair note on a failed stream would only confuse.
        reasons[i] = [r for r in reasons[i] if ": repaired " not in r]
    out[failed] = 0.0
    return out, failed, reasons, repaired


def _as_arrays(inputs: dict[str, npt.ArrayLike | None]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Given (non-None) inputs as arrays, plus a reason for each one that cannot be an array at all.

    Raises:
        DataError: an unknown modality key.
    """
    unknown = sorted(set(inputs) - set(MODALITIES))
    if unknown:
        raise DataError(f"unknown modality {unknown}; expected some of {', '.join(MODALITIES)}")
    given: dict[str, np.ndarray] = {}
    unreadable: dict[str, str] = {}
    for m in MODALITIES:
        value = inputs.get(m)
        if value is None:
            continue
        try:
            given[m] = np.asarray(value)
        except (ValueError, TypeError) as err:  # ragged nested lists and the like
            unreadable[m] = f"{m}: input could not be read as an array ({err})"
    return given, unreadable


def batch_size(inputs: dict[str, npt.ArrayLike | None]) -> int:
    """Number of samples in `inputs` (the first axis); correctly shaped arrays decide.

    A wrong-shaped array only counts when no input has the right shape. With no array at all the batch is
    one sample with every modality absent.

    Raises:
        DataError: unknown modality key; inputs that disagree on the batch size (samples could not be
            matched across modalities); only scalar inputs.
    """
    arrays, _ = _as_arrays(inputs)
    good = {m: a.shape[0] for m, a in arrays.items() if _canonical(m, a) is not None}
    sizes = good or {m: a.shape[0] for m, a in arrays.items() if a.ndim >= 1}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{m} {b}" for m, b in sizes.items())
        raise DataError(
            f"inputs disagree on the batch size (first axis): {listing}; every modality needs one row per sample"
        )
    if sizes:
        return next(iter(sizes.values()))
    if arrays:
        shapes = ", ".join(f"{m} {a.shape}" for m, a in arrays.items())
        raise DataError(f"cannot tell the batch size: every input is a scalar ({shapes}); expected (batch, ...) arrays")
    return 1


def check_streams(
    inputs: dict[str, npt.ArrayLike | None], cfg: HealthConfig | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, list[dict[str, Verdict]]]:
    """Check, repair and mask every stream of a batch.

    Args:
        inputs: modality -> array of shape (B, *SHAPES[m]) (mmwave also (B, 1, 17, 256, 128)), any real
            dtype (float16/32/64, int, bool), or None / missing key for an absent modality. With every
            modality absent the batch is one sample.
        cfg: thresholds; defaults to `HealthConfig()`.

    Returns:
        (arrays, present, verdicts): ``arrays[m]`` is float64 (B, *SHAPES[m]) for every modality, repaired,
        with failed and absent rows zero-filled; ``present`` is bool (B, 3) in MODALITIES order (True for ok
        and repaired); ``verdicts[i][m]`` is the Verdict of modality m of sample i.

    Raises:
        DataError: an unknown modality key, or inputs that disagree on the batch size. A wrong shape or
            dtype is not raised: that modality fails, with the reason, for every sample.
    """
    cfg = cfg or HealthConfig()
    given, unreadable = _as_arrays(inputs)
    n = batch_size(inputs)

    arrays: dict[str, np.ndarray] = {}
    present = np.zeros((n, len(MODALITIES)), dtype=bool)
    verdicts: list[dict[str, Verdict]] = [{} for _ in range(n)]
    for j, m in enumerate(MODALITIES):
        arrays[m] = np.zeros((n, *SHAPES[m]), dtype=np.float64)
        if m in unreadable or m not in given:
            why = unreadable.get(m)
            for v in verdicts:
                v[m] = Verdict(m, "failed", [why]) if why else Verdict(m, "absent", [f"{m}: absent (no stream given)"])
            continue
        arr = given[m]
        canon = _canonical(m, arr)
        problem = None
        if arr.dtype.kind not in _REAL_KINDS:
            problem = f"{m}: dtype {arr.dtype}; expected a real float dtype (float16/32/64)"
        elif canon is None:
            problem = f"{m}: array has shape {arr.shape}; expected {_expected_text(m)}"
        if problem is not None:
            _logger.warning("%s", problem)
            for v in verdicts:
                v[m] = Verdict(m, "failed", [problem])
            continue
        out, failed, reasons, repaired = _check_modality(m, canon, cfg)
        arrays[m] = out
        present[:, j] = ~failed
        for i in range(n):
            status = "failed" if failed[i] else "repaired" if repaired[i] else "ok"
            verdicts[i][m] = Verdict(m, status, reasons[i])
        if failed.any():
            _logger.debug("%s: %d/%d samples failed the health check", m, int(failed.sum()), n)
    return arrays, present, verdicts
