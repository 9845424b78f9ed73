"""The fast preprocessing kernels against their textbook forms: scipy's sosfiltfilt and np.partition.
(The Hampel filter is held to a per-sample loop in test_preprocess.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from rfsense.data.preprocess.kernels import _filtfilt_operator, butter_lowpass, kth_value, lowpass_filtfilt


@pytest.mark.parametrize("order, cutoff, t_len", [(4, 20.0, 1000), (2, 5.0, 1000), (6, 45.0, 1000), (4, 20.0, 300),
                                                   (4, 0.3, 1000)])
def test_lowpass_equals_sosfiltfilt(order, cutoff, t_len):
    rng = np.random.default_rng(order)
    x = 20 + rng.normal(0, 3, (3, 7, t_len))
    x[0, 0] += 50 * (np.arange(t_len) > t_len // 2)  # a step: edges and transients matter
    sos = butter_lowpass(order, cutoff, 200.0)
    x32 = x.astype(np.float32)  # what the Hampel step hands over
    want = signal.sosfiltfilt(sos, x32.astype(np.float64), axis=-1)
    got = lowpass_filtfilt(x32, order, cutoff, 200.0)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())  # the same linear map
    assert got.dtype == np.float64 and got.shape == x.shape
    # sosfiltfilt on the float32 array itself pads in float32: within float32's resolution of the above
    np.testing.assert_allclose(got, signal.sosfiltfilt(sos, x32, axis=-1), rtol=1e-7)


def test_the_operator_is_used_for_the_wifi_band_and_not_for_a_narrow_one():
    assert _filtfilt_operator(4, 20.0, 200.0, 1000) is not None  # the default: FFT + corners
    assert _filtfilt_operator(4, 0.3, 200.0, 1000) is None  # a response longer than a quarter window: sosfiltfilt


def test_lowpass_spreads_nan_over_its_row_like_sosfiltfilt():
    x = np.ones((2, 1000))
    x[1, 500] = np.nan
    y = lowpass_filtfilt(x, 4, 20.0, 200.0)
    assert np.isfinite(y[0]).all() and np.isnan(y[1]).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([4096, 20_000, 557_056]), st.sampled_from(["normal", "ties", "spiky", "column"]),
       st.floats(0.9, 0.99999))
def test_kth_value_equals_partition(seed, n, kind, q):
    rng = np.random.default_rng(seed)
    v = rng.exponential(1.0, n).astype(np.float32)
    if kind == "ties":
        v = np.round(v * 2).astype(np.float32)  # few distinct values: the bound sits on a tie
    elif kind == "spiky":
        v[rng.integers(0, n, 50)] = 1e30
    elif kind == "column":  # the largest values on one stride (a radar's zero-Doppler column): one group each
        v[::128] *= 1000
    kth = int(round(q * (n - 1)))
    assert kth_value(v, kth) == np.partition(v, kth)[kth]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_kth_value_with_nonfinite_values(bad):
    v = np.random.default_rng(0).random(100_000).astype(np.float32)
    v[[5, 77, 999]] = bad
    for kth in (99_900, 99_998, 99_999, 50_000):
        got, want = kth_value(v, kth), np.partition(v, kth)[kth]
        assert got == want or (np.isnan(got) and np.isnan(want))


def test_hampel_in_threads_equals_one_thread():
    from rfsense.data.preprocess import hampel

    x = 20 + np.random.default_rng(3).normal(0, 2, (2, 270, 1000))
    x[0, 5, 100] = 90.0
    one = hampel(x, 7, 3.0)
    np.testing.assert_array_equal(hampel(x, 7, 3.0, workers=2), one)
    np.testing.assert_array_equal(hampel(x, 7, 3.0, workers=5), one)
    assert one[0, 5, 100] != 90.0
