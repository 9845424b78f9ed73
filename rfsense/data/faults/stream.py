"""Faults that corrupt one modality of a sample: the paper's three protocols and the field faults.

Each implementation gets a float copy `y` (B, *shape) in its domain (raw streams or preprocessed arrays) and
a `Ctx`, changes `y` in place or replaces it, and returns (y, usable[B] or None). Level texts are built from
the same value tuples the code uses, so the words cannot drift from the numbers.
"""

from __future__ import annotations

import numpy as np

from rfsense.data.faults._core import (
    RANGE_BIN_M,
    WINDOW_S,
    ZERO_DOPPLER_BIN,
    Ctx,
    Result,
    deliver_gaps,
    draw,
    hold_reads,
    hold_steps,
    interpolate_gaps,
    interval_mask,
    n_time,
    register,
    rfid_period,
    step_times,
    wrap_phase,
)
from rfsense.modalities import MODALITIES, SHAPES

__all__: list[str] = []  # implementations are reached through the registry

_ALL = MODALITIES
_N_TAGS = SHAPES["rfid"][0]
_N_LINKS = SHAPES["wifi"][0]
_N_RANGE = SHAPES["mmwave"][1]
_N_FRAMES = SHAPES["mmwave"][0]
_RX_CHANNELS = 90  # one receiver NIC: 3 antennas x 30 subcarriers (channel = rx*90 + antenna*30 + subcarrier)
_N_RX = _N_LINKS // _RX_CHANNELS
_MM_PACKETS = 16  # assumed packets per mmWave heatmap frame, each carrying 16 of the 256 range bins
_WIFI_HZ = SHAPES["wifi"][1] / WINDOW_S  # 200 packets/s
_RFID_HZ = SHAPES["rfid"][1] / WINDOW_S  # 29.6 read slots/s per tag
_FRAME_S = WINDOW_S / _N_FRAMES  # 0.29 s per mmWave step


def _pct(f: float) -> str:
    return f"{100 * f:g}%"


def _channels(m: str) -> int:
    return {"wifi": _N_LINKS, "rfid": _N_TAGS, "mmwave": _N_RANGE}[m]


def _seconds(s: float) -> str:
    """'0.5 s (100 WiFi packets, 15 RFID read slots, 1.7 mmWave frames)'."""
    return f"{s:g} s ({s * _WIFI_HZ:.0f} WiFi packets, {s * _RFID_HZ:.0f} RFID read slots, {s / _FRAME_S:.1f} mmWave frames)"


# --------------------------------------------------------------------------------------------------
# The paper's protocols (DAGR App. C.2.3)

_RHO = (0.1, 0.3, 0.5, 0.7, 0.9)


@register(
    "dropout-input",
    kind="stream",
    modalities=_ALL,
    summary=(
        "The paper's dropout protocol applied at the input (an ONNX model has no token access): a fraction rho of "
        "the modality's channels is masked for the whole window. Masked means zero: WiFi amplitude 0 on a "
        "link x subcarrier channel, mmWave magnitude 0 in every frame and Doppler bin of a range bin, and RFID "
        "phase held at 0 rad, which the preprocessing (unwrap, per-tag median removal) turns into the all-zero "
        "row that masking a feature means (NaN would be the 'missing'/'lost-tags' faults instead)."
    ),
    param="rho",
    values=_RHO,
    levels=tuple(
        f"rho = {r:g}: {round(r * _N_LINKS)}/{_N_LINKS} WiFi channels, {round(r * _N_TAGS)}/{_N_TAGS} RFID tags, "
        f"{round(r * _N_RANGE)}/{_N_RANGE} mmWave range bins ({round(r * _N_RANGE) * RANGE_BIN_M:.1f} m) masked"
        for r in _RHO
    ),
    preprocessed="yes: the same channels set to 0 (exactly what preprocessing makes of the raw zeros)",
    has_preprocessed=True,
)
def dropout_input(y: np.ndarray, ctx: Ctx) -> Result:
    n = _channels(ctx.modality)
    k = round(ctx.value * n)
    order = draw(ctx.rngs, lambda r: r.permutation(n))  # nested: level s masks the first k of one order
    masked = np.zeros((len(y), n), dtype=bool)
    np.put_along_axis(masked, order[:, :k], True, axis=1)
    # (B, C, T)[mask (B, C)]; mmWave: (B, range, frames, Doppler) view
    (y.swapaxes(1, 2) if ctx.modality == "mmwave" else y)[masked] = 0.0
    return y, None


_SIGMA = (0.1, 0.25, 0.5, 1.0, 2.0)


@register(
    "gaussian",
    kind="stream",
    modalities=_ALL,
    summary=(
        "The paper's Gaussian protocol: x + sigma * s(m) * eps, eps ~ N(0, 1) per value, with s(m) the "
        "modality's std over the training split in the same domain (raw here; the caller passes it from the pack "
        "or manifest). As in the paper the noise is additive, so amplitudes and magnitudes may go below 0; RFID "
        "phase is re-wrapped into [0, 2 pi)."
    ),
    param="sigma",
    values=_SIGMA,
    levels=tuple(
        f"sigma = {s:g}: noise std {s:g} x s(m), a signal-to-noise ratio of {round(-20 * np.log10(s)) + 0:d} dB "
        "against the modality's spread"
        for s in _SIGMA
    ),
    preprocessed=(
        "yes: the same formula in the preprocessed domain, with s(m) the preprocessed-domain std (e.g. the RMS of "
        "the pack's per-channel stds). This is not raw noise pushed through the filters (WiFi's Hampel + 20 Hz "
        "low-pass keep about a third of white noise power: 0.34 measured on synthetic CSI); RFID noise adds to the unwrapped phase"
    ),
    has_preprocessed=True,
    needs_scale=True,
)
def gaussian(y: np.ndarray, ctx: Ctx) -> Result:
    assert ctx.scale is not None
    amp = ctx.value * ctx.scale
    for b, r in enumerate(ctx.rngs):
        # float32 draws whatever the dtype: the same sample gets the same noise from a float16 pack or a .npy
        y[b] += amp * r.standard_normal(y.shape[1:], dtype=np.float32)
    period = rfid_period(ctx.domain, ctx.prep) if ctx.modality == "rfid" else None
    if period is not None:
        wrap_phase(y, period)
    return y, None


_P = (0.1, 0.3, 0.5, 0.7, 0.9)


@register(
    "missing",
    kind="stream",
    modalities=_ALL,
    summary=(
        "The paper's random missingness: each time step is lost independently with probability p, delivered as "
        "the sensor would deliver it: a lost WiFi packet is an all-NaN column (all 270 channels), a lost mmWave "
        "frame an all-NaN frame, a missed RFID read (per tag and slot) a repeat of that tag's previous read, as "
        "XRF55 files and the reader's fixed-rate resampling hold it (the health checks count repeats as missed "
        "reads; a tag with no read left is NaN)."
    ),
    param="p",
    values=_P,
    levels=tuple(
        f"p = {p:g}: ~{p * 1000:.0f}/1000 WiFi packets, ~{p * _N_FRAMES:.1f}/{_N_FRAMES} mmWave frames, "
        f"~{p * 148:.0f}/148 reads per RFID tag lost"
        for p in _P
    ),
    preprocessed=(
        "yes: WiFi/mmWave steps set to NaN and repaired as the runtime does (interpolated along time; a sample "
        "failed by the quality rule is zeroed and unusable); RFID reads held (preprocessing keeps holds). "
        "Not reproduced: interpolating raw WiFi packets also removes their noise before the low-pass, which "
        "moves the filtered signal around short gaps; and a long RFID hold can make the raw unwrap slip by pi"
    ),
    has_preprocessed=True,
)
def missing(y: np.ndarray, ctx: Ctx) -> Result:
    t_len = n_time(ctx.modality, y)
    shape = (_N_TAGS, t_len) if ctx.modality == "rfid" else (t_len,)
    lost = draw(ctx.rngs, lambda r: r.random(shape)) < ctx.value
    return deliver_gaps(ctx.modality, y, lost, ctx.domain, ctx.prep, ctx.quality)


# --------------------------------------------------------------------------------------------------
# Field faults, all modalities

# Burst lengths (s) per level; burst i keeps its centre at every level and only grows, so levels nest.
_BURSTS = ((0.1,), (0.2, 0.2), (0.5, 0.5), (0.8, 0.8, 0.8), (1.0, 1.0, 1.0, 1.0))


@register(
    "bursty-loss",
    kind="stream",
    modalities=_ALL,
    summary=(
        "Contiguous losses (a busy NIC, an LLRP or UART hiccup): the whole stream delivers nothing for a few "
        "bursts placed at random; delivered like 'missing' (NaN packets/frames, held RFID reads). A burst hits an "
        "mmWave step when it covers the step's centre."
    ),
    param="seconds lost in bursts",
    values=tuple(sum(b) for b in _BURSTS),
    levels=tuple(
        f"{len(b)} burst{'s' if len(b) > 1 else ''} of {b[0]:g} s ({b[0] * _WIFI_HZ:.0f} WiFi packets each): up to "
        f"{_pct(min(sum(b) / WINDOW_S, 1))} of the window"
        for b in _BURSTS
    ),
    preprocessed="yes: as 'missing' (gaps interpolated or the sample zeroed; RFID held)",
    has_preprocessed=True,
)
def bursty_loss(y: np.ndarray, ctx: Ctx) -> Result:
    lengths = np.array(_BURSTS[ctx.level])
    centres = draw(ctx.rngs, lambda r: r.uniform(0, WINDOW_S, len(_BURSTS[-1])))[:, : len(lengths)]  # (B, k)
    t = step_times(n_time(ctx.modality, y))
    lost = (np.abs(t[None, None, :] - centres[:, :, None]) < lengths[None, :, None] / 2).any(axis=1)  # (B, T)
    return deliver_gaps(ctx.modality, y, lost, ctx.domain, ctx.prep, ctx.quality)


_Q_NAN = (0.005, 0.02, 0.05, 0.1, 0.2)


@register(
    "nan-inf",
    kind="stream",
    modalities=_ALL,
    summary=(
        "Packets that arrive but decode to non-finite numbers (a driver scaling by 0, log of 0, a corrupt "
        "buffer). A packet is one receiver's CSI report for WiFi (its 90 values of one time step), one tag read "
        "for RFID, and for mmWave 16 range bins of one frame (we assume a frame travels in 16 packets). Each "
        "corrupt packet is NaN (1/2), +Inf (1/4) or -Inf (1/4)."
    ),
    param="q",
    values=_Q_NAN,
    levels=tuple(
        f"q = {q:g}: ~{q * 3000:.0f}/3000 WiFi CSI reports, ~{q * 3404:.0f}/3404 RFID reads, "
        f"~{q * 272:.1f}/272 mmWave packets non-finite"
        for q in _Q_NAN
    ),
    preprocessed="yes: the same values set non-finite and repaired as the runtime does (interpolated or zeroed)",
    has_preprocessed=True,
)
def nan_inf(y: np.ndarray, ctx: Ctx) -> Result:
    m = ctx.modality
    t_len = n_time(m, y)
    groups = {"wifi": _N_RX, "rfid": _N_TAGS, "mmwave": _MM_PACKETS}[m]  # packets per time step
    u = draw(ctx.rngs, lambda r: r.random((2, groups, t_len)))  # (B, 2, G, T): corrupt?, which value
    bad = u[:, 0] < ctx.value
    if ctx.domain == "preprocessed":  # the runtime's repair of those values, whatever their kind
        return interpolate_gaps(m, y, bad, ctx.prep, ctx.quality)
    value = np.where(u[:, 1] < 0.5, np.nan, np.where(u[:, 1] < 0.75, np.inf, -np.inf)).astype(y.dtype)
    if m == "mmwave":  # (B, G, T) -> (B, frames, range, 1): packet g carries range bins 16g .. 16g+15
        bad, value = (np.repeat(a.swapaxes(1, 2), _N_RANGE // _MM_PACKETS, axis=2)[..., None] for a in (bad, value))
    elif m == "wifi":  # report of receiver r covers channels r*90 .. r*90+89
        bad, value = (np.repeat(a, _RX_CHANNELS, axis=1) for a in (bad, value))
    np.copyto(y, value, where=bad)
    return y, None


_FREEZE_S = (0.5, 1.0, 2.0, 3.5, 5.0)


@register(
    "stuck",
    kind="stream",
    modalities=_ALL,
    summary=(
        "A frozen stream (a stale driver buffer, a hung reader): for a stretch of the window at a random position "
        "every channel repeats the last time step delivered before it; at severity 5 the whole window repeats "
        "its first step, a flat-lined stream."
    ),
    param="seconds",
    values=_FREEZE_S,
    levels=tuple(
        f"frozen for {_seconds(s)}" + (": the whole window, flat-lined" if s >= WINDOW_S else "")
        for s in _FREEZE_S
    ),
    preprocessed="yes: the same steps hold the preprocessed value (mmWave exact but for the 99.9th-percentile "
    "clip level; RFID exact unless the raw unwrap slips; WiFi's filters would round the stretch's edges)",
    has_preprocessed=True,
)
def stuck(y: np.ndarray, ctx: Ctx) -> Result:
    start = draw(ctx.rngs, lambda r: r.uniform(0, 1)) * (WINDOW_S - ctx.value)
    frozen = interval_mask(n_time(ctx.modality, y), start, start + ctx.value)
    frozen[:, 0] = False  # a stretch starting at the first step repeats that step
    return hold_steps(ctx.modality, y, frozen), None


_Q_CLIP = (0.01, 0.05, 0.1, 0.25, 0.5)


@register(
    "saturation",
    kind="stream",
    modalities=("mmwave", "wifi"),
    summary=(
        "Saturation and clipping (an AGC that is too hot, an overloaded ADC, a capped heatmap): every value above "
        "a ceiling at the sample's own (1 - q) quantile is clipped to it. Deterministic given the data (no random "
        "draw). Not for RFID: a reader reports phase, which has no ceiling to clip at."
    ),
    param="q",
    values=_Q_CLIP,
    levels=tuple(f"ceiling at the sample's {100 * (1 - q):g}th percentile: the top {_pct(q)} of values clipped" for q in _Q_CLIP),
    preprocessed=(
        "yes: clipped at the same quantile of the preprocessed sample (exact for mmWave, whose log is monotone; "
        "approximate for WiFi, whose filters run after the receiver clipped)"
    ),
    has_preprocessed=True,
)
def saturation(y: np.ndarray, ctx: Ctx) -> Result:
    flat = y.reshape(len(y), -1)
    k = int(np.floor((1 - ctx.value) * (flat.shape[1] - 1)))
    for b in range(len(y)):  # one O(n) selection per sample
        ceiling = np.partition(flat[b], k)[k]
        np.minimum(flat[b], ceiling, out=flat[b])
    return y, None


# --------------------------------------------------------------------------------------------------
# WiFi field faults

_AGC = ((1, 1.0), (2, 2.0), (3, 3.0), (4, 6.0), (6, 10.0))  # (number of steps, dB each)


@register(
    "agc-step",
    kind="stream",
    modalities=("wifi",),
    summary=(
        "Automatic gain control steps: a receiver NIC re-levels its gain, so all 90 channels of that receiver "
        "jump by the same number of dB at one packet and stay there. Each step picks a receiver, a sign and a "
        "time (steps at least 50 ms apart)."
    ),
    param="dB",
    values=tuple(db for _, db in _AGC),
    levels=tuple(f"{n} gain step{'s' if n > 1 else ''} of +-{db:g} dB on random receivers" for n, db in _AGC),
    preprocessed=(
        "yes: the preprocessed amplitude is multiplied by the same gain profile (WiFi filters are linear and the "
        "Hampel filter scale-equivariant, so this is exact away from each step's ~50 ms filter transient; with "
        "wifi.remove_static on, the level jump is only approximated)"
    ),
    has_preprocessed=True,
)
def agc_step(y: np.ndarray, ctx: Ctx) -> Result:
    n_max = _AGC[-1][0]
    n, db = _AGC[ctx.level]
    # 99 slots of 50 ms (0.05 .. 4.95 s), drawn without replacement: steps never coincide
    when = draw(ctx.rngs, lambda r: (r.choice(99, n_max, replace=False) + 1) * 0.05)[:, :n]
    rx = draw(ctx.rngs, lambda r: r.integers(0, _N_RX, n_max))[:, :n]
    sign = draw(ctx.rngs, lambda r: r.choice([-1.0, 1.0], n_max))[:, :n]
    t = step_times(n_time("wifi", y))
    gain_db = np.zeros((len(y), _N_RX, len(t)))
    for i in range(n):
        on = (t[None, :] >= when[:, i, None]) * (sign[:, i, None] * db)  # (B, T)
        gain_db[np.arange(len(y)), rx[:, i]] += on
    y *= np.repeat(10 ** (gain_db / 20), _RX_CHANNELS, axis=1).astype(y.dtype)
    return y, None


_DEAD_S = (0.5, 1.0, 2.0, 3.5, 5.0)


@register(
    "dead-receiver",
    kind="stream",
    modalities=("wifi",),
    summary=(
        "One dead receiver: one of the three NICs (90 of 270 channels) reports zero amplitude (a dead RF front "
        "end, or a capture that zero-fills a receiver it lost, as rfsense's ingest does) for a stretch at a "
        "random position. The health checks tolerate up to two dead receivers by design."
    ),
    param="seconds",
    values=_DEAD_S,
    levels=tuple(
        f"one receiver at zero for {s:g} s ({s * _WIFI_HZ:.0f} packets)" + (": the whole window" if s >= WINDOW_S else "")
        for s in _DEAD_S
    ),
    preprocessed="yes: the same values set to 0 (exact for the whole window; filter edges differ for a stretch)",
    has_preprocessed=True,
)
def dead_receiver(y: np.ndarray, ctx: Ctx) -> Result:
    rx = draw(ctx.rngs, lambda r: r.integers(0, _N_RX))
    start = draw(ctx.rngs, lambda r: r.uniform(0, 1)) * (WINDOW_S - ctx.value)
    dead = interval_mask(n_time("wifi", y), start, start + ctx.value)  # (B, T)
    rows = np.arange(_N_LINKS)[None, :] // _RX_CHANNELS == rx[:, None]  # (B, 270)
    y[rows[:, :, None] & dead[:, None, :]] = 0.0
    return y, None


# --------------------------------------------------------------------------------------------------
# RFID field faults

_Q_JUMP = (0.05, 0.1, 0.2, 0.35, 0.5)


@register(
    "phase-jump",
    kind="stream",
    modalities=("rfid",),
    summary=(
        "pi phase jumps: the reader's 180-degree ambiguity (Miller encoding) adds pi to a read with probability q; "
        "a held read (an exact repeat of the slot before) keeps the jump of the read it repeats."
    ),
    param="q",
    values=_Q_JUMP,
    levels=tuple(f"q = {q:g}: ~{q * 148:.0f} of 148 reads per tag offset by pi" for q in _Q_JUMP),
    preprocessed=(
        "no: with the default rfid.fix_jumps the preprocessing folds phase modulo pi, which removes exactly this "
        "fault (the variant would be the identity); without it, how a pi step unwraps depends on its neighbours, "
        "so apply the raw fault and preprocess instead"
    ),
    has_preprocessed=False,
)
def phase_jump(y: np.ndarray, ctx: Ctx) -> Result:
    t_len = y.shape[-1]
    flip = draw(ctx.rngs, lambda r: r.random((_N_TAGS, t_len))) < ctx.value  # (B, 23, T)
    with np.errstate(invalid="ignore"):
        new_read = np.ones(y.shape, dtype=bool)
        new_read[..., 1:] = y[..., 1:] != y[..., :-1]
    src = np.maximum.accumulate(np.where(new_read, np.arange(t_len), 0), axis=-1)
    y += np.pi * np.take_along_axis(flip, src, axis=-1)
    return wrap_phase(y), None


_LOST_TAGS = (1, 3, 6, 12, 18)


@register(
    "lost-tags",
    kind="stream",
    modalities=("rfid",),
    summary=(
        "Tags the reader stops seeing (occluded, detuned by the body, fallen off): from a random moment in the "
        "first half of the window on, each lost tag delivers no read and its last read is held (a tag is read at "
        "least once). Lost tags and their moments are nested across levels."
    ),
    param="tags",
    values=tuple(float(k) for k in _LOST_TAGS),
    levels=tuple(f"{k} of {_N_TAGS} tags lost after a random moment in 0-{WINDOW_S / 2:g} s" for k in _LOST_TAGS),
    preprocessed="yes: the same reads hold the tag's previous preprocessed value (then each tag's median is "
    "removed again, as preprocessing does; this matches the raw route to float precision)",
    has_preprocessed=True,
)
def lost_tags(y: np.ndarray, ctx: Ctx) -> Result:
    k = int(ctx.value)
    order = draw(ctx.rngs, lambda r: r.permutation(_N_TAGS))
    when = draw(ctx.rngs, lambda r: r.uniform(0, WINDOW_S / 2, _N_TAGS))  # per tag, in tag order
    chosen = np.zeros((len(y), _N_TAGS), dtype=bool)
    np.put_along_axis(chosen, order[:, :k], True, axis=1)
    lost = chosen[:, :, None] & (step_times(y.shape[-1])[None, None, :] >= when[:, :, None])
    lost[..., 0] = False
    return hold_reads(y, lost), None


# --------------------------------------------------------------------------------------------------
# mmWave field faults

_DROPPED = (1, 2, 4, 7, 11)


@register(
    "dropped-frames",
    kind="stream",
    modalities=("mmwave",),
    summary=(
        "Frames lost on the radar's data link that the capture tool leaves as empty buffers: the frame arrives as "
        "an all-zero heatmap (not NaN, so unlike 'missing' nothing flags it; the health checks treat zero cells "
        "as background)."
    ),
    param="frames",
    values=tuple(float(k) for k in _DROPPED),
    levels=tuple(f"{k} of {_N_FRAMES} frames ({k * _FRAME_S:.1f} s) all zero" for k in _DROPPED),
    preprocessed="yes: the same frames set to 0 (log1p(0) = 0)",
    has_preprocessed=True,
)
def dropped_frames(y: np.ndarray, ctx: Ctx) -> Result:
    order = draw(ctx.rngs, lambda r: r.permutation(_N_FRAMES))
    zero = np.zeros((len(y), _N_FRAMES), dtype=bool)
    np.put_along_axis(zero, order[:, : int(ctx.value)], True, axis=1)
    y[zero] = 0.0
    return y, None


def _median(a: np.ndarray) -> float:
    """Median (upper middle for an even count) of the finite values; one O(n) selection, 5x np.nanmedian."""
    v = a.ravel()
    if not np.isfinite(v).all():
        v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0
    k = v.size // 2
    return float(np.partition(v, k)[k])


_SECTOR_M = (0.25, 0.5, 1.0, 1.5, 2.5)


@register(
    "blinded-sector",
    kind="stream",
    modalities=("mmwave",),
    summary=(
        "A blinded range sector (an absorber, a wet radome patch, interference): a band of range bins around the "
        "person shows only receiver noise, Rayleigh-distributed with the sample's own noise floor (median "
        "magnitude / 1.18). The band is centred near the range bin with the most moving energy (Doppler bins "
        "away from zero), offset at random by up to half its width; bands nest across levels."
    ),
    param="metres",
    values=_SECTOR_M,
    levels=tuple(f"{w:g} m ({round(w / RANGE_BIN_M)} range bins) around the target blinded" for w in _SECTOR_M),
    preprocessed="yes: the noise is made in raw magnitude from the preprocessed sample's floor and log1p'ed",
    has_preprocessed=True,
)
def blinded_sector(y: np.ndarray, ctx: Ctx) -> Result:
    width = round(ctx.value / RANGE_BIN_M)
    log = ctx.domain == "preprocessed" and ctx.prep.mmwave.log
    static = slice(ZERO_DOPPLER_BIN - 2, ZERO_DOPPLER_BIN + 3)  # static clutter sits at zero Doppler
    mag = np.expm1(y) if log else y  # locate the target on raw magnitudes in both domains
    energy = np.nansum(mag, axis=(1, 3)) - np.nansum(mag[..., static], axis=(1, 3))  # (B, range): moving energy
    centre = energy.argmax(axis=1) + draw(ctx.rngs, lambda r: r.uniform(-1, 1)) * width / 2
    lo = np.clip(np.floor(centre - width / 2).astype(int), 0, _N_RANGE)
    hi = np.clip(np.ceil(centre + width / 2).astype(int), 0, _N_RANGE)
    for b, r in enumerate(ctx.rngs):
        floor = _median(y[b])
        if log:
            floor = float(np.expm1(floor))
        # Rayleigh median = sigma * sqrt(2 ln 2)
        noise = r.rayleigh(max(floor, 0.0) / np.sqrt(2 * np.log(2)), (y.shape[1], hi[b] - lo[b], y.shape[3]))
        if log:
            noise = np.log1p(noise)
        if ctx.domain == "preprocessed" and ctx.prep.mmwave.clip_max is not None:
            noise = np.minimum(noise, ctx.prep.mmwave.clip_max)
        y[b, :, lo[b] : hi[b]] = noise
    return y, None

