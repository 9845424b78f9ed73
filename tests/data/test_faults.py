"""Fault injectors: determinism, identity at severity 0, magnitude growing with severity, shapes and dtypes,
inputs left alone, preprocessed variants, and one-line errors for bad input.

Random batches with the real shapes stand in for sensor data (no exact repeats, no zeros, so every measure
below sees only what the fault did); one test runs the runtime's health checks on the delivered gaps.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

import rfsense.data.faults as faults_pkg
from rfsense.data.faults import (
    FAULTS,
    apply_fault,
    apply_joint,
    apply_joint_preprocessed,
    apply_preprocessed,
    describe_faults,
    feature_dropout_mask,
    get_fault,
    list_faults,
)
from rfsense.data.faults._core import RANGE_BIN_M, WINDOW_S
from rfsense.data.preprocess import PreprocessConfig, preprocess
from rfsense.errors import ConfigError, DataError
from rfsense.modalities import MODALITIES

B = {"mmwave": 3, "wifi": 4, "rfid": 8}
SCALE = {"mmwave": 2.0, "wifi": 5.0, "rfid": 0.5}
STREAM = [(f.name, m) for f in list_faults(kind="stream") for m in f.modalities]
DETERMINISTIC_GIVEN_DATA = {"saturation"}  # no random draw at all


def _raw(modality: str, n: int | None = None, seed: int = 0, dtype=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = B[modality] if n is None else n
    if modality == "mmwave":
        return rng.uniform(0.5, 10, (n, 17, 256, 128)).astype(dtype or np.float32)
    if modality == "wifi":
        return rng.uniform(1, 20, (n, 270, 1000)).astype(dtype or np.float64)
    return rng.uniform(0.01, 2 * np.pi - 0.01, (n, 23, 148)).astype(dtype or np.float64)


RAW = {m: _raw(m) for m in MODALITIES}


def _run(name, m, x, sev, seed=0, ids=None):
    ids = np.arange(len(x)) if ids is None else ids
    return apply_fault(name, m, x, sev, seed=seed, sample_ids=ids, scale=SCALE)


def _same(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


# --------------------------------------------------------------------------------------------------
# Measures of fault magnitude (raw domain), one per fault


def _time_first(m, y):
    return y if m == "mmwave" else y.swapaxes(1, 2)


def _repeat_fraction(m, y):
    """Fraction of time steps identical to the step before, over all channels at once (RFID: per read)."""
    if m == "rfid":
        return float((y[..., 1:] == y[..., :-1]).mean())
    v = _time_first(m, y)
    return float((v[:, 1:] == v[:, :-1]).reshape(len(y), v.shape[1] - 1, -1).all(axis=2).mean())


def _lost_steps(m, y):
    """WiFi: all-NaN packets; mmWave: all-NaN frames; RFID: held reads."""
    if m == "rfid":
        return _repeat_fraction(m, y)
    v = _time_first(m, y)
    return float(np.isnan(v).reshape(len(y), v.shape[1], -1).all(axis=2).mean())


def _measure(name, m, x, y):
    if name == "dropout-input":
        axes = (1, 3) if m == "mmwave" else (2,)
        return float((y == 0).all(axis=axes).mean())
    if name == "gaussian":
        if m == "rfid":
            return float(1 - np.abs(np.exp(1j * (y - x)).mean()))  # circular spread of the added noise
        return float(np.mean((y.astype(np.float64) - x) ** 2))
    if name in ("missing", "bursty-loss"):
        return _lost_steps(m, y)
    if name == "nan-inf":
        return float((~np.isfinite(y)).mean())
    if name in ("stuck", "lost-tags"):
        return _repeat_fraction(m, y)
    if name == "saturation":  # share of values at the sample's maximum, beyond the clean one's

        def at_max(a):
            a = a.reshape(len(a), -1)
            return float((a == a.max(axis=1, keepdims=True)).mean())

        return at_max(y) - at_max(x)
    if name == "agc-step":
        db = 20 * np.log10(y / x).reshape(len(y), 3, 90, -1).mean(axis=2)  # (B, rx, T) gain in dB
        return float(np.abs(np.diff(db, axis=-1)).sum(axis=(1, 2)).mean())  # total dB stepped
    if name == "dead-receiver":
        return float((y == 0).mean())
    if name == "phase-jump":
        d = np.angle(np.exp(1j * (y - x)))
        return float((np.abs(d) > np.pi / 2).mean())
    if name == "dropped-frames":
        return float((y == 0).all(axis=(2, 3)).mean())
    if name == "blinded-sector":
        return float((y != x).any(axis=(1, 3)).mean())
    raise AssertionError(f"no measure for {name}")


# --------------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_every_fault_with_five_levels_and_the_docstring_table_matches():
    table = re.findall(r"^\| ([a-z-]+) \| (stream|joint|features) \|", faults_pkg.__doc__, flags=re.M)
    assert [n for n, _ in table] == list(FAULTS)
    assert all(FAULTS[n].kind == k for n, k in table)
    text = describe_faults()
    for f in FAULTS.values():
        assert len(f.levels) == len(f.values) == 5 and len(set(f.levels)) == 5, f.name
        assert set(f.modalities) <= set(MODALITIES) and f.modalities, f.name
        assert f.name in text and all(level in text for level in f.levels), f.name
        assert f.level(0) == "no fault (identity)" and f.level(5) == f.levels[4]
        json.dumps(f.to_dict())
    assert {"dropout", "dropout-input", "gaussian", "missing", "desync", "sensor-lost", "sensor-fail"} <= set(FAULTS)
    assert [f.name for f in list_faults("rfid", "stream")] == [n for n, m in STREAM if m == "rfid"]


def test_window_and_range_bin_match_the_generator():
    from rfsense.data.synth.constants import DURATION_S, MM_RANGE_RES

    assert WINDOW_S == DURATION_S and RANGE_BIN_M == pytest.approx(MM_RANGE_RES, rel=0.01)


# --------------------------------------------------------------------------------------------------
# Stream faults on raw streams


@pytest.mark.parametrize("name,m", STREAM)
def test_deterministic_per_sample_and_independent_of_the_batch(name, m):
    x = RAW[m][:3]
    ids = np.array([10, 11, 12])
    y = _run(name, m, x, 3, ids=ids)
    assert _same(y, _run(name, m, x, 3, ids=ids))
    # The same samples in another batch, another order: the same corruption per sample.
    y2 = _run(name, m, x[[2, 0]], 3, ids=ids[[2, 0]])
    assert _same(y2[0], y[2]) and _same(y2[1], y[0])
    if name in DETERMINISTIC_GIVEN_DATA:
        return
    assert not _same(_run(name, m, x, 3, seed=1, ids=ids), y)
    # Two identical samples with different ids get different draws; (B, k) keys work as ids.
    twins = np.stack([x[0], x[0]])
    yt = apply_fault(name, m, twins, 3, seed=0, sample_ids=[[1, 2, 3], [1, 2, 4]], scale=SCALE)
    assert not _same(yt[0], yt[1])


@pytest.mark.parametrize("name,m", STREAM)
def test_identity_at_severity_0_shape_dtype_and_input_untouched(name, m):
    x = RAW[m]
    before = x.copy()
    y0 = _run(name, m, x, 0)
    assert _same(y0, x) and not np.shares_memory(y0, x)
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        y = _run(name, m, xd, 5)
        assert y.shape == xd.shape and y.dtype == dtype
    assert _same(x, before)


@pytest.mark.parametrize("name,m", STREAM)
def test_magnitude_grows_with_severity(name, m):
    x = RAW[m]
    got = [_measure(name, m, x, _run(name, m, x, s)) for s in range(6)]
    assert got[0] == 0, got
    assert all(a < b for a, b in itertools.pairwise(got)), f"{name} on {m}: {got}"


def test_mmwave_file_layout_with_leading_1_keeps_its_shape():
    x = RAW["mmwave"][:2, None]  # (2, 1, 17, 256, 128)
    y = _run("missing", "mmwave", x, 2)
    assert y.shape == x.shape and _same(y[:, 0], _run("missing", "mmwave", x[:, 0], 2))


def test_integer_input_comes_back_as_float64():
    x = np.ones((2, 23, 148), dtype=np.int32)
    assert _run("dropout-input", "rfid", x, 0).dtype == np.float64


def test_levels_mean_what_they_say():
    # missing p: fraction of lost packets; dropout-input: exact channel counts; dropped-frames: exact frames.
    wifi = _raw("wifi", 8)
    assert _lost_steps("wifi", _run("missing", "wifi", wifi, 2)) == pytest.approx(0.3, abs=0.03)
    rf = _run("dropout-input", "rfid", RAW["rfid"], 3)
    assert ((rf == 0).all(axis=2).sum(axis=1) == round(0.5 * 23)).all()
    mm = _run("dropped-frames", "mmwave", RAW["mmwave"], 4)
    assert ((mm == 0).all(axis=(2, 3)).sum(axis=1) == 7).all()
    # stuck at 5: the whole window repeats its first step (flat line); agc-step at 5: 6 steps x 10 dB
    flat = _run("stuck", "wifi", wifi[:2], 5)
    assert (flat == flat[:, :, :1]).all()
    assert _measure("agc-step", "wifi", wifi, _run("agc-step", "wifi", wifi, 5)) == pytest.approx(60, rel=1e-6)
    # saturation q: the share of values at the sample's maximum
    sat = _run("saturation", "mmwave", RAW["mmwave"], 4)
    assert _measure("saturation", "mmwave", RAW["mmwave"], sat) == pytest.approx(0.25, abs=1e-3)
    # gaussian: noise std = sigma * s(m)
    g = _run("gaussian", "wifi", wifi, 4)
    assert np.std(g - wifi) == pytest.approx(1.0 * SCALE["wifi"], rel=0.01)
    # RFID stays a wrapped phase
    for name in ("gaussian", "phase-jump"):
        y = _run(name, "rfid", RAW["rfid"], 5)
        assert y.min() >= 0 and y.max() < 2 * np.pi


def test_rfid_missed_reads_are_held_and_nan_inf_packets_follow_the_receiver_layout():
    y = _run("missing", "rfid", RAW["rfid"], 3)
    assert np.isfinite(y).all() and set(np.unique(y)) <= set(np.unique(RAW["rfid"]))
    w = _run("nan-inf", "wifi", RAW["wifi"], 5)
    bad = ~np.isfinite(w).reshape(len(w), 3, 90, -1)
    assert (bad.all(axis=2) == bad.any(axis=2)).all()  # a corrupt report hits all 90 values of its receiver
    assert np.isinf(w).any() and np.isnan(w).any()


def test_the_runtime_health_checks_see_the_faults_as_documented():
    from rfsense.deploy.health import check_streams

    def statuses(m, y):
        return {v[m].status for v in check_streams({m: y})[2]}

    assert statuses("wifi", _run("missing", "wifi", RAW["wifi"], 1)) == {"repaired"}  # 10% NaN packets
    assert statuses("wifi", _run("missing", "wifi", RAW["wifi"], 2)) == {"failed"}  # 30% > 20%
    assert statuses("rfid", _run("missing", "rfid", RAW["rfid"], 5)) == {"failed"}  # 90% held reads
    assert statuses("wifi", _run("stuck", "wifi", RAW["wifi"], 5)) == {"failed"}  # flat line
    assert statuses("mmwave", _run("dropped-frames", "mmwave", RAW["mmwave"], 5)) == {"ok"}  # zeros pass


# --------------------------------------------------------------------------------------------------
# Preprocessed variants

PRE_STREAM = [(n, m) for n, m in STREAM if get_fault(n).has_preprocessed]


def _pre(m: str, n: int = 3, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(1)
    shape = {"mmwave": (17, 256, 128), "wifi": (270, 1000), "rfid": (23, 148)}[m]
    lo = 0.0 if m == "rfid" else 0.5
    x = rng.uniform(lo, 3, (n, *shape))
    if m == "rfid":
        x = np.cumsum(x - 1.5, axis=-1) * 0.05  # unwrapped, offset-free-ish phase
    return x.astype(dtype)


PRE = {m: _pre(m) for m in MODALITIES}


@pytest.mark.parametrize("name,m", PRE_STREAM)
def test_preprocessed_variant_is_deterministic_finite_and_keeps_shape_and_dtype(name, m):
    x = PRE[m]
    before = x.copy()
    kw = dict(seed=0, sample_ids=[5, 6, 7], scale=SCALE)
    y0, ok0 = apply_preprocessed(name, m, x, 0, **kw)
    assert _same(y0, x) and ok0.all()
    for s in (1, 3, 5):
        y, ok = apply_preprocessed(name, m, x, s, **kw)
        assert y.shape == x.shape and y.dtype == x.dtype and ok.shape == (3,) and np.isfinite(y).all()
        assert (y[~ok] == 0).all() and not _same(y, x)
        assert _same(y, apply_preprocessed(name, m, x, s, **kw)[0])
    y16, _ = apply_preprocessed(name, m, x.astype(np.float16), 3, **kw)
    assert y16.dtype == np.float16
    assert _same(x, before)


def test_preprocessed_gaps_are_repaired_or_the_sample_zeroed():
    x = PRE["wifi"]
    y, ok = apply_preprocessed("missing", "wifi", x, 1, seed=0, sample_ids=[0, 1, 2])
    assert ok.all()
    raw_gaps = np.isnan(_run("missing", "wifi", np.ones((3, 270, 1000)), 1, ids=np.arange(3)))
    assert ((y != x) <= raw_gaps).all() and (y != x).any()  # only the raw gaps change, by interpolation
    y, ok = apply_preprocessed("missing", "wifi", x, 5, seed=0, sample_ids=[0, 1, 2])
    assert not ok.any() and (y == 0).all()  # 90% lost > the quality rule's max_nonfinite_fraction 0.2


@pytest.mark.parametrize("m,groups", [("wifi", 1), ("wifi", 3), ("rfid", 23), ("mmwave", 16)])
def test_fast_gap_repair_equals_the_shared_repair_nonfinite(m, groups):
    from rfsense.data.faults._core import interpolate_gaps
    from rfsense.data.quality import QualityConfig, repair_nonfinite

    x = PRE[m].astype(np.float64)
    t_len = x.shape[2] if m != "mmwave" else x.shape[1]
    lost = np.random.default_rng(3).random((3, groups, t_len)) < np.array([0.05, 0.15, 0.4])[:, None, None]
    if m == "rfid":
        lost[0, 4] = True  # a tag with no read left: the shared function fills it with the sample's median
    want = x.copy()
    w4 = want.reshape(3, t_len, groups, -1) if m == "mmwave" else want.reshape(3, groups, -1, t_len)
    if m == "mmwave":
        w4[np.moveaxis(lost, 1, 2)] = np.nan
    else:
        w4.transpose(0, 1, 3, 2)[lost] = np.nan
    quality = QualityConfig(max_gap_fraction=1.0)  # the fraction rule alone: every pattern above is repairable by gaps
    holey = want.copy()
    want, ok_want = repair_nonfinite(m, holey, quality)
    got, ok = interpolate_gaps(m, x.copy(), lost, PreprocessConfig(), quality)
    assert (ok == ok_want).all() and (ok == [True, True, False]).all()
    strict = QualityConfig()  # with the gap rule: the same verdicts as the shared function, whatever they are
    assert (interpolate_gaps(m, x.copy(), lost, PreprocessConfig(), strict)[1] == repair_nonfinite(m, holey, strict)[1]).all()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_raw_and_preprocessed_variants_draw_the_same_corruption():
    # RFID masked tags: the raw fault's zero rows come out of preprocessing exactly as the variant's zero rows.
    raw = RAW["rfid"][:3]
    ids = [3, 4, 5]
    pre_of_raw = preprocess("rfid", apply_fault("dropout-input", "rfid", raw, 3, seed=2, sample_ids=ids))
    variant, _ = apply_preprocessed("dropout-input", "rfid", preprocess("rfid", raw), 3, seed=2, sample_ids=ids)
    assert ((pre_of_raw == 0).all(axis=2) == (variant == 0).all(axis=2)).all()
    mm = RAW["mmwave"][:2]
    pre_of_raw = preprocess("mmwave", apply_fault("dropped-frames", "mmwave", mm, 2, seed=0, sample_ids=[0, 1]))
    variant, _ = apply_preprocessed("dropped-frames", "mmwave", preprocess("mmwave", mm), 2, seed=0, sample_ids=[0, 1])
    assert ((pre_of_raw == 0).all(axis=(2, 3)) == (variant == 0).all(axis=(2, 3))).all()


def test_preprocessed_batch_of_the_wrong_shape_is_refused():
    x = np.random.default_rng(0).uniform(1, 2, (2, 270, 500)).astype(np.float32)
    with pytest.raises(DataError, match="expected"):
        apply_preprocessed("bursty-loss", "wifi", x, 3, seed=0, sample_ids=[0, 1])


# --------------------------------------------------------------------------------------------------
# Joint faults


def _ramp(m: str, n: int) -> np.ndarray:
    """Time ramps (value = 0.01 * step + channel offset): a shift by k steps reads as 0.01 * k."""
    shape = {"mmwave": (17, 256, 128), "wifi": (270, 1000), "rfid": (23, 148)}[m]
    t_axis = 1 if m == "mmwave" else 2
    t = np.arange(shape[t_axis - 1]) * 0.01
    t = t.reshape([-1 if a == t_axis else 1 for a in range(len(shape) + 1)])
    return (np.zeros((n, *shape)) + t + np.random.default_rng(0).uniform(0, 1e-3, (n, *shape))).astype(np.float32)


def test_desync_shifts_the_non_reference_streams_more_with_severity():
    streams = {"wifi": _ramp("wifi", 3), "rfid": _ramp("rfid", 3)}
    shifts = []
    for s in range(6):
        out, lost = apply_joint("desync", streams, s, seed=0, sample_ids=[0, 1, 2])
        assert not lost.any() and _same(out["wifi"], streams["wifi"])  # wifi is the reference
        d = (out["rfid"] - streams["rfid"])[:, :, 74] / 0.01  # middle read slot: shift in slots
        assert np.allclose(d, np.round(d), atol=0.2)
        shifts.append(float(np.abs(d).mean()))
    assert shifts[0] == 0 and all(a < b for a, b in itertools.pairwise(shifts)), shifts
    assert shifts[5] == pytest.approx(70, abs=0.5)  # 8 mmWave frames = 2.35 s = 70 read slots
    out3, _ = apply_joint("desync", {"mmwave": _ramp("mmwave", 1), "wifi": _ramp("wifi", 1)}, 1, seed=0, sample_ids=[0])
    assert abs((out3["wifi"] - _ramp("wifi", 1))[0, :, 500] / 0.01).round().max() == 59


def test_joint_faults_are_deterministic_identity_at_0_and_independent_of_the_batch():
    streams = {m: RAW[m][:3] for m in MODALITIES}
    before = {m: a.copy() for m, a in streams.items()}
    ids = np.array([7, 8, 9])
    for name in ("desync", "sensor-lost", "sensor-fail"):
        out0, lost0 = apply_joint(name, streams, 0, seed=0, sample_ids=ids)
        assert not lost0.any() and all(_same(out0[m], streams[m]) for m in MODALITIES)
        out, lost = apply_joint(name, streams, 4, seed=0, sample_ids=ids)
        again, lost2 = apply_joint(name, streams, 4, seed=0, sample_ids=ids)
        assert (lost == lost2).all() and all(_same(out[m], again[m]) for m in MODALITIES)
        sub, lost_sub = apply_joint(name, {m: a[[2, 0]] for m, a in streams.items()}, 4, seed=0, sample_ids=ids[[2, 0]])
        assert (lost_sub == lost[[2, 0]]).all()
        assert all(_same(sub[m], out[m][[2, 0]]) for m in MODALITIES)
        assert all(out[m].dtype == streams[m].dtype and out[m].shape == streams[m].shape for m in MODALITIES)
    assert all(_same(streams[m], before[m]) for m in MODALITIES)


def test_sensor_lost_grows_to_a_whole_lost_sensor_and_spares_the_others():
    streams = {"wifi": RAW["wifi"], "rfid": RAW["rfid"][:4]}
    dark = []
    for s in range(6):
        out, lost = apply_joint("sensor-lost", streams, s, seed=0, sample_ids=np.arange(4), targets=("wifi",))
        assert _same(out["rfid"], streams["rfid"])
        dark.append(float(np.isnan(out["wifi"]).mean()))
        assert lost[:, 1].all() == (s == 5) and not lost[:, [0, 2]].any()
    assert dark[0] == 0 and all(a < b for a, b in itertools.pairwise(dark)) and dark[5] == 1.0, dark
    # preprocessed: a stretch of a 10% outage is repaired; the whole window is zeros and unusable
    pre = {"wifi": PRE["wifi"], "rfid": PRE["rfid"]}
    out, usable = apply_joint_preprocessed("sensor-lost", pre, 1, seed=0, sample_ids=[0, 1, 2])
    assert usable.all() and all(np.isfinite(a).all() for a in out.values())
    out, usable = apply_joint_preprocessed("sensor-lost", pre, 5, seed=0, sample_ids=[0, 1, 2], targets="rfid")
    assert not usable[:, 2].any() and usable[:, :2].all() and (out["rfid"] == 0).all()


def test_sensor_fail_loses_more_sensors_with_severity():
    streams = {"rfid": _raw("rfid", 200), "wifi": None}
    frac = [float(apply_joint("sensor-fail", streams, s, seed=0, sample_ids=np.arange(200))[1][:, 2].mean())
            for s in range(6)]
    assert frac[0] == 0 and all(a < b for a, b in itertools.pairwise(frac)), frac
    assert frac[5] == pytest.approx(0.5, abs=0.1)
    out, lost = apply_joint("sensor-fail", streams, 5, seed=0, sample_ids=np.arange(200))
    assert np.isnan(out["rfid"][lost[:, 2]]).all() and np.isfinite(out["rfid"][~lost[:, 2]]).all()


# --------------------------------------------------------------------------------------------------
# Feature-level dropout mask


def test_feature_dropout_mask_counts_nesting_and_determinism():
    masks = [feature_dropout_mask(64, "wifi", s, seed=0, sample_ids=[1, 2, 3]) for s in range(6)]
    assert not masks[0].any()
    assert [int(mk.sum(axis=1)[0]) for mk in masks[1:]] == [round(r * 64) for r in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert all((a <= b).all() for a, b in itertools.pairwise(masks))  # nested
    assert (masks[3] == feature_dropout_mask(64, "wifi", 3, seed=0, sample_ids=[1, 2, 3])).all()
    assert not (masks[3] == feature_dropout_mask(64, "rfid", 3, seed=0, sample_ids=[1, 2, 3])).all()


# --------------------------------------------------------------------------------------------------
# Errors: one line, the right class


@pytest.mark.parametrize(
    "call,err,text",
    [
        (lambda: _run("misssing", "wifi", RAW["wifi"], 1), ConfigError, "unknown fault 'misssing'; available"),
        (lambda: _run("missing", "wifi", RAW["wifi"], 6), ConfigError, "expected an integer 0..5"),
        (lambda: _run("missing", "wifi", RAW["wifi"], -1), ConfigError, "expected an integer 0..5"),
        (lambda: _run("missing", "wifi", RAW["wifi"], 2.0), ConfigError, "expected an integer 0..5"),
        (lambda: _run("missing", "wifi", RAW["wifi"], True), ConfigError, "expected an integer 0..5"),
        (lambda: _run("agc-step", "rfid", RAW["rfid"], 1), ConfigError, "applies to wifi; not to rfid"),
        (lambda: _run("missing", "lidar", RAW["rfid"], 1), ConfigError, "unknown modality"),
        (lambda: apply_fault("gaussian", "wifi", RAW["wifi"], 1, seed=0, sample_ids=np.arange(4)), ConfigError,
         "needs the raw-domain std s(m) of wifi"),
        (lambda: apply_fault("gaussian", "wifi", RAW["wifi"], 0, seed=0, sample_ids=np.arange(4),
                             scale={"rfid": 1.0}), ConfigError, "s(m) of wifi"),
        (lambda: apply_fault("gaussian", "wifi", RAW["wifi"], 1, seed=0, sample_ids=np.arange(4), scale=-1.0),
         ConfigError, "expected a finite number > 0"),
        (lambda: apply_preprocessed("gaussian", "wifi", PRE["wifi"], 1, seed=0, sample_ids=[0, 1, 2]),
         ConfigError, "preprocessed-domain std"),
        (lambda: _run("desync", "wifi", RAW["wifi"], 1), ConfigError, "use apply_joint"),
        (lambda: _run("dropout", "wifi", RAW["wifi"], 1), ConfigError, "use 'dropout-input'"),
        (lambda: apply_preprocessed("phase-jump", "rfid", PRE["rfid"], 1, seed=0, sample_ids=[0, 1, 2]),
         ConfigError, "no preprocessed variant"),
        (lambda: apply_joint("missing", {"wifi": RAW["wifi"]}, 1, seed=0, sample_ids=np.arange(4)),
         ConfigError, "use apply_fault"),
        (lambda: apply_joint("desync", {"wifi": RAW["wifi"]}, 1, seed=0, sample_ids=np.arange(4)),
         ConfigError, "needs at least 2 target sensors"),
        (lambda: apply_joint("desync", {"wifi": RAW["wifi"]}, 1, seed=0, sample_ids=np.arange(4),
                             targets=("wifi", "rfid")), ConfigError, "target rfid of fault 'desync' has no stream"),
        (lambda: apply_joint("sensor-fail", {"wifi": RAW["wifi"], "rfid": RAW["rfid"]}, 1, seed=0,
                             sample_ids=np.arange(4)), DataError, "disagree on the batch size"),
        (lambda: apply_joint("sensor-fail", {"radar": RAW["wifi"]}, 1, seed=0, sample_ids=np.arange(4)),
         DataError, "unknown modality"),
        (lambda: _run("missing", "wifi", RAW["rfid"], 1), DataError, "wifi batch for fault 'missing' has shape"),
        (lambda: _run("missing", "wifi", RAW["wifi"], 1, ids=np.arange(3)), DataError, "expected (4,)"),
        (lambda: _run("missing", "wifi", RAW["wifi"], 1, ids=np.array([0, 1, 2, -3])), DataError, "non-negative"),
        (lambda: _run("missing", "wifi", RAW["wifi"], 1, ids=np.array([0.0, 1, 2, 3])), DataError, "non-negative"),
        (lambda: _run("missing", "wifi", RAW["wifi"], 1, seed=-1), ConfigError, "non-negative integer"),
        (lambda: _run("missing", "wifi", RAW["wifi"].astype(complex), 1), DataError, "dtype complex128"),
        (lambda: feature_dropout_mask(0, "wifi", 1, seed=0, sample_ids=[0]), ConfigError, "positive integer"),
        (lambda: feature_dropout_mask(8, "wifi", 1, seed=0, sample_ids=3), DataError, "is a scalar"),
    ],
)
def test_bad_input_gets_a_one_line_error(call, err, text):
    with pytest.raises(err) as info:
        call()
    assert text in str(info.value) and "\n" not in str(info.value)
