"""Faults that act on several sensors of one sample at once: desynchronisation, lost and failing sensors.

Each implementation gets float copies of the target streams (B, *shape) in its domain and a `JointCtx`,
and returns (streams, usable (B, 3) bool in MODALITIES order): False where the fault took a sensor away for
the whole window (raw) or where the runtime's repair could not save it (preprocessed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rfsense.data.faults._core import (
    WINDOW_S,
    Domain,
    deliver_gaps,
    draw,
    interval_mask,
    n_time,
    register,
    time_first,
)
from rfsense.data.preprocess import PreprocessConfig
from rfsense.data.quality import QualityConfig
from rfsense.modalities import MODALITIES, SHAPES

__all__: list[str] = []  # implementations are reached through the registry

_FRAME_S = WINDOW_S / SHAPES["mmwave"][0]  # one mmWave step: 5 s / 17 = 0.29 s


@dataclass
class JointCtx:
    """What a joint fault implementation needs besides the streams."""

    severity: int
    value: float
    rngs: dict[str, list[np.random.Generator]]  # per modality, and "sample" for draws shared by its sensors
    domain: Domain
    prep: PreprocessConfig
    quality: QualityConfig = QualityConfig()

    @property
    def level(self) -> int:
        return self.severity - 1


Streams = dict[str, np.ndarray]


def _usable(streams: Streams) -> np.ndarray:
    n = len(next(iter(streams.values())))
    return np.ones((n, len(MODALITIES)), dtype=bool)


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored back into 0..n-1 at both ends (no repeat of the edge value); needs |shift| < n."""
    idx = np.where(idx < 0, -idx, idx)
    return np.where(idx > n - 1, 2 * (n - 1) - idx, idx)


_K_FRAMES = (1, 2, 3, 5, 8)


@register(
    "desync",
    kind="joint",
    modalities=MODALITIES,
    summary=(
        "Time desynchronisation between sensors (unsynchronised clocks, a buffering delay): the first target in "
        "the order mmwave, wifi, rfid is the reference; every other target's window is displaced by k mmWave "
        "frames (k x 0.29 s, rounded to its own steps), earlier or later at random per sample and sensor. Data "
        "from outside the window is unknown, so the part shifted in mirrors the window's edge: no gap, repeat or "
        "jump the health checks could key on, as with a real clock offset. Needs two or three targets; only the "
        "non-reference streams change."
    ),
    param="mmWave frames",
    values=tuple(float(k) for k in _K_FRAMES),
    levels=tuple(
        f"k = {k}: {k * _FRAME_S:.2f} s ({round(k * _FRAME_S * 200)} WiFi packets, {round(k * _FRAME_S * 29.6)} RFID "
        f"read slots) between the reference and each other sensor"
        for k in _K_FRAMES
    ),
    preprocessed="yes: the same displacement in seconds, mirrored at the edges, on the preprocessed arrays",
    has_preprocessed=True,
)
def desync(streams: Streams, targets: tuple[str, ...], ctx: JointCtx) -> tuple[Streams, np.ndarray]:
    seconds = ctx.value * _FRAME_S
    for m in targets[1:]:
        y = streams[m]
        t_len = n_time(m, y)
        sign = draw(ctx.rngs[m], lambda r: r.choice([-1, 1]))
        shift = sign * round(seconds * t_len / WINDOW_S)  # (B,)
        src = _reflect(np.arange(t_len)[None, :] + shift[:, None], t_len)  # y'[t] = y[t + shift]
        view = time_first(m, y)
        view[...] = view[np.arange(len(y))[:, None], src]
    return streams, _usable(streams)


_OUTAGE_S = (0.5, 1.0, 2.0, 3.5, 5.0)


@register(
    "sensor-lost",
    kind="joint",
    modalities=MODALITIES,
    summary=(
        "Whole sensors lost (power, cable, USB hub reset): the target sensors go dark together for a stretch at a "
        "random position, delivered like 'missing' (NaN WiFi packets and mmWave frames, held RFID reads); at "
        "severity 5 for the whole window, where the stream is all NaN and the sensor is reported lost. Severity 5 "
        "over the targets = all sensors outside a subset gives that subset's row of the 7-subset table (targets "
        "are the lost sensors: R keeps mmwave, so targets = wifi, rfid)."
    ),
    param="seconds",
    values=_OUTAGE_S,
    levels=tuple(
        (f"the target sensors dark for {s:g} s ({100 * s / WINDOW_S:.0f}% of the window)" if s < WINDOW_S
         else "the target sensors lost for the whole window (absent)")
        for s in _OUTAGE_S
    ),
    preprocessed=(
        "yes: a stretch becomes a gap repaired as the runtime does (interpolated or zeroed; RFID held); the whole "
        "window is zeros with usable False"
    ),
    has_preprocessed=True,
)
def sensor_lost(streams: Streams, targets: tuple[str, ...], ctx: JointCtx) -> tuple[Streams, np.ndarray]:
    usable = _usable(streams)
    start = draw(ctx.rngs["sample"], lambda r: r.uniform(0, 1)) * (WINDOW_S - ctx.value)
    for m in targets:
        j = MODALITIES.index(m)  # type: ignore[arg-type]
        y = streams[m]
        if ctx.value >= WINDOW_S:
            y[...] = np.nan if ctx.domain == "raw" else 0.0
            usable[:, j] = False
            continue
        gap = interval_mask(n_time(m, y), start, start + ctx.value)
        streams[m], ok = deliver_gaps(m, y, gap, ctx.domain, ctx.prep, ctx.quality)
        if ok is not None:
            usable[:, j] = ok
    return streams, usable


_P_FAIL = (0.05, 0.1, 0.2, 0.35, 0.5)


@register(
    "sensor-fail",
    kind="joint",
    modalities=MODALITIES,
    summary=(
        "Multi-sensor failure: each target sensor of each sample fails independently with probability p and then "
        "delivers nothing for the whole window (all-NaN stream, reported lost). All targets may fail together; "
        "the runtime then gives no prediction, which counts as wrong."
    ),
    param="p",
    values=_P_FAIL,
    levels=tuple(f"p = {p:g}: each sensor lost with probability {p:g}" for p in _P_FAIL),
    preprocessed="yes: failed sensors are zeros with usable False",
    has_preprocessed=True,
)
def sensor_fail(streams: Streams, targets: tuple[str, ...], ctx: JointCtx) -> tuple[Streams, np.ndarray]:
    usable = _usable(streams)
    for m in targets:
        j = MODALITIES.index(m)  # type: ignore[arg-type]
        failed = draw(ctx.rngs[m], lambda r: r.random()) < ctx.value  # nested: one draw for every level
        streams[m][failed] = np.nan if ctx.domain == "raw" else 0.0
        usable[:, j] = ~failed
    return streams, usable
