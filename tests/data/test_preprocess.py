"""Shared preprocessing: known signals in, known answers out; vectorisation, config and statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfsense.data.preprocess import (
    MmwavePrep,
    NormAccumulator,
    NormStats,
    PreprocessConfig,
    RfidPrep,
    WifiPrep,
    hampel,
    output_shape,
    preprocess,
    repair_nonfinite,
)
from rfsense.errors import ConfigError, DataError
from rfsense.modalities import MODALITIES, SHAPES

FS = 200.0
T_WIFI = SHAPES["wifi"][1]
NO_FILTERS = PreprocessConfig(wifi=WifiPrep(hampel_window=0, lowpass_hz=None))


def _batch(modality: str, b: int, seed: int = 0) -> np.ndarray:
    """Plausible random input: positive amplitudes/heatmaps, wrapped phases."""
    rng = np.random.default_rng(seed)
    shape = (b, *SHAPES[modality])
    if modality == "rfid":
        return rng.uniform(0, 2 * np.pi, shape)
    if modality == "wifi":
        return 20 + rng.normal(0, 2, shape)
    return rng.exponential(100.0, shape).astype(np.float32)


def _rms_db(y: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(y**2)))


# ---------------------------------------------------------------------------------------------- wifi


def test_hampel_removes_spike_and_keeps_the_rest() -> None:
    t = np.arange(T_WIFI) / FS
    clean = 20 + np.sin(2 * np.pi * 0.5 * t)
    x = np.broadcast_to(clean, (1, 270, T_WIFI)).copy()
    x[0, 5, 400] += 50.0  # impulsive outlier
    cfg = PreprocessConfig(wifi=WifiPrep(lowpass_hz=None))
    y, usable = preprocess("wifi", x, cfg)
    assert usable.all()
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
    y, _ = preprocess("wifi", x, cfg)
    mid = slice(200, 800)  # away from filtfilt's edge transients
    assert _rms_db(y[0, 0, mid]) - _rms_db(x[0, 0, mid]) < -20.0
    assert abs(_rms_db(y[0, 1, mid]) - _rms_db(x[0, 1, mid])) < 1.0


def test_wifi_resampling_changes_length_and_keeps_slow_signal() -> None:
    cfg = PreprocessConfig(wifi=WifiPrep(resample_to=500))
    assert output_shape("wifi", cfg) == (270, 500)
    t = np.arange(T_WIFI) / FS
    x = np.broadcast_to(10 + np.sin(2 * np.pi * t), (2, 270, T_WIFI))
    y, _ = preprocess("wifi", x, cfg)
    assert y.shape == (2, 270, 500)
    t2 = np.arange(500) / 100.0
    np.testing.assert_allclose(y[0, 0, 50:450], 10 + np.sin(2 * np.pi * t2[50:450]), atol=0.02)


# ---------------------------------------------------------------------------------------------- rfid


@pytest.mark.parametrize("fix_jumps", [False, True])
def test_wrapped_ramp_is_unwrapped(fix_jumps: bool) -> None:
    ramp = 0.5 + 0.3 * np.arange(148)  # ~44 rad: many wraps, 0.3 rad/read < pi/2
    x = np.broadcast_to(np.mod(ramp, 2 * np.pi), (2, 23, 148))
    cfg = PreprocessConfig(rfid=RfidPrep(remove_offset=False, fix_jumps=fix_jumps))
    y, usable = preprocess("rfid", x, cfg)
    assert usable.all()
    np.testing.assert_allclose(y[1, 7], ramp, atol=1e-4)


def test_pi_jumps_are_repaired() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(148) / 30.0
    true = 3.0 * np.sin(2 * np.pi * 0.3 * t)[None, :] + rng.uniform(0, 6, (23, 1))  # (23, 148)
    flips = rng.random((23, 148)) < 0.15  # the reader's random 180-degree ambiguity
    x = np.mod(true + np.pi * flips, 2 * np.pi)[None]
    y, _ = preprocess("rfid", x)
    want = true - np.median(true, axis=1, keepdims=True)
    np.testing.assert_allclose(y[0], want, atol=1e-4)


def test_missing_rfid_reads_interpolated_across_a_wrap() -> None:
    ramp = 1.0 + 0.2 * np.arange(148)
    x = np.broadcast_to(np.mod(ramp, 2 * np.pi), (1, 23, 148)).copy()
    # The true phase wraps inside this gap (at read ~26.4). Across a gap the phase may change by less
    # than pi/2 (fix_jumps) for the wrap count to be recoverable: here 7 steps x 0.2 = 1.4 rad.
    x[0, 3, 21:27] = np.nan
    cfg = PreprocessConfig(rfid=RfidPrep(remove_offset=False))
    y, usable = preprocess("rfid", x, cfg)
    assert usable.all()
    np.testing.assert_allclose(y[0, 3], ramp, atol=1e-4)


def test_repair_nonfinite_with_period_bridges_a_wrap() -> None:
    ramp = np.mod(5.5 + 0.1 * np.arange(40), 2 * np.pi)
    x = ramp[None, None].copy()
    x[0, 0, 3:12] = np.nan  # true values climb through 2*pi inside the gap
    fixed, usable = repair_nonfinite(x, 0.5, period=2 * np.pi)
    assert usable.all()
    np.testing.assert_allclose(fixed[0, 0], ramp, atol=1e-9)


# -------------------------------------------------------------------------------------------- mmwave


def test_mmwave_log_and_clip_are_monotone_and_finite() -> None:
    rng = np.random.default_rng(3)
    x = rng.exponential(50.0, (2, *SHAPES["mmwave"]))
    x[0, 0, 0, :5] = [1e30, -3.0, 0.0, 1e-12, 7e5]  # saturation, a negative, tiny values
    y, usable = preprocess("mmwave", x)
    assert usable.all() and y.dtype == np.float32 and np.isfinite(y).all()
    for b in range(2):
        order = np.argsort(x[b].ravel(), kind="stable")
        assert (np.diff(y[b].ravel()[order]) >= 0).all(), "output not monotone in the input"
    # the 99.9th percentile clip removes the 1e30 outlier's dominance
    assert y[0].max() < np.log1p(1e30) / 2
    clipped, _ = preprocess(
        "mmwave", x, PreprocessConfig(mmwave=MmwavePrep(clip_percentile=None, clip_max=3.0))
    )
    assert clipped.max() == pytest.approx(3.0)
    raw, _ = preprocess("mmwave", x, PreprocessConfig(mmwave=MmwavePrep(log=False, clip_percentile=None)))
    np.testing.assert_array_equal(raw, x.astype(np.float32))


def test_mmwave_accepts_leading_one_axis() -> None:
    x = _batch("mmwave", 1)
    a, _ = preprocess("mmwave", x)
    b, _ = preprocess("mmwave", x[:, None])
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------- non-finite input


def test_short_nan_gap_is_linearly_repaired() -> None:
    ramp = np.linspace(10.0, 20.0, T_WIFI)
    x = np.broadcast_to(ramp, (2, 270, T_WIFI)).copy()
    x[1, 42, 300:320] = np.nan
    x[1, 43, :5] = np.inf  # leading gap: edge-hold
    y, usable = preprocess("wifi", x, NO_FILTERS)
    assert usable.all()
    np.testing.assert_allclose(y[1, 42], ramp, atol=1e-4)
    np.testing.assert_allclose(y[1, 43, :5], ramp[5], atol=1e-4)


def test_repair_nonfinite_returns_copy_and_mask() -> None:
    x = np.arange(12, dtype=np.float64).reshape(1, 2, 6)
    x[0, 0, 2] = np.nan
    x[0, 1, :] = np.nan  # a dead channel: filled with the sample median
    fixed, usable = repair_nonfinite(x, 0.6)
    assert usable.tolist() == [True]
    assert np.isnan(x[0, 0, 2]), "input must not be modified"
    np.testing.assert_allclose(fixed[0, 0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(fixed[0, 1], np.median([0, 1, 3, 4, 5]))
    _, usable = repair_nonfinite(x, 0.5)  # 7 of 12 values bad > 50 %
    assert usable.tolist() == [False]


@pytest.mark.parametrize("modality", MODALITIES)
def test_modality_unusable_beyond_repair_fraction(modality: str) -> None:
    x = _batch(modality, 3).astype(np.float64)
    flat = x.reshape(3, -1)
    flat[1, : int(0.25 * flat.shape[1])] = np.nan  # 25 % > default 20 %
    flat[2, ::50] = np.inf  # 2 %: repaired
    y, usable = preprocess(modality, x)
    assert usable.tolist() == [True, False, True]
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert not y[1].any(), "unusable sample must be zero-filled"
    y_strict, usable_strict = preprocess(modality, x, PreprocessConfig(max_repair_fraction=0.01))
    assert usable_strict.tolist() == [True, False, False]


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int16])
def test_output_always_finite_float32(modality: str, dtype: type) -> None:
    x = _batch(modality, 2).astype(dtype)
    y, usable = preprocess(modality, x)
    assert y.dtype == np.float32 and y.shape == (2, *output_shape(modality, PreprocessConfig()))
    assert np.isfinite(y).all() and usable.all()


@pytest.mark.filterwarnings("error")  # no overflow RuntimeWarning on the way either
def test_values_beyond_float32_range_count_as_nonfinite() -> None:
    x = _batch("wifi", 2)
    x[0] = 1e300  # finite in float64, inf in float32
    x[1, 0, 10] = -1e300  # one such value: repaired like a NaN
    y, usable = preprocess("wifi", x)
    assert usable.tolist() == [False, True] and np.isfinite(y).all()
    assert abs(y[1, 0, 10] - 20) < 10


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 22), st.integers(0, 147), st.sampled_from([np.nan, np.inf, -np.inf])),
        max_size=200,
    )
)
def test_rfid_never_emits_nonfinite(holes: list[tuple[int, int, float]]) -> None:
    x = _batch("rfid", 1)
    for tag, read, v in holes:
        x[0, tag, read] = v
    y, _ = preprocess("rfid", x)
    assert np.isfinite(y).all()


# ------------------------------------------------------------------------ vectorisation, determinism


@pytest.mark.parametrize("modality", MODALITIES)
def test_batch_result_equals_per_sample_results(modality: str) -> None:
    x = _batch(modality, 3, seed=5).astype(np.float64)
    x[1].reshape(-1)[::97] = np.nan  # exercise the repair path for one sample only
    whole, usable = preprocess(modality, x)
    for b in range(3):
        one, ok = preprocess(modality, x[b : b + 1])
        np.testing.assert_array_equal(one[0], whole[b])  # rows are independent: bit-identical
        assert ok[0] == usable[b]


@pytest.mark.parametrize("modality", MODALITIES)
def test_deterministic(modality: str) -> None:
    x = _batch(modality, 2, seed=7)
    a, _ = preprocess(modality, x)
    b, _ = preprocess(modality, x.copy())
    np.testing.assert_array_equal(a, b)


def test_empty_batch() -> None:
    y, usable = preprocess("rfid", np.zeros((0, 23, 148)))
    assert y.shape == (0, 23, 148) and usable.shape == (0,)


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("modality", "shape", "expected"),
    [
        ("wifi", (2, 270, 999), "(B, 270, 1000)"),
        ("rfid", (23, 148), "(B, 23, 148)"),
        ("mmwave", (1, 17, 256, 64), "(B, 17, 256, 128)"),
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
        wifi=WifiPrep(hampel_window=4, lowpass_hz=None, resample_to=500),
        rfid=RfidPrep(fix_jumps=False),
        mmwave=MmwavePrep(clip_percentile=None, clip_max=12.5),
        max_repair_fraction=0.1,
    )
    d = json.loads(json.dumps(cfg.to_dict()))
    assert PreprocessConfig.from_dict(d) == cfg
    assert PreprocessConfig.from_dict({}) == PreprocessConfig()
    assert PreprocessConfig.from_dict({"wifi": {"lowpass_hz": 15}}).wifi.lowpass_hz == 15.0


def test_config_unknown_key_names_key_and_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        PreprocessConfig.from_dict({"wifi": {"hampel_windw": 3}})
    assert "wifi.hampel_windw" in str(err.value) and "hampel_window" in str(err.value)
    with pytest.raises(
        ConfigError, match="unknown key 'data.preprocessing.radar'; allowed: wifi, rfid, mmwave"
    ):
        PreprocessConfig.from_dict({"radar": {}}, prefix="data.preprocessing")


@pytest.mark.parametrize(
    "d",
    [
        {"wifi": {"order": "4"}},
        {"wifi": {"order": True}},
        {"rfid": {"unwrap": 1}},
        {"wifi": {"fs": None}},
        {"wifi": 3},
        {"wifi": {"lowpass_hz": 150.0}},
        {"max_repair_fraction": 1.5},
        {"mmwave": {"clip_percentile": 0}},
    ],
)
def test_config_bad_values_are_config_errors(d: dict) -> None:
    with pytest.raises(ConfigError):
        PreprocessConfig.from_dict(d)


# ---------------------------------------------------------------------------------------- statistics


def test_norm_accumulator_matches_numpy_over_concatenation() -> None:
    rng = np.random.default_rng(11)
    # a large common offset would expose a naive sum/sum-of-squares formula
    batches = [1e6 + rng.normal(0, 1 + np.arange(23)[None, :, None], (n, 23, 148)) for n in (5, 1, 9, 4)]
    masks = [rng.random(len(b)) < 0.7 for b in batches]
    masks[1][:] = False  # a batch with nothing usable
    acc = NormAccumulator()
    for b, m in zip(batches, masks, strict=True):
        acc.update("rfid", b, m)
    wifi = rng.normal(3, 2, (6, 270, 50))
    acc.update("wifi", wifi[:2])
    acc.update("wifi", wifi[2:])
    stats = acc.result()
    cat = np.concatenate([b[m] for b, m in zip(batches, masks, strict=True)])
    np.testing.assert_allclose(stats.mean["rfid"], cat.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(stats.std["rfid"], cat.std(axis=(0, 2)), rtol=1e-7)
    np.testing.assert_allclose(stats.mean["wifi"], wifi.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(stats.std["wifi"], wifi.std(axis=(0, 2)), rtol=1e-10)
    assert set(stats.mean) == {"rfid", "wifi"}


def test_norm_std_is_floored_and_unseen_modality_is_identity() -> None:
    acc = NormAccumulator()
    acc.update("wifi", np.zeros((2, 270, 10)))
    acc.update("mmwave", np.ones((2, 17, 4, 4)), usable=np.array([False, False]))
    stats = acc.result()
    assert (stats.std["wifi"] > 0).all()
    np.testing.assert_array_equal(stats.mean["mmwave"], 0.0)
    np.testing.assert_array_equal(stats.std["mmwave"], 1.0)
    with pytest.raises(ValueError, match="channels"):
        acc.update("wifi", np.zeros((1, 90, 10)))


def test_norm_stats_save_load_round_trip(tmp_path) -> None:
    stats = NormStats(
        mean={m: np.linspace(0, 1, SHAPES[m][0]) for m in MODALITIES},
        std={m: np.linspace(1, 2, SHAPES[m][0]) for m in MODALITIES},
    )
    path = tmp_path / "stats.npz"
    stats.save(path)
    back = NormStats.load(path)
    for m in MODALITIES:
        np.testing.assert_array_equal(back.mean[m], stats.mean[m])
        np.testing.assert_array_equal(back.std[m], stats.std[m])
    x = np.ones((2, 23, 148))
    np.testing.assert_allclose(
        back.apply("rfid", x)[0, :, 0], (1 - stats.mean["rfid"]) / stats.std["rfid"], rtol=1e-6
    )
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(DataError, match="bad.npz"):
        NormStats.load(tmp_path / "bad.npz")


def test_wifi_remove_static_centres_each_channel():
    from rfsense.data.preprocess import PreprocessConfig, WifiPrep, preprocess

    rng = np.random.default_rng(0)
    x = 20.0 + rng.normal(size=(2, 270, 1000)) + np.linspace(0, 5, 270)[None, :, None]
    y, _ = preprocess("wifi", x, PreprocessConfig(wifi=WifiPrep(remove_static=True)))  # float32
    assert np.abs(np.median(y, axis=-1)).max() < 1e-5
    p, _ = preprocess("wifi", x, PreprocessConfig())
    np.testing.assert_allclose(y, p - np.median(p, axis=-1, keepdims=True), atol=1e-5)
