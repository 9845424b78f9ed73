"""Fault injectors for sensor-failure stress tests and fault-aware training (numpy only).

Every fault has 5 severities (0 is the identity) whose physical meaning is written beside its code and
printed by `describe_faults()` (``rfsense stress --list-faults``). Faults act on a batch of raw streams as
the runtime receives them, (B, *SHAPES[m]) (mmWave also (B, 1, 17, 256, 128)), and return a new float array
of the same shape and dtype; the input is never modified. Non-float inputs come back as float64.

Determinism: each sample draws from its own numpy Generator seeded by SeedSequence([seed, *sample_id,
crc32(fault), modality index]), so a sample gets the same corruption whatever batch it is in, whichever model
is evaluated and whatever its dtype. The severity is not in the seed: all levels share the draws, so a higher
level corrupts a superset of a lower one (per-sample magnitudes grow monotonically; curves are smooth).

Missing data reaches the runtime as the sensor delivers it: a lost WiFi packet is an all-NaN column, a lost
mmWave frame an all-NaN frame, a missed RFID read a repeat of the tag's previous read (XRF55's hold).

| fault | kind | modalities | severity 1 .. 5 | preprocessed variant |
|---|---|---|---|---|
| dropout | features | all | rho 0.1 .. 0.9 of encoder tokens (`feature_dropout_mask`) | n/a (acts on features) |
| dropout-input | stream | all | rho 0.1 .. 0.9 of channels at zero | yes (zeros) |
| gaussian | stream | all | sigma 0.1 .. 2 x s(m) (+20 .. -6 dB) | yes (s(m) of that domain) |
| missing | stream | all | p 0.1 .. 0.9 of steps lost | yes (repaired or zeroed; RFID held) |
| bursty-loss | stream | all | 1 x 0.1 s .. 4 x 1 s bursts | yes (as missing) |
| nan-inf | stream | all | 0.5% .. 20% of packets NaN/Inf | yes (repaired or zeroed) |
| stuck | stream | all | frozen 0.5 s .. whole window | yes (held) |
| saturation | stream | mmwave, wifi | top 1% .. 50% of values clipped | yes (quantile clip) |
| agc-step | stream | wifi | 1 x 1 dB .. 6 x 10 dB gain steps | yes (gain profile) |
| dead-receiver | stream | wifi | one NIC at zero 0.5 s .. 5 s | yes (zeros) |
| phase-jump | stream | rfid | 5% .. 50% of reads + pi | no: fix_jumps folds it away |
| lost-tags | stream | rfid | 1 .. 18 of 23 tags lost (held) | yes (held) |
| dropped-frames | stream | mmwave | 1 .. 11 of 17 frames all zero | yes (zeros) |
| blinded-sector | stream | mmwave | 0.25 .. 2.5 m of range blinded | yes (noise floor, log1p) |
| desync | joint | 2-3 sensors | 1 .. 8 mmWave frames (0.29 .. 2.35 s) | yes (same shift) |
| sensor-lost | joint | 1-3 sensors | dark 0.5 s .. whole window (lost) | yes (gap / zeros + unusable) |
| sensor-fail | joint | 1-3 sensors | each lost with p 0.05 .. 0.5 | yes (zeros + unusable) |

Preprocessed variants (`apply_preprocessed`, `apply_joint_preprocessed`) act on what the packer stores
(`rfsense.data.preprocess.preprocess` output under a given PreprocessConfig) for fault-aware training, with
the same per-sample draws as the raw faults: gaps are left as the runtime's repair would leave them
(interpolated along time, or the sample zeroed and reported unusable where the quality rule fails it), RFID
holds are kept (and each tag's median removed again, as preprocessing does last), channels are zeroed, noise is
scaled by that domain's std. The health checks' other verdicts (gap length, flat lines, saturation, valid
reads) are not simulated there: the stress runner measures them on raw streams, and training already drops
whole modalities (train.keep_prob). `Fault.preprocessed` says per fault how exact the variant is.

Example::

    from rfsense.data.faults import apply_fault, describe_faults
    y = apply_fault("missing", "wifi", x, severity=3, seed=0, sample_ids=split.keys[rows])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from rfsense.data.faults import joint, stream  # noqa: F401  (importing them fills the registry)
from rfsense.data.faults._core import (
    N_SEVERITIES,
    REGISTRY,
    Ctx,
    Domain,
    Fault,
    as_batch,
    check_ids,
    check_modality,
    check_scale,
    check_seed,
    check_severity,
    get_fault,
    register,
    reoffset_rfid,
    sample_rngs,
)
from rfsense.data.faults.joint import JointCtx
from rfsense.data.preprocess import PreprocessConfig
from rfsense.data.quality import QualityConfig
from rfsense.errors import ConfigError, DataError
from rfsense.modalities import MODALITIES

__all__ = [
    "FAULTS",
    "N_SEVERITIES",
    "Fault",
    "apply_fault",
    "apply_joint",
    "apply_joint_preprocessed",
    "apply_preprocessed",
    "describe_faults",
    "feature_dropout_mask",
    "get_fault",
    "list_faults",
]

_RHO = (0.1, 0.3, 0.5, 0.7, 0.9)
register(
    "dropout",
    kind="features",
    modalities=MODALITIES,
    summary=(
        "The paper's dropout protocol (DAGR App. C.2.3, Fig. 8): a fraction rho of one modality's encoder output "
        "features or tokens is masked before fusion. Needs the PyTorch model (a run folder); the mask comes from "
        "`feature_dropout_mask`. On an ONNX model use 'dropout-input'."
    ),
    param="rho",
    values=_RHO,
    levels=tuple(f"rho = {r:g}: {100 * r:g}% of the modality's features masked" for r in _RHO),
    preprocessed="n/a: acts on encoder features, not on arrays",
    has_preprocessed=False,
)(None)

_KIND_ORDER = ("features", "stream", "joint")
# The registry in reading order: the feature-level protocol, then stream faults (the paper's protocols first,
# then field faults), then joint faults; within a kind, in the order their modules define them.
FAULTS: Mapping[str, Fault] = {
    f.name: f for kind in _KIND_ORDER for f in REGISTRY.values() if f.kind == kind
}


def list_faults(modality: str | None = None, kind: str | None = None) -> list[Fault]:
    """Registered faults, optionally only those that act on `modality` and/or are of `kind`."""
    return [
        f for f in FAULTS.values()
        if (modality is None or modality in f.modalities) and (kind is None or f.kind == kind)
    ]


def describe_faults() -> str:
    """Every fault, its modalities, its five severities and their physical meaning, as plain text."""
    out = []
    for f in FAULTS.values():
        out.append(f"{f.name} ({f.kind}; {', '.join(f.modalities)}; parameter {f.param})")
        out.append(f"    {f.summary}")
        for s, text in enumerate(f.levels, start=1):
            out.append(f"    {s}: {text}")
        out.append(f"    preprocessed variant: {f.preprocessed}")
    return "\n".join(out)


def _stream_fault(name: str, modality: str, domain: Domain) -> Fault:
    fault = get_fault(name)
    if fault.kind == "joint":
        fn = "apply_joint" if domain == "raw" else "apply_joint_preprocessed"
        raise ConfigError(f"fault '{name}' acts on several sensors of a sample at once; use {fn}")
    if fault.kind == "features":
        raise ConfigError(
            f"fault '{name}' masks encoder features (use feature_dropout_mask with the PyTorch model); "
            "on streams use 'dropout-input'"
        )
    check_modality(fault, modality)
    if domain == "preprocessed" and not fault.has_preprocessed:
        raise ConfigError(f"fault '{name}' has no preprocessed variant: {fault.preprocessed}")
    return fault


def _run_stream(
    name: str,
    modality: str,
    x: npt.ArrayLike,
    severity: int,
    seed: int,
    sample_ids: npt.ArrayLike,
    scale: float | Mapping[str, float] | None,
    domain: Domain,
    prep: PreprocessConfig,
    quality: QualityConfig = QualityConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    fault = _stream_fault(name, modality, domain)
    severity = check_severity(severity, name)
    seed = check_seed(seed)
    s = check_scale(fault, modality, scale, domain) if fault.needs_scale else None
    arr, y = as_batch(modality, x, name, domain, prep)
    ids = check_ids(sample_ids, len(y), name)
    usable = np.ones(len(y), dtype=bool)
    if severity > 0 and len(y):
        rngs = sample_rngs(seed, ids, name, MODALITIES.index(modality))  # type: ignore[arg-type]
        ctx = Ctx(modality, severity, fault.values[severity - 1], rngs, domain, prep, s, quality)
        assert fault.fn is not None
        y, ok = fault.fn(y, ctx)
        if ok is not None:
            usable = ok
        if domain == "preprocessed" and modality == "rfid":
            reoffset_rfid(y, prep)
    return y.reshape(arr.shape), usable


def apply_fault(
    name: str,
    modality: str,
    x: npt.ArrayLike,
    severity: int,
    *,
    seed: int,
    sample_ids: npt.ArrayLike,
    scale: float | Mapping[str, float] | None = None,
) -> np.ndarray:
    """Corrupt one modality of a batch of raw streams with a single-modality fault.

    Args:
        name: a fault of kind "stream" (see `describe_faults`).
        modality: "mmwave", "wifi" or "rfid"; must be one the fault applies to.
        x: raw batch (B, *SHAPES[modality]); mmWave also (B, 1, 17, 256, 128).
        severity: 0..5; 0 returns an exact copy.
        seed: non-negative int; with the sample ids it fixes every draw.
        sample_ids: (B,) non-negative ints, or (B, k) (e.g. a pack's (volunteer, action, trial) keys).
        scale: s(m), the modality's raw-domain std over the training split, as a number or
            {modality: number}; required by "gaussian".

    Returns:
        New array, same shape as `x`, same dtype if `x` is float (else float64).

    Raises:
        ConfigError: unknown fault, joint/feature fault, wrong modality for the fault, severity outside 0..5,
            bad seed, missing or bad scale.
        DataError: wrong shape or dtype of `x`, sample ids of the wrong length or not non-negative ints.
    """
    return _run_stream(name, modality, x, severity, seed, sample_ids, scale, "raw", PreprocessConfig())[0]


def apply_preprocessed(
    name: str,
    modality: str,
    x: npt.ArrayLike,
    severity: int,
    *,
    seed: int,
    sample_ids: npt.ArrayLike,
    scale: float | Mapping[str, float] | None = None,
    prep: PreprocessConfig | None = None,
    quality: QualityConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt one modality of a batch of preprocessed arrays (what the packer stores) for fault-aware training.

    Args:
        name, modality, severity, seed, sample_ids: as in `apply_fault`; the same sample gets the same draws.
        x: (B, *SHAPES[modality]) preprocessed batch, any float dtype (float16 packs keep float16).
        scale: s(m) in the preprocessed domain; required by "gaussian".
        prep: the PreprocessConfig the arrays were made with (the pack's); default PreprocessConfig().

    Returns:
        (new array of the same shape and dtype, usable bool[B]): usable is False for samples the runtime's
        repair would fail (`quality`: the pack's QualityConfig); their rows are zeros.

    Raises:
        ConfigError: as `apply_fault`, or a fault with no preprocessed variant (the message says why).
        DataError: wrong shape or dtype of `x`, bad sample ids.
    """
    return _run_stream(name, modality, x, severity, seed, sample_ids, scale, "preprocessed",
                       prep or PreprocessConfig(), quality or QualityConfig())


def _run_joint(
    name: str,
    streams: Mapping[str, npt.ArrayLike | None],
    severity: int,
    seed: int,
    sample_ids: npt.ArrayLike,
    targets: str | tuple[str, ...] | list[str] | None,
    domain: Domain,
    prep: PreprocessConfig,
    quality: QualityConfig = QualityConfig(),
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    fault = get_fault(name)
    if fault.kind != "joint":
        fn = "apply_fault" if domain == "raw" else "apply_preprocessed"
        raise ConfigError(f"fault '{name}' acts on one modality at a time; use {fn}")
    severity = check_severity(severity, name)
    seed = check_seed(seed)
    unknown = sorted(set(streams) - set(MODALITIES))
    if unknown:
        raise DataError(f"unknown modality {unknown} in the streams for fault '{name}'; expected some of {', '.join(MODALITIES)}")
    given = {m: streams[m] for m in MODALITIES if streams.get(m) is not None}
    if not given:
        raise DataError(f"fault '{name}' got no stream; expected arrays for some of {', '.join(MODALITIES)}")
    chosen = (targets,) if isinstance(targets, str) else tuple(targets) if targets is not None else tuple(given)
    for m in chosen:
        if m not in MODALITIES:
            raise ConfigError(f"unknown target modality {m!r} for fault '{name}'; expected some of {', '.join(MODALITIES)}")
        if m not in given:
            raise ConfigError(f"target {m} of fault '{name}' has no stream; given: {', '.join(given)}")
    chosen = tuple(m for m in MODALITIES if m in chosen)  # mmwave, wifi, rfid order; duplicates dropped
    least = 2 if name == "desync" else 1
    if len(chosen) < least:
        raise ConfigError(f"fault '{name}' needs at least {least} target sensors; got {', '.join(chosen) or 'none'}")
    shapes, arrays = {}, {}
    for m, x in given.items():
        arr, arrays[m] = as_batch(m, x, name, domain, prep)
        shapes[m] = arr.shape
    sizes = {m: len(a) for m, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{m} {b}" for m, b in sizes.items())
        raise DataError(f"streams for fault '{name}' disagree on the batch size: {listing}")
    n = next(iter(sizes.values()))
    ids = check_ids(sample_ids, n, name)
    usable = np.ones((n, len(MODALITIES)), dtype=bool)
    if severity > 0 and n:
        rngs = {m: sample_rngs(seed, ids, name, j) for j, m in enumerate(MODALITIES) if m in chosen}
        rngs["sample"] = sample_rngs(seed, ids, name, len(MODALITIES))
        ctx = JointCtx(severity, fault.values[severity - 1], rngs, domain, prep, quality)
        assert fault.fn is not None
        arrays, usable = fault.fn(arrays, chosen, ctx)
        if domain == "preprocessed" and "rfid" in chosen:
            reoffset_rfid(arrays["rfid"], prep)
    return {m: a.reshape(shapes[m]) for m, a in arrays.items()}, usable


def apply_joint(
    name: str,
    streams: Mapping[str, npt.ArrayLike | None],
    severity: int,
    *,
    seed: int,
    sample_ids: npt.ArrayLike,
    targets: str | tuple[str, ...] | list[str] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Corrupt several sensors of each sample at once ("desync", "sensor-lost", "sensor-fail") on raw streams.

    Args:
        name: a fault of kind "joint".
        streams: modality -> raw batch (B, *SHAPES[m]) (None or a missing key: not given). All the same B.
        severity, seed, sample_ids: as in `apply_fault`.
        targets: the sensors the fault acts on (default: every given stream). "desync" needs two or three
            and keeps the first (in mmwave, wifi, rfid order) as the reference; for "sensor-lost" they are
            the lost sensors (the kept subset's complement).

    Returns:
        (streams, lost): a new array per given modality (same shape; float dtype kept, else float64), and
        lost bool (B, 3) in MODALITIES order, True where the fault took the sensor away for the whole window
        (its stream is then all NaN; a runner may pass it to the model as absent).

    Raises:
        ConfigError: unknown or non-joint fault, severity outside 0..5, bad seed, targets not given or too few.
        DataError: unknown modality key, wrong shapes, batch sizes that disagree, bad sample ids.
    """
    out, usable = _run_joint(name, streams, severity, seed, sample_ids, targets, "raw", PreprocessConfig())
    return out, ~usable


def apply_joint_preprocessed(
    name: str,
    streams: Mapping[str, npt.ArrayLike | None],
    severity: int,
    *,
    seed: int,
    sample_ids: npt.ArrayLike,
    targets: str | tuple[str, ...] | list[str] | None = None,
    prep: PreprocessConfig | None = None,
    quality: QualityConfig | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`apply_joint` on preprocessed arrays (B, *SHAPES[m]) for fault-aware training.

    Returns:
        (streams, usable bool (B, 3)): usable is False where the sensor is lost or the runtime's repair would
        zero it; those rows are zeros.
    """
    return _run_joint(name, streams, severity, seed, sample_ids, targets, "preprocessed", prep or PreprocessConfig(),
                      quality or QualityConfig())


def feature_dropout_mask(
    n_features: int, modality: str, severity: int, *, seed: int, sample_ids: npt.ArrayLike
) -> np.ndarray:
    """Mask for the paper's feature-level "dropout": bool (B, n_features), True = masked.

    Exactly round(rho * n_features) features per sample, rho = 0.1, 0.3, 0.5, 0.7, 0.9 for severities 1..5
    (none at 0), drawn per sample as the stream faults are (nested across severities).

    Raises:
        ConfigError: severity outside 0..5, bad seed, unknown modality, n_features < 1.
        DataError: bad sample ids.
    """
    fault = get_fault("dropout")
    check_modality(fault, modality)
    severity = check_severity(severity, fault.name)
    seed = check_seed(seed)
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ConfigError(f"n_features {n_features!r} for fault 'dropout'; expected a positive integer")
    ids = check_ids(sample_ids, np.shape(sample_ids)[0] if np.ndim(sample_ids) else 0, fault.name)
    mask = np.zeros((len(ids), int(n_features)), dtype=bool)
    if severity == 0:
        return mask
    k = round(fault.values[severity - 1] * n_features)
    for b, r in enumerate(sample_rngs(seed, ids, fault.name, MODALITIES.index(modality))):  # type: ignore[arg-type]
        mask[b, r.permutation(n_features)[:k]] = True
    return mask

