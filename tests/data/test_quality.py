"""The one definition of a usable stream (rfsense.data.quality): repair, failure, degradation, and that
what it passes always preprocesses to finite values. The runtime's use of it: tests/deploy/test_health.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfsense.config import from_data, to_data
from rfsense.data.preprocess import PreprocessConfig, RfidPrep, preprocess
from rfsense.data.quality import QualityConfig, assess
from rfsense.errors import ConfigError
from rfsense.modalities import MODALITIES
from tests.data.helpers import plausible_batch as _batch


def test_short_nan_gap_is_linearly_repaired_and_input_untouched() -> None:
    ramp = np.linspace(10.0, 20.0, 1000)
    x = np.broadcast_to(ramp, (2, 270, 1000)).copy()
    x += np.random.default_rng(0).normal(0, 1e-3, x.shape)  # not flat
    x[1, 42, 300:320] = np.nan
    x[1, 43, :5] = np.inf  # leading gap: edge-hold
    a = assess("wifi", x)
    assert a.status.tolist() == ["ok", "repaired"]
    np.testing.assert_allclose(a.values[1, 42, 300:320], np.interp(np.arange(300, 320), [299, 320], x[1, 42, [299, 320]]))
    np.testing.assert_allclose(a.values[1, 43, :5], x[1, 43, 5])
    assert np.isnan(x[1, 42, 300]), "input must not be modified"


def test_rfid_gap_across_a_wrap_is_bridged_along_the_unwrapped_phase() -> None:
    ramp = 1.0 + 0.2 * np.arange(148)
    x = np.broadcast_to(np.mod(ramp, 2 * np.pi), (1, 23, 148)).copy()
    # The true phase wraps inside this gap (at read ~26.4); 7 steps x 0.2 rad stay below pi/2.
    x[0, 3, 21:27] = np.nan
    a = assess("rfid", x)
    assert a.status.tolist() == ["repaired"]
    np.testing.assert_allclose(a.values[0, 3], np.mod(ramp, 2 * np.pi), atol=1e-9)
    y = preprocess("rfid", a.values, PreprocessConfig(rfid=RfidPrep(remove_offset=False)))
    np.testing.assert_allclose(y[0, 3], ramp, atol=1e-4)


def test_channel_without_any_value_gets_the_sample_median() -> None:
    x = _batch("wifi", 1)
    x[0, 7] = np.nan  # one dead channel: 0.4 % of values, but a gap of the whole window
    cfg = QualityConfig(max_gap_fraction=1.0)
    a = assess("wifi", x, cfg)
    assert a.status.tolist() == ["repaired"]
    np.testing.assert_allclose(a.values[0, 7], np.median(np.delete(x[0], 7, axis=0)))


@pytest.mark.parametrize("modality", MODALITIES)
def test_unusable_beyond_the_nonfinite_fraction(modality: str) -> None:
    x = _batch(modality, 3).astype(np.float64)
    flat = x.reshape(3, -1)
    flat[1, : int(0.25 * flat.shape[1])] = np.nan  # 25 % > default 20 %
    flat[2, ::50] = np.inf  # 2 %, isolated: repaired
    a = assess(modality, x)
    assert a.status.tolist() == ["ok", "failed", "repaired"], a.reasons
    assert not a.values[1].any(), "a failed sample is zero-filled"
    assert np.isfinite(preprocess(modality, a.values)).all()
    strict = assess(modality, x, QualityConfig(max_nonfinite_fraction=0.01))
    assert strict.status.tolist() == ["ok", "failed", "failed"]


def test_values_beyond_float32_range_count_as_nonfinite() -> None:
    x = _batch("wifi", 2)
    x[0] = 1e300  # finite in float64, inf in float32: above any plausible amplitude
    x[1, 0, 10] = -1e300  # one such value: negative too
    a = assess("wifi", x)
    assert a.status.tolist() == ["implausible", "implausible"] and not a.values.any()
    # Beyond float32 but within a (user-raised) plausibility bound, such a value is a gap to repair.
    y = _batch("wifi", 1)
    y[0, 0, 10] = 1e300
    b = assess("wifi", y, QualityConfig(max_wifi_amplitude=1e308))
    assert b.status.tolist() == ["repaired"] and abs(b.values[0, 0, 10] - 20) < 10


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 22), st.integers(0, 147), st.sampled_from([np.nan, np.inf, -np.inf])),
        max_size=200,
    )
)
def test_what_rfid_passes_preprocesses_to_finite_values(holes: list[tuple[int, int, float]]) -> None:
    x = _batch("rfid", 1)
    for tag, read, v in holes:
        x[0, tag, read] = v
    a = assess("rfid", x)
    assert np.isfinite(a.values).all()
    if a.usable[0]:
        assert np.isfinite(preprocess("rfid", a.values)).all()


def test_one_receiver_wifi_is_degraded_and_lost_tags_too() -> None:
    x = _batch("wifi", 2)
    x[0, 90:] = 0.0  # a one-NIC capture: rx2 and rx3 silent
    a = assess("wifi", x)
    assert a.status.tolist() == ["degraded", "ok"] and a.usable.all()
    assert a.reasons[0] == ["wifi: rx2 and rx3 give no signal (180/270 channels flat)"]
    r = _batch("rfid", 1)
    r[0, [2, 9]] = 1.0
    b = assess("rfid", r)
    assert b.status.tolist() == ["degraded"] and b.reasons[0] == ["rfid: 2/23 tags never change (lost or blocked tags: 2, 9)"]


def test_mmwave_frames_are_the_time_axis() -> None:
    x = _batch("mmwave", 1).astype(np.float64)
    x[0, 5] = np.nan  # one frame of 17: repaired as the mean of its neighbours
    a = assess("mmwave", x)
    assert a.status.tolist() == ["repaired"]
    np.testing.assert_allclose(a.values[0, 5], (x[0, 4] + x[0, 6]) / 2)
    np.testing.assert_array_equal(a.values[0, 4], x[0, 4])


@pytest.mark.parametrize("modality", MODALITIES)
def test_batch_result_equals_per_sample_results(modality: str) -> None:
    x = _batch(modality, 3, seed=5).astype(np.float64)
    x[1].reshape(-1)[::97] = np.nan
    whole = assess(modality, x)
    for b in range(3):
        one = assess(modality, x[b : b + 1])
        np.testing.assert_array_equal(one.values[0], whole.values[b])
        assert one.status[0] == whole.status[b] and one.reasons[0] == whole.reasons[b]


def test_config_round_trip_and_errors() -> None:
    cfg = QualityConfig(max_saturated_fraction=0.3)
    assert from_data(QualityConfig, to_data(cfg)) == cfg
    with pytest.raises(ConfigError, match=r"unknown key 'health.flat_sd'; allowed: max_nonfinite_fraction, "):
        from_data(QualityConfig, {"flat_sd": 1e-6}, "health")
    with pytest.raises(ConfigError, match=r"max_nonfinite_fraction: must be less than or equal to 1"):
        from_data(QualityConfig, {"max_nonfinite_fraction": 1.5})
    with pytest.raises(ConfigError, match="flat_std"):
        from_data(QualityConfig, {"flat_std": "small"})
