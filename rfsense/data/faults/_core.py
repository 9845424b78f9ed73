"""Machinery shared by the fault injectors: the registry, input checks, per-sample random draws, time grids,
and the ways a sensor delivers a gap (NaN, held reads) or the runtime's repair leaves it (interpolated, zeroed).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rfsense.data.preprocess import PreprocessConfig
from rfsense.data.quality import QualityConfig, repair_nonfinite, repairable
from rfsense.errors import ConfigError, DataError
from rfsense.modalities import MODALITIES, SHAPES, TIME_AXIS, canonical_batch, expected_shape

# Every XRF55 sample covers 5 s (mmWave 17 steps, WiFi 1000 packets at 200 Hz, RFID 148 read slots).
WINDOW_S = 5.0
# Range resolution of XRF55's IWR6843 profile: c / (2 * 2.305 GHz swept bandwidth) = 6.5 cm per range bin.
RANGE_BIN_M = 0.065
# Doppler bin of zero radial velocity in the (fftshifted) 128-bin Doppler axis.
ZERO_DOPPLER_BIN = 64
N_SEVERITIES = 5
Domain = Literal["raw", "preprocessed"]
Kind = Literal["stream", "joint", "features"]
Result = tuple[np.ndarray, "np.ndarray | None"]  # (batch, usable[B] or None = all usable)


@dataclass(frozen=True)
class Fault:
    """One registered fault: what it does, where it applies and what each of its 5 severities means.

    Attributes:
        name: registry key, e.g. "missing".
        kind: "stream" (one modality of a sample), "joint" (several sensors of a sample at once) or
            "features" (the paper's feature-level dropout: masks encoder tokens, not raw streams).
        modalities: the modalities it can act on, in MODALITIES order.
        summary: one paragraph: the fault and how the sensor delivers it to the runtime.
        param: name of the level parameter ("rho", "sigma", "p", "seconds", ...).
        values: that parameter at severities 1..5.
        levels: the physical meaning of severities 1..5, one line each.
        preprocessed: how the variant on preprocessed arrays works, or why there is none.
        has_preprocessed: whether `apply_preprocessed` / `apply_joint_preprocessed` accept it.
        needs_scale: it needs the modality's raw-domain (or preprocessed-domain) std s(m).
    """

    name: str
    kind: Kind
    modalities: tuple[str, ...]
    summary: str
    param: str
    values: tuple[float, ...]
    levels: tuple[str, ...]
    preprocessed: str
    has_preprocessed: bool
    needs_scale: bool = False
    fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    def level(self, severity: int) -> str:
        """The meaning of `severity` (0..5) in words; 0 is the identity."""
        severity = check_severity(severity, self.name)
        return "no fault (identity)" if severity == 0 else self.levels[severity - 1]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able description (for reports)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "modalities": list(self.modalities),
            "summary": self.summary,
            "param": self.param,
            "values": list(self.values),
            "levels": list(self.levels),
            "preprocessed": self.preprocessed,
            "has_preprocessed": self.has_preprocessed,
            "needs_scale": self.needs_scale,
        }


REGISTRY: dict[str, Fault] = {}


def register(
    name: str,
    *,
    kind: Kind,
    modalities: tuple[str, ...],
    summary: str,
    param: str,
    values: tuple[float, ...],
    levels: tuple[str, ...],
    preprocessed: str,
    has_preprocessed: bool,
    needs_scale: bool = False,
) -> Callable[[Callable[..., Any] | None], Callable[..., Any] | None]:
    """Decorator that adds a fault implementation to REGISTRY; a duplicate name is an error."""

    def deco(fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
        if name in REGISTRY:
            raise ValueError(f"fault '{name}' is registered twice")
        if len(values) != N_SEVERITIES or len(levels) != N_SEVERITIES:
            raise ValueError(f"fault '{name}' needs {N_SEVERITIES} values and levels")
        REGISTRY[name] = Fault(
            name, kind, tuple(m for m in MODALITIES if m in modalities), summary, param, tuple(values),
            tuple(levels), preprocessed, has_preprocessed, needs_scale, fn,
        )
        return fn

    return deco


def get_fault(name: str) -> Fault:
    """The registered fault called `name`.

    Raises:
        ConfigError: unknown name (the message lists the available ones).
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise ConfigError(f"unknown fault {name!r}; available: {', '.join(REGISTRY)}")
    return REGISTRY[name]


# --------------------------------------------------------------------------------------------------
# Input checks


def check_severity(severity: Any, name: str) -> int:
    """`severity` as an int in 0..5; ConfigError otherwise."""
    if isinstance(severity, (bool, np.bool_)) or not isinstance(severity, (int, np.integer)) or not (
        0 <= int(severity) <= N_SEVERITIES
    ):
        raise ConfigError(
            f"severity {severity!r} for fault '{name}'; expected an integer 0..{N_SEVERITIES} (0 = no fault)"
        )
    return int(severity)


def check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ConfigError(f"fault seed {seed!r}; expected a non-negative integer")
    return int(seed)


def check_modality(fault: Fault, modality: Any) -> str:
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    if modality not in fault.modalities:
        raise ConfigError(
            f"fault '{fault.name}' applies to {', '.join(fault.modalities)}; not to {modality}"
        )
    return str(modality)


def check_ids(sample_ids: npt.ArrayLike, n: int, name: str) -> np.ndarray:
    """Sample ids as a non-negative int array (n, k): one int per sample, or k ints (e.g. a pack's keys)."""
    ids = np.asarray(sample_ids)
    if ids.ndim == 0:
        raise DataError(f"sample_ids for fault '{name}' is a scalar; expected one id (or one key of ints) per sample")
    if ids.ndim == 1:
        ids = ids[:, None]
    if ids.ndim != 2 or ids.shape[0] != n or ids.shape[1] == 0:
        raise DataError(
            f"sample_ids for fault '{name}' have shape {np.shape(sample_ids)}; expected ({n},) or ({n}, k): "
            "one id (or one key of ints) per sample of the batch"
        )
    if ids.dtype.kind not in "iu" or (ids.size and int(ids.min()) < 0):
        raise DataError(f"sample_ids for fault '{name}' must be non-negative integers; got dtype {ids.dtype}")
    return ids.astype(np.int64)


def check_scale(fault: Fault, modality: str, scale: float | Mapping[str, float] | None, domain: Domain) -> float:
    """The modality's std s(m) from a number or a {modality: number} mapping; ConfigError if missing or bad."""
    where = "raw-domain" if domain == "raw" else "preprocessed-domain"
    value = scale.get(modality) if isinstance(scale, Mapping) else scale
    if value is None:
        raise ConfigError(
            f"fault '{fault.name}' needs the {where} std s(m) of {modality} over the training split (scale=); "
            "it comes from the pack / export manifest, and older ones do not record it"
        )
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (
        np.isfinite(value) and value > 0
    ):
        raise ConfigError(f"fault '{fault.name}': scale for {modality} is {value!r}; expected a finite number > 0")
    return float(value)


def as_batch(
    modality: str, x: npt.ArrayLike, name: str, domain: Domain, prep: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(the input as an array, a float copy in canonical shape (B, *shape)); DataError if wrong.

    Float inputs keep their dtype; integer and bool inputs become float64 (NaN needs a float).
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{modality} batch for fault '{name}' has dtype {arr.dtype}; expected a real float array")
    if domain == "raw":
        canon = canonical_batch(modality, arr)  # type: ignore[arg-type]
        if canon is None:
            raise DataError(
                f"{modality} batch for fault '{name}' has shape {arr.shape}; "
                f"expected {expected_shape(modality, batch=True)}"  # type: ignore[arg-type]
            )
    else:
        want = SHAPES[modality]  # type: ignore[index]
        if arr.ndim < 1 or arr.shape[1:] != want:
            raise DataError(
                f"preprocessed {modality} batch for fault '{name}' has shape {arr.shape}; expected "
                f"(B, {', '.join(map(str, want))}) as `preprocess` returns it with this PreprocessConfig"
            )
        canon = arr
    dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    return arr, np.array(canon, dtype=dtype, copy=True, order="C")


# --------------------------------------------------------------------------------------------------
# Per-sample random draws


def sample_rngs(seed: int, ids: np.ndarray, name: str, stream: int) -> list[np.random.Generator]:
    """One Generator per sample from SeedSequence([seed, *id, crc32(fault name), stream]).

    `stream` is the modality's index in MODALITIES (3 for draws shared by a sample's sensors). The
    severity is deliberately not part of the seed: every level reuses the same draws (common random
    numbers), so a higher severity corrupts a superset of what a lower one does and curves stay smooth.
    The fault's name (not its registry position) keeps draws stable when faults are added.
    """
    tag = zlib.crc32(name.encode())
    return [np.random.default_rng(np.random.SeedSequence([seed, *map(int, row), tag, stream])) for row in ids]


@dataclass
class Ctx:
    """What a stream fault implementation needs besides the array."""

    modality: str
    severity: int
    value: float  # the fault's parameter at this severity
    rngs: list[np.random.Generator]  # one per sample
    domain: Domain
    prep: PreprocessConfig
    scale: float | None = None
    quality: QualityConfig = QualityConfig()  # the repair rule the preprocessed variants emulate

    @property
    def level(self) -> int:
        """0-based level index (severity - 1)."""
        return self.severity - 1


# --------------------------------------------------------------------------------------------------
# Time grids and views


def n_time(modality: str, y: np.ndarray) -> int:
    """Number of time steps of a (B, *shape) batch."""
    return y.shape[TIME_AXIS[modality] + 1]  # type: ignore[index]


def step_times(n: int) -> np.ndarray:
    """Centre (s) of each of the n time steps of the 5 s window."""
    return (np.arange(n) + 0.5) * (WINDOW_S / n)


def interval_mask(n: int, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """(B, n) bool: step centre in [start[b], stop[b]) seconds."""
    t = step_times(n)[None, :]
    return (t >= np.asarray(start)[:, None]) & (t < np.asarray(stop)[:, None])


def time_first(modality: str, y: np.ndarray) -> np.ndarray:
    """View of a (B, *shape) batch with time on axis 1: mmWave already is; WiFi/RFID swap channels and time."""
    return y if TIME_AXIS[modality] == 0 else y.swapaxes(1, 2)  # type: ignore[index]


def draw(rngs: list[np.random.Generator], fn: Callable[[np.random.Generator], Any]) -> np.ndarray:
    """Stack one draw per sample: fn(rng) for each sample's generator."""
    return np.stack([np.asarray(fn(r)) for r in rngs])


def wrap_phase(y: np.ndarray, period: float = 2 * np.pi) -> np.ndarray:
    """In place: phase into [0, period) (np.mod can round up to exactly `period`)."""
    np.mod(y, period, out=y)
    y[y >= period] = 0.0
    return y


def rfid_period(domain: Domain, prep: PreprocessConfig) -> float | None:
    """Period of RFID phase in `domain`: 2*pi raw; None when preprocessing unwrapped it (the default)."""
    if domain == "raw":
        return 2 * np.pi
    if prep.rfid.unwrap:
        return None
    return np.pi if prep.rfid.fix_jumps else 2 * np.pi


# --------------------------------------------------------------------------------------------------
# Holding and gaps


def _hold_index(lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(source index of every step, rows with no delivered step) for a lost mask (..., T).

    A lost step takes the last delivered one before it; lost steps before the first delivery take the first.
    """
    t_len = lost.shape[-1]
    t = np.arange(t_len)
    prev = np.where(lost, -1, t)
    np.maximum.accumulate(prev, axis=-1, out=prev)
    first = np.where(lost, t_len, t).min(axis=-1, keepdims=True)
    src = np.where(prev < 0, first, prev)
    return np.minimum(src, t_len - 1), first[..., 0] >= t_len


def hold_steps(modality: str, y: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """In place: whole time steps lost[b, t] repeat the last delivered step (every channel together)."""
    src, never = _hold_index(lost)
    view = time_first(modality, y)
    view[...] = view[np.arange(len(y))[:, None], src]
    view[never] = np.nan  # a sample with no delivered step at all has nothing to hold
    return y


def hold_reads(y: np.ndarray, lost: np.ndarray, never: float = np.nan) -> np.ndarray:
    """In place on (B, C, T): lost reads (B, T) or (B, C, T) repeat the channel's previous read.

    A channel with no read left at all gets `never`: NaN raw (there is no value to hold), 0 preprocessed
    (what preprocessing makes of a tag never read).
    """
    lost = np.broadcast_to(lost[:, None, :] if lost.ndim == 2 else lost, y.shape)
    src, none_left = _hold_index(lost)
    y[...] = np.take_along_axis(y, src, axis=-1)
    y[none_left] = never
    return y


def reoffset_rfid(y: np.ndarray, prep: PreprocessConfig) -> np.ndarray:
    """In place on preprocessed RFID (B, 23, T): subtract each tag's median again, as preprocessing would.

    Preprocessing removes the per-tag median after everything else, so a fault that changes the series
    (a held stretch, noise, a shift) also moves that offset; without this, a long hold would leave the
    tag off-centre by up to its full swing. A no-op when prep.rfid.remove_offset is off.
    """
    if prep.rfid.remove_offset:
        y -= np.median(y.astype(np.float32, copy=False), axis=-1, keepdims=True).astype(y.dtype)
    return y


def _repair_nonfinite(
    modality: str, y: np.ndarray, prep: PreprocessConfig, quality: QualityConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The runtime's repair of NaN/Inf (`rfsense.data.quality.repair_nonfinite`) on a preprocessed batch, in y's dtype."""
    period = rfid_period("preprocessed", prep) if modality == "rfid" else None
    fixed, usable = repair_nonfinite(modality, y, quality, period=period)  # type: ignore[arg-type]
    return fixed.astype(y.dtype, copy=False), usable


def _neighbours(lost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(previous kept step, next kept step, weight of the next) for every step of a lost mask (..., T).

    The same linear interpolation as `repair_nonfinite`: edges hold the nearest kept step.
    """
    t_len = lost.shape[-1]
    t = np.arange(t_len)
    prev = np.maximum.accumulate(np.where(lost, -1, t), axis=-1)
    nxt = np.minimum.accumulate(np.where(lost, t_len, t)[..., ::-1], axis=-1)[..., ::-1]
    prev = np.where(prev < 0, nxt, prev)
    nxt = np.where(nxt >= t_len, prev, nxt)
    return prev, nxt, (t - prev) / np.maximum(nxt - prev, 1)


def interpolate_gaps(
    modality: str, y: np.ndarray, lost: np.ndarray, prep: PreprocessConfig, quality: QualityConfig
) -> tuple[np.ndarray, np.ndarray]:
    """In place on a preprocessed batch: what the runtime's repair leaves of values lost at `lost`.

    Args:
        y: (B, *shape) C-contiguous preprocessed batch.
        lost: (B, G, T): the sample's channels, split in channel order into G equal groups that share a time
            mask (WiFi: 1 = whole packets, 3 = receivers; RFID: 23 tags; mmWave: 1 = whole frames, 16 = groups
            of 16 range bins), lost at step t.

    Same result as setting them NaN and calling `repair_nonfinite` (linear interpolation along time between
    the nearest kept steps, edges held; a sample the quality rule would fail — lost share above
    quality.max_nonfinite_fraction or a gap longer than quality.max_gap_fraction — is zeroed and unusable), but one vectorised gather instead of a per-sample loop (32 mmWave samples: ~1 s -> ~0.05 s). Samples
    with a group lost at every step, and wrapped RFID phase, take the shared function itself.
    Returns (y, usable[B]).
    """
    n, g, t_len = lost.shape
    usable = repairable(lost, quality)
    empty = lost.all(axis=2)  # (B, G): repair_nonfinite fills such rows with the sample's median
    special = usable & empty.any(axis=1)
    if modality == "rfid" and rfid_period("preprocessed", prep) is not None:
        special = usable.copy()
    fast = usable & ~special
    y4 = y.reshape(n, t_len, g, -1) if modality == "mmwave" else y.reshape(n, g, -1, t_len)
    assert np.shares_memory(y4, y), "interpolate_gaps needs a C-contiguous batch"
    prev, nxt, w = _neighbours(lost)
    bi, gi, ti = np.nonzero(lost & fast[:, None, None])
    p, q, wt = prev[bi, gi, ti], nxt[bi, gi, ti], w[bi, gi, ti].astype(y.dtype)[:, None]
    if modality == "mmwave":
        y4[bi, ti, gi] = (1 - wt) * y4[bi, p, gi] + wt * y4[bi, q, gi]
    else:
        y4[bi, gi, :, ti] = (1 - wt) * y4[bi, gi, :, p] + wt * y4[bi, gi, :, q]
    if special.any():
        idx = np.flatnonzero(special)
        sub = y[idx]
        sub4 = sub.reshape(len(idx), t_len, g, -1) if modality == "mmwave" else sub.reshape(len(idx), g, -1, t_len)
        mask = lost[idx]
        if modality == "mmwave":
            sub4[np.moveaxis(mask, 1, 2)] = np.nan
        else:
            sub4.transpose(0, 1, 3, 2)[mask] = np.nan
        y[idx], ok = _repair_nonfinite(modality, sub, prep, quality)
        usable[idx] = ok
    y[~usable] = 0.0
    return y, usable


def deliver_gaps(modality: str, y: np.ndarray, lost: np.ndarray, domain: Domain, prep: PreprocessConfig,
                 quality: QualityConfig) -> Result:
    """In place: time steps the sensor failed to deliver, as the runtime receives them or its repair leaves them.

    Args:
        y: (B, *shape) batch in `domain`.
        lost: (B, T) whole steps, or for RFID (B, 23, T) single reads.

    Raw: WiFi packets and mmWave frames become NaN (a missing packet/frame reaches the runtime as an
    all-NaN column/frame); RFID reads repeat the tag's previous read. Preprocessed: WiFi/mmWave gaps are
    interpolated (or the sample zeroed and unusable, where the quality rule fails it); RFID holds, as
    the preprocessing keeps held reads as they are.
    """
    if modality == "rfid":
        return hold_reads(y, lost, np.nan if domain == "raw" else 0.0), None
    if domain == "preprocessed":
        return interpolate_gaps(modality, y, lost[:, None, :], prep, quality)
    time_first(modality, y)[lost] = np.nan
    return y, None
