"""Stream health checks run on every sample before inference (numpy only, no torch).

For each modality and each sample the check gives one `Verdict`. The statuses and the rule that decides
them are the training data's (`rfsense.data.quality`, with the thresholds the model was packed with, from
the manifest), so the runtime never accepts what training would have refused, nor the other way round:

- ``ok``: the stream passed every check and is used as it is;
- ``degraded``: usable, but part of the sensor carries no signal (a WiFi receiver missing, lost RFID tags);
- ``repaired``: a few NaN/Inf values in short gaps were filled by interpolation along time;
- ``implausible``: no sensor of this kind produces it: physical checks on the raw values (negative
  amplitudes, phases outside the readers' ranges, absurd magnitudes, integer arrays; `rfsense.data.quality`),
  and, in the runtime, the plausibility checks of an rfsense-onnx/2 model after preprocessing
  (`rfsense.deploy.plausibility`: per-channel statistics and the out-of-distribution score); zero-filled and
  masked like a failed stream, with the reason (and the score);
- ``failed``: the stream is unusable for this sample; it is zero-filled and masked (present=False);
- ``absent``: no stream was given.

Before that rule, the whole array must have the right shape and a real dtype: a wrong shape fails that
modality for every sample; it does not raise, so one bad stream cannot take the others down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rfsense.data.quality import STATUSES, USABLE, QualityConfig, assess
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES, SHAPES, canonical_batch, expected_shape

__all__ = ["STATUSES", "Verdict", "batch_size", "check_stream", "check_streams", "read_inputs"]

_logger = logging.getLogger(__name__)

# Accepted dtype kinds: float, signed/unsigned int, bool (all real numbers; cast to float64).
_REAL_KINDS = "fiub"


@dataclass
class Verdict:
    """Health of one modality of one sample: status is one of STATUSES.

    ``ood`` is the stream's out-of-distribution score (the Mahalanobis distance of its pooled embedding to the
    nearest class mean, `rfsense.deploy.plausibility`) when the model computed one, else None.
    """

    modality: str
    status: str
    reasons: list[str] = field(default_factory=list)
    ood: float | None = None

    @property
    def usable(self) -> bool:
        """True when the stream goes to the model (ok, degraded or repaired)."""
        return self.status in USABLE

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "status": self.status, "reasons": list(self.reasons), "ood": self.ood}


def read_inputs(inputs: dict[str, npt.ArrayLike | None]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
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
    arrays, _ = read_inputs(inputs)
    good = {m: a.shape[0] for m, a in arrays.items() if canonical_batch(m, a) is not None}  # type: ignore[arg-type]
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
    inputs: dict[str, npt.ArrayLike | None], cfg: QualityConfig | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, list[dict[str, Verdict]]]:
    """Check, repair and mask every stream of a batch.

    Args:
        inputs: modality -> array of shape (B, *SHAPES[m]) (mmwave also (B, 1, 17, 256, 128)), float16/32/64
            (integer and bool arrays are implausible: `rfsense.data.quality`, check 0), or None / missing key
            for an absent modality. With every modality absent the batch is one sample.
        cfg: thresholds; defaults to `QualityConfig()` (the runtime passes the manifest's).

    Returns:
        (arrays, present, verdicts): ``arrays[m]`` is (B, *SHAPES[m]) for every modality, repaired, with
        unusable and absent rows zero-filled: float64 for a float64 input, else float32, and the caller's
        own array (a view) when nothing had to change, so treat it as read-only; ``present`` is bool (B, 3)
        in MODALITIES order (True for usable streams); ``verdicts[i][m]`` is the Verdict of modality m of
        sample i.

    Raises:
        DataError: an unknown modality key, or inputs that disagree on the batch size. A wrong shape or
            dtype is not raised: that modality fails, with the reason, for every sample.
    """
    cfg = cfg or QualityConfig()
    given, unreadable = read_inputs(inputs)
    n = batch_size(inputs)
    arrays: dict[str, np.ndarray] = {}
    present = np.zeros((n, len(MODALITIES)), dtype=bool)
    verdicts: list[dict[str, Verdict]] = [{} for _ in range(n)]
    for j, m in enumerate(MODALITIES):
        arrays[m], present[:, j], column = check_stream(m, given.get(m), n, cfg, unreadable.get(m))
        for v, verdict in zip(verdicts, column, strict=True):
            v[m] = verdict
    return arrays, present, verdicts


def check_stream(
    m: str, arr: np.ndarray | None, n: int, cfg: QualityConfig, unreadable: str | None = None
) -> tuple[np.ndarray, np.ndarray, list[Verdict]]:
    """`check_streams` for one modality of a batch of n samples (the runtime runs the modalities concurrently).

    Args:
        m: the modality; arr: its array as given (None: absent); unreadable: why the input could not be read as an
            array (it then fails for every sample).

    Returns:
        (values (n, *SHAPES[m]) as in `check_streams`, usable bool (n,), one Verdict per sample).
    """
    zeros = lambda: np.zeros((n, *SHAPES[m]), dtype=np.float32)  # noqa: E731
    none = np.zeros(n, dtype=bool)
    if unreadable or arr is None:
        return zeros(), none, [Verdict(m, "failed", [unreadable]) if unreadable else
                               Verdict(m, "absent", [f"{m}: absent (no stream given)"]) for _ in range(n)]
    canon = canonical_batch(m, arr) if arr.dtype.kind in _REAL_KINDS else None  # type: ignore[arg-type]
    if canon is None:
        problem = (f"{m}: dtype {arr.dtype}; expected a real float dtype (float16/32/64)" if arr.dtype.kind not in
                   _REAL_KINDS else f"{m}: array has shape {arr.shape}; expected {expected_shape(m, batch=True)}")  # type: ignore[arg-type]
        _logger.warning("%s", problem)
        return zeros(), none, [Verdict(m, "failed", [problem]) for _ in range(n)]
    checked = assess(m, canon, cfg)  # type: ignore[arg-type]
    usable = checked.usable
    if not usable.all():
        _logger.debug("%s: %d/%d samples failed the health check", m, int((~usable).sum()), n)
    return checked.values, usable, [Verdict(m, str(checked.status[i]), checked.reasons[i]) for i in range(n)]
