"""Stream health checks on crafted faulty streams: each fault gives the expected verdict and reason."""

from __future__ import annotations

import numpy as np
import pytest

from rfsense.data.quality import QualityConfig as HealthConfig
from rfsense.deploy.health import Verdict, batch_size, check_streams
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES, SHAPES


def _one(streams, modality: str, b: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    return {modality: streams(b, seed)[modality]}


def _verdict(inputs, cfg: HealthConfig | None = None, i: int = 0, m: str | None = None) -> Verdict:
    _, _, verdicts = check_streams(inputs, cfg or HealthConfig())
    m = m or next(iter(inputs))
    return verdicts[i][m]


# ---------------------------------------------------------------------------------------------- clean


def test_clean_streams_are_ok_and_unchanged(streams):
    s = streams(2)
    arrays, present, verdicts = check_streams(s, HealthConfig())
    assert present.tolist() == [[True, True, True]] * 2
    for v in verdicts:
        assert {m: (x.status, x.reasons) for m, x in v.items()} == {m: ("ok", []) for m in MODALITIES}
    for m in MODALITIES:
        assert arrays[m].dtype == s[m].dtype and arrays[m].shape == (2, *SHAPES[m])  # no copy, no cast
        np.testing.assert_array_equal(arrays[m], s[m])


def test_absent_modality(streams):
    arrays, present, verdicts = check_streams({"wifi": streams(2)["wifi"], "rfid": None}, HealthConfig())
    assert present.tolist() == [[False, True, False]] * 2
    assert verdicts[0]["mmwave"].status == "absent" and verdicts[0]["rfid"].status == "absent"
    assert verdicts[0]["rfid"].reasons == ["rfid: absent (no stream given)"]
    assert not arrays["rfid"].any() and arrays["mmwave"].shape == (2, *SHAPES["mmwave"])


def test_nothing_given_is_one_all_absent_sample():
    arrays, present, verdicts = check_streams({}, HealthConfig())
    assert present.shape == (1, 3) and not present.any()
    assert [v.status for v in verdicts[0].values()] == ["absent"] * 3


# ------------------------------------------------------------------------------------------- NaN/Inf


def test_short_nan_burst_is_repaired_by_linear_interpolation(streams):
    s = _one(streams, "wifi")
    x = s["wifi"].copy()
    s["wifi"][0, :10, 100:120] = np.nan  # 20 packets (0.1 s) on 10 channels
    s["wifi"][0, 20, 500] = np.inf
    arrays, present, verdicts = check_streams(s, HealthConfig())
    v = verdicts[0]["wifi"]
    assert v.status == "repaired" and present[0, 1]
    assert v.reasons == ["wifi: repaired 0.1% NaN/Inf values by interpolation along time (limit 20%)"]
    out = arrays["wifi"][0]
    assert np.isfinite(out).all()
    # The gap is a straight line between the neighbouring reads; untouched values stay as they were.
    ramp = np.interp(np.arange(100, 120), [99, 120], [x[0, 3, 99], x[0, 3, 120]])
    np.testing.assert_allclose(out[3, 100:120], ramp)
    np.testing.assert_array_equal(out[30:], x[0, 30:])
    assert np.isnan(s["wifi"][0, 0, 100]), "the caller's array must not be modified"


def test_nan_above_limit_fails_with_reason(streams):
    s = _one(streams, "wifi")
    rng = np.random.default_rng(1)
    s["wifi"][0][rng.random(SHAPES["wifi"]) < 0.34] = np.nan
    arrays, present, verdicts = check_streams(s, HealthConfig())
    v = verdicts[0]["wifi"]
    assert v.status == "failed" and not present[0, 1]
    assert v.reasons == ["wifi: 34% of values are NaN/Inf (limit 20%)"]
    assert not arrays["wifi"][0].any(), "a failed stream is zero-filled"


def test_long_nan_gap_fails_even_below_the_fraction_limit(streams):
    s = _one(streams, "wifi")
    s["wifi"][0, :5, 200:400] = np.nan  # 200 packets = 1 s on 5 channels: 0.4% of values, 20% of the window
    v = _verdict(s)
    assert v.status == "failed"
    assert v.reasons == ["wifi: NaN/Inf gap of 200/1000 time steps in channel 0 (20%, limit 10%)"]


def test_mmwave_one_missing_frame_repaired_two_consecutive_fail(streams):
    s = _one(streams, "mmwave", b=2)
    s["mmwave"][0, 5] = np.nan  # one frame of 17
    s["mmwave"][1, 5:7] = np.nan  # two consecutive frames
    arrays, present, verdicts = check_streams(s, HealthConfig())
    assert verdicts[0]["mmwave"].status == "repaired"
    frame = arrays["mmwave"][0, 5]
    np.testing.assert_allclose(frame, (s["mmwave"][0, 4] + s["mmwave"][0, 6]) / 2.0, rtol=1e-6)
    assert verdicts[1]["mmwave"].status == "failed"
    assert "gap of 2/17 time steps in range-Doppler cell 0" in verdicts[1]["mmwave"].reasons[0]
    assert present[:, 0].tolist() == [True, False]


def test_mmwave_file_layout_with_leading_one_is_accepted(streams):
    x = streams(2)["mmwave"]
    arrays, present, _ = check_streams({"mmwave": x[:, None]}, HealthConfig())
    assert present[:, 0].all()
    np.testing.assert_array_equal(arrays["mmwave"], x)


# ------------------------------------------------------------------------- flat, zeros, saturation


def test_flat_line_on_every_rfid_tag_fails(streams):
    s = _one(streams, "rfid")
    s["rfid"][0] = 1.25  # a reader that reports one stale phase for every tag
    v = _verdict(s)
    assert v.status == "failed"
    assert v.reasons == ["rfid: flat line on 23/23 tags (std < 1e-06; limit 70%)"]


def test_a_few_flat_channels_are_tolerated(streams):
    s = _one(streams, "wifi")
    s["wifi"][0, :30] = 7.0  # one dead antenna's subcarriers: 30/270
    assert _verdict(s).status == "ok"


def test_all_zeros_fails_with_one_reason(streams):
    s = _one(streams, "wifi")
    s["wifi"][0] = 0.0
    v = _verdict(s)
    assert v.status == "failed"
    assert v.reasons == ["wifi: all values are zero (dead sensor or zero-filled stream)"]


def test_saturation_fails(streams):
    s = _one(streams, "wifi")
    x = s["wifi"][0]
    s["wifi"][0] = np.minimum(x, np.quantile(x, 0.65))  # ADC clipping: top 35% of values at the rail
    v = _verdict(s)
    assert v.status == "failed"
    assert len(v.reasons) == 1 and v.reasons[0].startswith("wifi: 35% of values sit at the maximum ")
    assert v.reasons[0].endswith("(saturated; limit 20%)")


def test_mmwave_background_at_zero_is_not_saturation(streams):
    s = _one(streams, "mmwave")
    s["mmwave"][0, :, 100:] = 0.0  # most of the heatmap sits at its minimum: normal for a radar
    assert _verdict(s).status == "ok"


# ------------------------------------------------------------------------------------- missing reads


def test_rfid_missing_reads_as_nan(streams):
    s = _one(streams, "rfid", b=2)
    rng = np.random.default_rng(2)
    s["rfid"][0][rng.random(SHAPES["rfid"]) < 0.05] = np.nan  # normal dropout: repaired
    s["rfid"][1][rng.random(SHAPES["rfid"]) < 0.6] = np.nan  # reader lost most reads
    _, _, verdicts = check_streams(s, HealthConfig())
    assert verdicts[0]["rfid"].status == "repaired"
    assert verdicts[1]["rfid"].status == "failed"
    assert verdicts[1]["rfid"].reasons[0].endswith("of values are NaN/Inf (limit 20%)")


def test_rfid_missing_reads_as_repeated_values(streams):
    s = _one(streams, "rfid", b=2)
    x = s["rfid"]
    hold = np.random.default_rng(3).random(SHAPES["rfid"]) < 0.6
    hold[:, 0] = False
    idx = np.where(hold, 0, np.arange(148)[None, :])
    np.maximum.accumulate(idx, axis=1, out=idx)  # index of the last real read: sample-and-hold
    x[1] = np.take_along_axis(x[1], idx, axis=1)
    x[0] = np.take_along_axis(x[0], np.where(hold & (np.arange(148) % 10 == 0), np.arange(148) - 1, np.arange(148)), 1)
    _, present, verdicts = check_streams(s, HealthConfig())
    assert verdicts[0]["rfid"].status == "ok", verdicts[0]["rfid"].reasons  # a few held reads: normal
    v = verdicts[1]["rfid"]
    assert v.status == "failed" and not present[1, 2]
    frac = 1 - hold.mean()
    assert v.reasons == [
        f"rfid: only {100 * frac:.0f}% of reads are valid (NaN/Inf or repeated values; minimum 50%)"
    ]


def test_wifi_dropped_packets(streams):
    # With the NaN limits opened up, only the dropped-packet check can catch this stream.
    cfg = HealthConfig(max_nonfinite_fraction=1.0, max_gap_fraction=1.0)
    s = _one(streams, "wifi")
    s["wifi"][0, :, ::5] = np.nan
    s["wifi"][0, :, 1::5] = np.nan
    s["wifi"][0, :, 2::5] = np.nan  # 60% of packets dropped
    v = _verdict(s, cfg)
    assert v.status == "failed"
    assert v.reasons == ["wifi: only 40% of packets are valid (dropped as NaN/Inf; minimum 50%)"]


# ----------------------------------------------------------------------------- shapes and batches


def test_wrong_shape_fails_that_modality_only(streams):
    s = streams(3)
    s["wifi"] = s["wifi"][:, :, :999]
    arrays, present, verdicts = check_streams(s, HealthConfig())
    assert present[:, 1].tolist() == [False] * 3 and present[:, [0, 2]].all()
    for v in verdicts:
        assert v["wifi"].status == "failed"
        assert v["wifi"].reasons == [
            "wifi: array has shape (3, 270, 999); expected (batch, 270, 1000) = 3 rx x 3 antennas x 30 "
            "subcarriers, 1000 samples"
        ]
    assert arrays["wifi"].shape == (3, 270, 1000) and not arrays["wifi"].any()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtypes_are_accepted(streams, dtype):
    x = streams(1)["rfid"].astype(dtype)
    arrays, present, _ = check_streams({"rfid": x}, HealthConfig())
    assert present[0, 2] and arrays["rfid"].dtype == (np.float64 if dtype == np.float64 else np.float32)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int64, bool])
def test_integer_arrays_are_implausible_by_rule(streams, dtype):
    """The documented rule: integer arrays are refused (raw counts of unknown scale), never guessed at."""
    x = np.clip(streams(2)["wifi"], 0, 100).astype(dtype)
    arrays, present, verdicts = check_streams({"wifi": x}, HealthConfig())
    assert not present[:, 1].any() and not arrays["wifi"].any()
    for v in verdicts:
        assert v["wifi"].status == "implausible" and not v["wifi"].usable
        assert v["wifi"].reasons == [
            f"wifi: {np.dtype(dtype)} array; the contract's streams are floating point (CSI amplitude), and integers "
            "are raw counts or quantised data of unknown scale: convert explicitly (x.astype(float)) when the values "
            "already are in these units"
        ]


def test_complex_dtype_fails(streams):
    v = _verdict({"wifi": streams(1)["wifi"].astype(np.complex64)})
    assert v.status == "failed" and v.reasons == ["wifi: dtype complex64; expected a real float dtype (float16/32/64)"]


def test_each_sample_is_judged_alone(streams):
    s = _one(streams, "wifi", b=3)
    s["wifi"][1] = 0.0
    _, present, verdicts = check_streams(s, HealthConfig())
    assert [v["wifi"].status for v in verdicts] == ["ok", "failed", "ok"]
    assert present[:, 1].tolist() == [True, False, True]


def test_batch_disagreement_and_unknown_keys_raise(streams):
    s = streams(2)
    with pytest.raises(DataError, match=r"disagree on the batch size .*mmwave 2, wifi 1"):
        check_streams({"mmwave": s["mmwave"], "wifi": s["wifi"][:1]}, HealthConfig())
    with pytest.raises(DataError, match=r"unknown modality \['radar'\]"):
        check_streams({"radar": s["wifi"]}, HealthConfig())
    with pytest.raises(DataError, match="scalar"):
        batch_size({"wifi": np.float64(3.0)})
    # A wrong-shaped array does not get a vote when a correctly shaped one sets the batch size.
    assert batch_size({"wifi": s["wifi"], "rfid": np.zeros((7, 3))}) == 2


# ------------------------------------------------------------------------------------------- config


def test_frozen_mmwave_fails(streams):
    s = _one(streams, "mmwave")
    s["mmwave"][0, :, 100:] = 0.0
    s["mmwave"][0, 1:] = s["mmwave"][0, :1]  # every frame repeats the first one
    v = _verdict(s)
    assert v.status == "failed"
    assert v.reasons == [
        "mmwave: flat line on 12800/12800 non-empty range-Doppler cells (std < 1e-06; limit 70%)"
    ]


def test_one_receiver_wifi_is_degraded_not_dead(streams):
    """A one-NIC capture: receivers 2 and 3 are zero (180/270 channels) and still usable."""
    s = _one(streams, "wifi")
    s["wifi"][0, 90:] = 0.0
    v = _verdict(s)
    assert v.status == "degraded" and v.usable and v.reasons == ["wifi: rx2 and rx3 give no signal (180/270 channels flat)"]
    s["wifi"][0, 30:] = 0.0  # 240/270 flat: beyond the limit
    assert _verdict(s).status == "failed"
