"""Shared preprocessing: known signals in, known answers out; vectorisation and config.

Which samples are usable (NaN/Inf repair included) is `rfsense.data.quality`: tests/data/test_quality.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rfsense.config import from_data, to_data
from rfsense.data.preprocess import MmwavePrep, PreprocessConfig, RfidPrep, WifiPrep, hampel, preprocess
from rfsense.errors import ConfigError
from rfsense.modalities import MODALITIES, SHAPES
from tests.data.helpers import plausible_batch as _batch

FS = 200.0
T_WIFI = SHAPES["wifi"][1]
NO_FILTERS = PreprocessConfig(wifi=WifiPrep(hampel_window=0, lowpass_hz=None))


def _rms_db(y: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(y**2)))


# ---------------------------------------------------------------------------------------------- wifi


def test_hampel_removes_spike_and_keeps_the_rest() -> None:
    t = np.arange(T_WIFI) / FS
    clean = 20 + np.sin(2 * np.pi * 0.5 * t)
    x = np.broadcast_to(clean, (1, 270, T_WIFI)).copy()
    x[0, 5, 400] += 50.0  # impulsive outlier
    cfg = PreprocessConfig(wifi=WifiPrep(lowpass_hz=None))
    y = preprocess("wifi", x, cfg)
    assert abs(y[0, 5, 400] - clean[400]) < 0.05, "spike not replaced by the local median"
    untouched = np.ones(T_WIFI, bool)
    untouched[400] = False
    np.testing.assert_allclose(y[0, 5, untouched], clean[untouched], atol=1e-5)


def _hampel_reference(row: np.ndarray, k: int, sigmas: float) -> np.ndarray:
    """Textbook per-sample loop over a reflect-padded row (the definition `hampel` vectorises)."""
    p = np.pad(row, k, mode="reflect" if len(row) > k else "edge")
    out = row.copy()
    for i in range(len(row)):
        w = p[i : i + 2 * k + 1]
        med = np.median(w)
        mad = np.median(np.abs(w - med))
        if abs(row[i] - med) > sigmas * 1.4826 * mad:
            out[i] = med
    return out


@pytest.mark.parametrize(("k", "t_len"), [(1, 300), (3, 300), (7, 300), (12, 301), (7, 6)])
def test_vectorised_hampel_matches_reference_loop(k: int, t_len: int) -> None:
    rng = np.random.default_rng(k)
    x = rng.normal(0, 1, (3, 25, t_len)).astype(np.float32)  # 75 rows: more than one chunk
    x[rng.random(x.shape) < 0.03] += 8.0
    x[0, 0, 10:20] = 1.0  # flat stretch: MAD 0
    got = hampel(x, k, 3.0)
    assert (got != x).any(), "test data should contain outliers"
    for idx in np.ndindex(x.shape[:2]):
        np.testing.assert_array_equal(got[idx], _hampel_reference(x[idx], k, 3.0))


def test_lowpass_attenuates_high_tone_and_keeps_low_tone() -> None:
    t = np.arange(T_WIFI) / FS
    x = np.zeros((1, 270, T_WIFI))
    x[0, 0] = np.sin(2 * np.pi * 60 * t)
    x[0, 1] = np.sin(2 * np.pi * 1 * t)
    cfg = PreprocessConfig(wifi=WifiPrep(hampel_window=0, lowpass_hz=20.0, order=4))
    y = preprocess("wifi", x, cfg)
    mid = slice(200, 800)  # away from filtfilt's edge transients
    assert _rms_db(y[0, 0, mid]) - _rms_db(x[0, 0, mid]) < -20.0
    assert abs(_rms_db(y[0, 1, mid]) - _rms_db(x[0, 1, mid])) < 1.0


def test_wifi_resampling_is_gone() -> None:
    """The encoders take 1000 packets: a resampled pack could never reach a model (issue: resample_to removed)."""
    with pytest.raises(ConfigError, match="unknown key 'wifi.resample_to'"):
        from_data(PreprocessConfig, {"wifi": {"resample_to": 500}})


# ---------------------------------------------------------------------------------------------- rfid


@pytest.mark.parametrize("fix_jumps", [False, True])
def test_wrapped_ramp_is_unwrapped(fix_jumps: bool) -> None:
    ramp = 0.5 + 0.3 * np.arange(148)  # ~44 rad: many wraps, 0.3 rad/read < pi/2
    x = np.broadcast_to(np.mod(ramp, 2 * np.pi), (2, 23, 148))
    cfg = PreprocessConfig(rfid=RfidPrep(remove_offset=False, fix_jumps=fix_jumps))
    y = preprocess("rfid", x, cfg)
    np.testing.assert_allclose(y[1, 7], ramp, atol=1e-4)


def test_pi_jumps_are_repaired() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(148) / 30.0
    true = 3.0 * np.sin(2 * np.pi * 0.3 * t)[None, :] + rng.uniform(0, 6, (23, 1))  # (23, 148)
    flips = rng.random((23, 148)) < 0.15  # the reader's random 180-degree ambiguity
    x = np.mod(true + np.pi * flips, 2 * np.pi)[None]
    y = preprocess("rfid", x)
    want = true - np.median(true, axis=1, keepdims=True)
    np.testing.assert_allclose(y[0], want, atol=1e-4)


# -------------------------------------------------------------------------------------------- mmwave


def test_mmwave_log_and_clip_are_monotone_and_finite() -> None:
    rng = np.random.default_rng(3)
    x = rng.exponential(50.0, (2, *SHAPES["mmwave"]))
    x[0, 0, 0, :5] = [1e30, -3.0, 0.0, 1e-12, 7e5]  # saturation, a negative, tiny values
    y = preprocess("mmwave", x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    for b in range(2):
        order = np.argsort(x[b].ravel(), kind="stable")
        assert (np.diff(y[b].ravel()[order]) >= 0).all(), "output not monotone in the input"
    # the 99.9th percentile clip removes the 1e30 outlier's dominance
    assert y[0].max() < np.log1p(1e30) / 2
    clipped = preprocess(
        "mmwave", x, PreprocessConfig(mmwave=MmwavePrep(clip_percentile=None, clip_max=3.0))
    )
    assert clipped.max() == pytest.approx(3.0)
    raw = preprocess("mmwave", x, PreprocessConfig(mmwave=MmwavePrep(log=False, clip_percentile=None)))
    np.testing.assert_array_equal(raw, x.astype(np.float32))


def test_mmwave_accepts_leading_one_axis() -> None:
    x = _batch("mmwave", 1)
    a = preprocess("mmwave", x)
    b = preprocess("mmwave", x[:, None])
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int16])
def test_output_always_finite_float32(modality: str, dtype: type) -> None:
    x = _batch(modality, 2).astype(dtype)
    y = preprocess(modality, x)
    assert y.dtype == np.float32 and y.shape == (2, *SHAPES[modality])
    assert np.isfinite(y).all()


def test_nonfinite_input_is_not_hidden() -> None:
    """Unchecked NaN input comes out non-finite (the quality checks, not preprocessing, decide usability)."""
    x = _batch("wifi", 2)
    x[1, 3, 500] = np.nan
    y = preprocess("wifi", x)
    assert np.isfinite(y[0]).all() and not np.isfinite(y[1, 3]).all()


# ------------------------------------------------------------------------ vectorisation, determinism


@pytest.mark.parametrize("modality", MODALITIES)
def test_batch_result_equals_per_sample_results(modality: str) -> None:
    x = _batch(modality, 3, seed=5).astype(np.float64)
    whole = preprocess(modality, x)
    for b in range(3):
        one = preprocess(modality, x[b : b + 1])
        np.testing.assert_array_equal(one[0], whole[b])  # rows are independent: bit-identical


@pytest.mark.parametrize("modality", MODALITIES)
def test_deterministic(modality: str) -> None:
    x = _batch(modality, 2, seed=7)
    a = preprocess(modality, x)
    b = preprocess(modality, x.copy())
    np.testing.assert_array_equal(a, b)


def test_empty_batch() -> None:
    y = preprocess("rfid", np.zeros((0, 23, 148)))
    assert y.shape == (0, 23, 148)


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("modality", "shape", "expected"),
    [
        ("wifi", (2, 270, 999), "(batch, 270, 1000)"),
        ("rfid", (23, 148), "(batch, 23, 148)"),
        ("mmwave", (1, 17, 256, 64), "(batch, 17, 256, 128)"),
    ],
)
def test_wrong_shape_names_modality_and_shapes(modality: str, shape: tuple[int, ...], expected: str) -> None:
    with pytest.raises(ValueError) as err:
        preprocess(modality, np.zeros(shape))
    msg = str(err.value)
    assert modality in msg and str(shape) in msg and expected in msg


def test_unknown_modality_and_complex_input() -> None:
    with pytest.raises(ValueError, match="unknown modality 'radar'"):
        preprocess("radar", np.zeros((1, 23, 148)))
    with pytest.raises(ValueError, match="dtype complex"):
        preprocess("rfid", np.zeros((1, 23, 148), complex))


# -------------------------------------------------------------------------------------------- config


def test_config_round_trip_through_json() -> None:
    cfg = PreprocessConfig(
        wifi=WifiPrep(hampel_window=4, lowpass_hz=None),
        rfid=RfidPrep(fix_jumps=False),
        mmwave=MmwavePrep(clip_percentile=None, clip_max=12.5),
    )
    d = json.loads(json.dumps(to_data(cfg)))
    assert from_data(PreprocessConfig, d) == cfg
    assert from_data(PreprocessConfig, {}) == PreprocessConfig()
    assert from_data(PreprocessConfig, {"wifi": {"lowpass_hz": 15}}).wifi.lowpass_hz == 15.0


def test_config_unknown_key_names_key_and_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        from_data(PreprocessConfig, {"wifi": {"hampel_windw": 3}})
    assert "wifi.hampel_windw" in str(err.value) and "hampel_window" in str(err.value)
    with pytest.raises(
        ConfigError, match="unknown key 'data.preprocessing.radar'; allowed: wifi, rfid, mmwave"
    ):
        from_data(PreprocessConfig, {"radar": {}}, "data.preprocessing")


@pytest.mark.parametrize(
    "d",
    [
        {"wifi": {"order": "4"}},
        {"wifi": {"order": True}},
        {"rfid": {"unwrap": 1}},
        {"wifi": {"fs": None}},
        {"wifi": 3},
        {"wifi": {"lowpass_hz": 150.0}},
        {"max_repair_fraction": 0.2},
        {"mmwave": {"clip_percentile": 0}},
        {"wifi": {"hampel_sigmas": float("nan")}},
    ],
)
def test_config_bad_values_are_config_errors(d: dict) -> None:
    with pytest.raises(ConfigError):
        from_data(PreprocessConfig, d)


def test_wifi_remove_static_centres_each_channel():
    from rfsense.data.preprocess import PreprocessConfig, WifiPrep, preprocess

    rng = np.random.default_rng(0)
    x = 20.0 + rng.normal(size=(2, 270, 1000)) + np.linspace(0, 5, 270)[None, :, None]
    y = preprocess("wifi", x, PreprocessConfig(wifi=WifiPrep(remove_static=True)))  # float32
    assert np.abs(np.median(y, axis=-1)).max() < 1e-5
    p = preprocess("wifi", x, PreprocessConfig())
    np.testing.assert_allclose(y, p - np.median(p, axis=-1, keepdims=True), atol=1e-5)
