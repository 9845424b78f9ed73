"""The compiled kernels (numba, the `fast` extra) return what the numpy kernels return: the Hampel filter
bit for bit, the low-pass bit for bit as scipy's sosfiltfilt, the channel statistics to float rounding; and
the runtime gives the same answers with and without them."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import signal

from rfsense.data.preprocess import PreprocessConfig, compiled, preprocess
from rfsense.data.preprocess.kernels import butter_lowpass, hampel, hampel_lowpass, lowpass_filtfilt
from rfsense.deploy.plausibility import _nanmedian_rows, channel_features

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed (pip install 'rfsense[fast]')")


@pytest.fixture(scope="module", autouse=True)
def kernels() -> None:
    assert compiled.warm_up(7)  # the default half-window
    assert compiled.warm_up(2)  # another generated network


def _wifi_like(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    x = 10 + rng.normal(size=shape)
    x[rng.random(shape) < 0.05] += 40  # outliers to replace
    x[..., ::5] = np.round(x[..., ::5])  # ties in the windows
    return x.astype(dtype)


@pytest.mark.parametrize("k", [7, 2])
@pytest.mark.parametrize("shape", [(2, 270, 1000), (3, 5, 41), (2, 3, 8), (1, 4, 7), (2, 2, 3), (2, 2, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_hampel_is_bit_identical(k, shape, dtype):
    rng = np.random.default_rng(k + shape[-1])
    x = _wifi_like(rng, shape, dtype)
    want = hampel(x, k, 3.0)
    got = hampel(x, k, 3.0, fast=True)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert (want != x.astype(np.float32)).any() or shape[-1] <= 3  # the test data does exercise replacement
    assert np.array_equal(hampel(x, k, 3.0, workers=2, fast=True), want)  # row blocks in threads


def test_compiled_hampel_leaves_nonfinite_and_float32_overflow_to_numpy():
    x = _wifi_like(np.random.default_rng(0), (2, 6, 200), np.float64)
    x[0, 1, 50] = np.nan
    x[1, 2, 10] = 1e300  # finite in float64, inf in float32
    with np.errstate(over="ignore"):
        got = hampel(x, 7, 3.0, fast=True)
        assert np.array_equal(got, hampel(x, 7, 3.0), equal_nan=True)


@pytest.mark.parametrize("order, cutoff, t_len", [(4, 20.0, 1000), (2, 5.0, 300), (6, 45.0, 1000), (4, 0.3, 1000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_lowpass_is_sosfiltfilt_bit_for_bit(order, cutoff, t_len, dtype):
    rng = np.random.default_rng(order)
    x = (20 + rng.normal(0, 3, (3, 130, t_len))).astype(dtype)  # 390 rows: several blocks of rows
    x[0, 0] += 50 * (np.arange(t_len) > t_len // 2)
    want = signal.sosfiltfilt(butter_lowpass(order, cutoff, 200.0), x.astype(np.float64), axis=-1)
    for workers in (1, 2):
        got = lowpass_filtfilt(x, order, cutoff, 200.0, workers=workers, fast=True)
        assert got.dtype == np.float64 and np.array_equal(got, want)
        got = lowpass_filtfilt(x, order, cutoff, 200.0, workers=workers, fast=True, dtype=np.float32)
        assert got.dtype == np.float32 and np.array_equal(got, want.astype(np.float32))


def test_compiled_lowpass_leaves_short_and_nonfinite_rows_to_numpy():
    short = np.ones((2, 10))  # not longer than sosfiltfilt's padding: numpy's path says why
    with pytest.raises(ValueError):
        lowpass_filtfilt(short, 4, 20.0, 200.0, fast=True)
    x = np.ones((2, 1000))
    x[1, 500] = np.nan
    y = lowpass_filtfilt(x, 4, 20.0, 200.0, fast=True)
    assert np.isfinite(y[0]).all() and np.isnan(y[1]).all()


@pytest.mark.parametrize("k", [7, 2])
@pytest.mark.parametrize("shape", [(1, 270, 1000), (2, 3, 500), (1, 130, 120)])  # 1-5 blocks of rows, a partial one
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_hampel_lowpass_is_the_two_filters_bit_for_bit(k, shape, dtype):
    x = _wifi_like(np.random.default_rng(k + shape[1]), shape, dtype)
    want = lowpass_filtfilt(hampel(x, k, 3.0, fast=True), 4, 20.0, 200.0, fast=True, dtype=np.float32)
    assert np.array_equal(want, lowpass_filtfilt(hampel(x, k, 3.0), 4, 20.0, 200.0, fast=True, dtype=np.float32))
    for workers in (1, 2):
        got = hampel_lowpass(x, k, 3.0, 4, 20.0, 200.0, workers=workers)
        assert got is not None and got.dtype == np.float32 and np.array_equal(got, want)
    cfg = PreprocessConfig()
    assert np.array_equal(preprocess("wifi", _wifi_like(np.random.default_rng(1), (1, 270, 1000), dtype), cfg, fast=True),
                          lowpass_filtfilt(hampel(_wifi_like(np.random.default_rng(1), (1, 270, 1000), dtype), 7, 3.0,
                                                  fast=True), 4, 20.0, 200.0, fast=True, dtype=np.float32))


def test_compiled_hampel_lowpass_declines_what_the_two_filters_define_otherwise():
    x = _wifi_like(np.random.default_rng(0), (1, 70, 300), np.float64)
    assert hampel_lowpass(x, 7, 3.0, 4, 20.0, 200.0) is not None
    assert hampel_lowpass(x, 0, 3.0, 4, 20.0, 200.0) is None  # no Hampel window: the low-pass alone
    assert hampel_lowpass(x[..., :10], 7, 3.0, 4, 20.0, 200.0) is None  # not longer than sosfiltfilt's padding
    wifi = _wifi_like(np.random.default_rng(1), (1, 270, 1000), np.float64)
    for bad in (np.nan, np.inf, 1e300):  # 1e300: finite in float64, inf in float32
        y = wifi.copy()
        y[0, 66, 10] = bad  # in the second block of rows
        assert hampel_lowpass(y, 7, 3.0, 4, 20.0, 200.0, workers=2) is None
        with np.errstate(all="ignore"):  # the pipeline then runs numpy's kernels, which define NaN/Inf
            got = preprocess("wifi", y, PreprocessConfig(), fast=True)
            assert np.array_equal(got, preprocess("wifi", y, PreprocessConfig()), equal_nan=True)


@pytest.mark.parametrize("shape", [(2, 17, 256, 128), (3, 270, 1000), (2, 23, 148)])
def test_compiled_channel_features_match_numpy(shape):
    rng = np.random.default_rng(len(shape))
    x = (5 + 2 * rng.random(shape)).astype(np.float32)
    x[0, 1] = 3.0  # a flat channel: std 0, log10 -> -inf in both
    want, got = channel_features(x), channel_features(x, fast=True)
    assert got.shape == want.shape == (shape[0], shape[1], 3)
    assert np.isneginf(got[0, 1, 1]) and np.isneginf(want[0, 1, 1])
    live = np.isfinite(want)
    assert np.array_equal(live, np.isfinite(got))
    np.testing.assert_allclose(got[live], want[live], rtol=1e-5, atol=1e-6)


def test_nanmedian_rows_equals_numpy():
    rng = np.random.default_rng(0)
    for _ in range(500):
        z = rng.normal(size=(rng.integers(1, 4), rng.integers(1, 20)))
        z[rng.random(z.shape) < rng.random()] = np.nan
        z[rng.random(z.shape) < 0.1] = np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmedian(z, axis=1)
        assert np.array_equal(_nanmedian_rows(z), want, equal_nan=True)


def test_preprocess_fast_equals_numpy_for_every_modality():
    rng = np.random.default_rng(3)
    raw = {"wifi": _wifi_like(rng, (2, 270, 1000), np.float64),
           "rfid": rng.uniform(0, 2 * np.pi, (2, 23, 148)),
           "mmwave": rng.random((1, 17, 256, 128)).astype(np.float32)}
    cfg = PreprocessConfig()
    for m, x in raw.items():
        np.testing.assert_allclose(preprocess(m, x, cfg, fast=True), preprocess(m, x, cfg), rtol=1e-6, atol=1e-6)


def test_the_environment_switch_turns_the_kernels_off():
    code = "from rfsense.data.preprocess import compiled; print(compiled.available(), compiled.warm_up())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "RFSENSE_KERNELS": "numpy"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_a_child_forked_while_compiling_never_compiles():
    """Its compile locks may be held forever: it runs the numpy kernels (or those already compiled), never hangs."""
    code = """
import os, sys, time
from rfsense.data.preprocess import compiled
compiled.start(5)  # a compile in the background
time.sleep(0.2)
pid = os.fork()
if pid == 0:
    ok = compiled.start(3) is None and compiled.warm_up(3) is False
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), compiled.warm_up(5))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.split() == ["0", "True"]
