"""Check 0 of the quality rule (physical plausibility) and the fast `assess` against the rule as it was.

The fast path checks clean samples in their own layout and dtype; `quality_reference.assess_reference` is the
former float64 time-last implementation. On every input check 0 lets through they must agree exactly:
statuses, reasons and values.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rfsense.data.quality import QualityConfig, assess
from rfsense.modalities import MODALITIES, SHAPES
from tests.data.quality_reference import assess_reference


def _clean(modality: str, b: int, rng: np.random.Generator) -> np.ndarray:
    shape = (b, *SHAPES[modality])
    if modality == "rfid":
        return np.mod(np.cumsum(rng.normal(0, 0.2, shape), axis=-1) + 3.0, 2 * np.pi)
    if modality == "wifi":
        return np.abs(20 + rng.normal(0, 2, shape))
    x = rng.exponential(50.0, shape)
    x[:, :, :40] = 0.0  # empty background cells, as real heatmaps have
    return x


_FAULTS = ["none", "nan_burst", "nan_many", "inf_few", "flat_all", "flat_some", "zeros", "saturate", "repeats",
           "dead_rx", "frozen_frames", "huge_f32"]


@st.composite
def _case(draw):
    modality = draw(st.sampled_from(MODALITIES))
    b = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = _clean(modality, b, rng)
    for i in range(b):
        fault = draw(st.sampled_from(_FAULTS))
        s = x[i]
        t_last = s if modality != "mmwave" else np.moveaxis(s, 0, -1)  # (..., T) view
        t_len = t_last.shape[-1]
        if fault == "nan_burst":
            start = draw(st.integers(0, t_len - 1))
            t_last[..., draw(st.integers(0, 3)), start : start + draw(st.integers(1, max(1, t_len // 4)))] = np.nan
        elif fault == "nan_many":
            s[rng.random(s.shape) < draw(st.floats(0.01, 0.5))] = np.nan
        elif fault == "inf_few":
            s[rng.random(s.shape) < 0.005] = np.inf
        elif fault == "flat_all":
            t_last[...] = t_last[..., :1]
        elif fault == "flat_some":
            t_last[: draw(st.integers(1, 5))] = 1.5
        elif fault == "zeros":
            s[...] = 0.0
        elif fault == "saturate":
            s[...] = np.minimum(s, np.quantile(s, draw(st.floats(0.5, 0.95))))
        elif fault == "repeats":
            keep = rng.random(t_len) < draw(st.floats(0.2, 1.0))
            keep[0] = True
            t_last[...] = t_last[..., np.maximum.accumulate(np.where(keep, np.arange(t_len), 0))]
        elif fault == "dead_rx" and modality == "wifi":
            s[90 * draw(st.integers(0, 2)) :] = 0.0
        elif fault == "frozen_frames" and modality == "mmwave":
            s[1:] = s[:1]
        elif fault == "huge_f32" and modality != "rfid":  # (a phase that large is outside the readers' ranges)
            s.reshape(-1)[draw(st.integers(0, s.size - 1))] = 1e300  # beyond float32: a gap when the bound allows
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: a NaN/Inf gap either way
        return modality, x.astype(dtype)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_case())
def test_fast_assess_equals_the_former_rule(case):
    modality, x = case
    cfg = QualityConfig(max_wifi_amplitude=1e308, max_mmwave_magnitude=1e308)  # check 0 out of the way
    fast, ref = assess(modality, x, cfg), assess_reference(modality, x, cfg)
    assert fast.status.tolist() == ref.status.tolist()
    for status in fast.status:
        event(f"{modality} {status}")
    assert fast.reasons == ref.reasons
    assert fast.values.dtype == x.dtype
    if x.dtype == np.float64:
        np.testing.assert_array_equal(fast.values, ref.values)
    else:  # float32 in: repairs are interpolated in float64 and stored in float32
        np.testing.assert_allclose(fast.values, ref.values, rtol=1e-6, atol=1e-6)


def test_a_clean_batch_is_returned_without_a_copy():
    x = _clean("mmwave", 2, np.random.default_rng(0)).astype(np.float32)
    a = assess("mmwave", x)
    assert a.status.tolist() == ["ok", "ok"] and a.values is x


# ----------------------------------------------------------------------------------------- check 0


def _one(modality: str, seed: int = 0) -> np.ndarray:
    return _clean(modality, 1, np.random.default_rng(seed))


@pytest.mark.parametrize("modality", ["wifi", "mmwave"])
def test_negative_amplitude_or_magnitude_is_implausible(modality):
    x = _one(modality)
    x[0].reshape(-1)[123] = -0.5
    a = assess(modality, x)
    assert a.status.tolist() == ["implausible"] and not a.usable[0] and not a.values.any()
    what = "amplitude" if modality == "wifi" else "magnitude"
    assert a.reasons[0] == [
        f"{modality}: negative {what} -0.5 ({'|CSI| amplitude' if modality == 'wifi' else 'a heatmap magnitude'} is >= 0: "
        "a signed, phase or dB stream?)"
    ]


@pytest.mark.parametrize("modality, bound", [("wifi", 1e6), ("mmwave", 1e9)])
def test_absurd_spikes_are_implausible(modality, bound):
    x = _one(modality)
    x[0].reshape(-1)[::5000] = 1e20
    a = assess(modality, x)
    assert a.status.tolist() == ["implausible"]
    assert a.reasons[0][0].startswith(f"{modality}: {'amplitude' if modality == 'wifi' else 'magnitude'} 1e+20 above {bound:g}")
    y = _one(modality)
    y[0].reshape(-1)[7] = 0.9 * bound  # large, but possible
    assert assess(modality, y).status.tolist() == ["ok"]


@pytest.mark.parametrize("shift, ok", [(0.0, True), (-np.pi, True), (np.pi, False), (-2 * np.pi, False)])
def test_rfid_phase_must_sit_in_a_reader_range(shift, ok):
    x = _one("rfid") + shift  # [0, 2pi) as Impinj reports, [-pi, pi) as others do; anything else is not a phase
    a = assess("rfid", x)
    assert a.status.tolist() == (["ok"] if ok else ["implausible"])
    if not ok:
        assert "inside neither range readers report, [0, 2pi) or [-pi, pi)" in a.reasons[0][0]
    degrees = np.degrees(_one("rfid"))  # 0..360: the wrong unit
    assert assess("rfid", degrees).status.tolist() == ["implausible"]


def test_physical_checks_look_past_nan_and_win_over_them():
    x = _one("wifi")
    x[0, 3, 100:400] = np.nan  # a gap check 1 would fail on
    x[0, 5, 10] = -3.0
    a = assess("wifi", x)
    assert a.status.tolist() == ["implausible"] and len(a.reasons[0]) == 1 and "negative amplitude" in a.reasons[0][0]
    y = np.full((1, *SHAPES["wifi"]), np.nan)  # nothing finite: check 1 decides
    assert assess("wifi", y).status.tolist() == ["failed"]


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, bool])
def test_integer_arrays_are_implausible(dtype):
    x = np.clip(_one("mmwave"), 0, 100).astype(dtype)
    a = assess("mmwave", x)
    assert a.status.tolist() == ["implausible"] and "integers are raw counts" in a.reasons[0][0]
