"""The 5300 subcarrier grid and the frequency mapping every WiFi reader uses."""

from __future__ import annotations

import numpy as np
import pytest

from rfsense.data.recordings.atheros import _primary_sideband
from rfsense.data.recordings.subcarriers import (
    GRID_OFFSET_HZ,
    SUBCARRIER_INDEX,
    grid_weights,
    ht_vht_subcarriers,
    primary_offset_hz,
    to_grid,
)
from rfsense.data.synth import constants


def test_grid_is_the_5300s_and_synth_uses_the_same_definition() -> None:
    want = [-28, -26, -24, -22, -20, -18, -16, -14, -12, -10, -8, -6, -4, -2, -1,
            1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 28]
    assert SUBCARRIER_INDEX.tolist() == want
    assert constants.SUBCARRIER_INDEX is SUBCARRIER_INDEX


def test_linear_spectrum_is_reproduced_exactly_by_frequency() -> None:
    """|H| linear in frequency is recovered on the grid whatever the measured spacing (HT 312.5 or HE 78.125 kHz)."""
    def amp(f_hz: np.ndarray) -> np.ndarray:
        return 3.0 + 2e-6 * f_hz

    for freq in (ht_vht_subcarriers(20) * 312.5e3, np.r_[-122:-1, 2:123] * 78.125e3):
        w, n_edge = grid_weights(freq)
        assert n_edge == 0 and w.shape == (len(freq), 30)
        np.testing.assert_allclose(amp(freq) @ w, amp(GRID_OFFSET_HZ), rtol=1e-12)


def test_indices_are_not_mixed_up_with_frequencies() -> None:
    """HE subcarrier k sits at k x 78.125 kHz: the grid point at +1 (312.5 kHz) is HE subcarrier +4."""
    he = np.r_[-122:-1, 2:123]
    values = he.astype(float)  # amplitude = the HE index
    w, _ = grid_weights(he * 78.125e3)
    np.testing.assert_allclose(values @ w, SUBCARRIER_INDEX * 4.0, rtol=1e-12)


def test_primary_channel_offsets_and_edge_hold() -> None:
    assert primary_offset_hz(20, 0) == 0.0
    assert primary_offset_hz(40, 0) == -10e6 and primary_offset_hz(40, 1) == 10e6
    assert [primary_offset_hz(80, s) / 1e6 for s in range(4)] == [-30.0, -10.0, 10.0, 30.0]
    with pytest.raises(ValueError, match="sideband 4 of a 80 MHz channel"):
        primary_offset_hz(80, 4)
    # the upper 20 MHz of an HT40 channel: grid points beyond subcarrier 58 are edge-held
    k40 = ht_vht_subcarriers(40)
    w, n_edge = grid_weights(k40 * 312.5e3, primary_offset_hz(40, 1))
    assert n_edge == 2  # grid 27, 28 -> 40 MHz subcarriers 59, 60
    np.testing.assert_allclose(k40.astype(float) @ w, np.minimum(SUBCARRIER_INDEX + 32, 58))
    # an ESP32 LLTF (+-26) leaves -28, 27, 28 outside
    assert grid_weights(np.r_[-26:0, 1:27] * 312.5e3)[1] == 3


def test_occupied_subcarrier_tables() -> None:
    assert [len(ht_vht_subcarriers(b)) for b in (20, 40, 80)] == [56, 114, 242]
    assert [len(ht_vht_subcarriers(b, pilots=False)) for b in (20, 40, 80)] == [52, 108, 234]
    assert 0 not in ht_vht_subcarriers(80) and 11 not in ht_vht_subcarriers(80, pilots=False)
    with pytest.raises(ValueError, match="bandwidth 160"):
        ht_vht_subcarriers(160)


def test_to_grid_layout_is_antenna_major() -> None:
    amp = np.zeros((2, 4, 3))
    amp[:, :, 1] = 1.0  # antenna 2 only
    w, _ = grid_weights(np.array([-10e6, -1e6, 1e6, 10e6]))
    out = to_grid(amp, w)
    assert out.shape == (2, 90)
    assert not out[:, :30].any() and np.allclose(out[:, 30:60], 1.0) and not out[:, 60:].any()


def test_bad_subcarrier_sets() -> None:
    with pytest.raises(ValueError, match="no measured subcarrier"):
        grid_weights(np.array([]))
    with pytest.raises(ValueError, match="share one frequency"):
        grid_weights(np.array([1.0, 1.0]))


@pytest.mark.parametrize(("mhz", "side", "assumed"), [
    (5180, 0, False), (5200, 1, False), (5745, 0, False), (5765, 1, False),  # 36/40, 149/153
    (2412, 0, False), (2462, 1, False), (2437, 0, True),  # channels 1, 11, 6
])
def test_atheros_ht40_primary_half(mhz: int, side: int, assumed: bool) -> None:
    assert _primary_sideband(mhz) == (side, assumed)
