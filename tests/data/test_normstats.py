"""Per-channel normalisation statistics: streaming accumulation equals numpy, save/load, floors."""

from __future__ import annotations

import numpy as np
import pytest

from rfsense.data.normstats import NormAccumulator, NormStats
from rfsense.errors import DataError
from rfsense.modalities import MODALITIES, SHAPES


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
