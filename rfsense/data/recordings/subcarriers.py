"""The Intel 5300 subcarrier grid of XRF55 and the mapping of any WiFi CSI onto it (numpy only).

The grid: 30 subcarrier groups of one 20 MHz channel (802.11n grouping Ng=2), indices -28, -26, ..., -2, -1,
1, 3, ..., 27, 28 at 312.5 kHz spacing, i.e. -8.75 .. +8.75 MHz around the channel centre. This module holds
the only definition (`SUBCARRIER_INDEX`; the synthetic generator imports it).

Mapping rule shared by every WiFi reader:

- Frequency, never index: each measured subcarrier sits at a frequency offset from the centre of the capture's
  channel (index x the format's spacing: 312.5 kHz for HT/VHT, 78.125 kHz for HE). The 30 grid points are
  placed around the centre of the 20 MHz PRIMARY channel (for a 20 MHz capture: the channel centre; for a
  40/80/160 MHz capture: the primary 20 MHz sub-channel, the band the 5300's 30 groups cover) and each takes
  the amplitude linearly interpolated between its two nearest measured neighbours in frequency.
- Measured subcarriers outside the primary 20 MHz channel only ever serve as the outer neighbour of a grid
  point at its edge; a grid point beyond every measured subcarrier takes the nearest measured value
  (edge-hold) and the reader flags how many did.
- Amplitude only (|H|), as XRF55 stores it; interpolating the amplitude avoids phase-unwrapping across gaps.

`grid_weights` builds the (n_measured, 30) interpolation matrix once per subcarrier layout, so mapping a
capture is one matrix product over all records and antennas (`to_grid`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "GRID_OFFSET_HZ",
    "N_GRID",
    "SUBCARRIER_INDEX",
    "SUBCARRIER_SPACING_HZ",
    "grid_weights",
    "ht_vht_subcarriers",
    "primary_offset_hz",
    "to_grid",
]

SUBCARRIER_SPACING_HZ = 312.5e3  # 802.11a/n/ac OFDM subcarrier spacing
# The 30 subcarrier indices the Intel 5300 reports at 20 MHz (grouping Ng=2).
SUBCARRIER_INDEX = np.r_[np.arange(-28, -1, 2), -1, np.arange(1, 28, 2), 28]
N_GRID = len(SUBCARRIER_INDEX)
GRID_OFFSET_HZ = SUBCARRIER_INDEX * SUBCARRIER_SPACING_HZ  # offsets from the primary channel centre

# HT/VHT occupied subcarriers (312.5 kHz units): (lowest |index|, highest |index|) and the pilot indices.
_HT_VHT = {
    20: (1, 28, (7, 21)),
    40: (2, 58, (11, 25, 53)),
    80: (2, 122, (11, 39, 75, 103)),
}


def ht_vht_subcarriers(bw_mhz: int, *, pilots: bool = True) -> np.ndarray:
    """Indices (312.5 kHz units, ascending) of the occupied subcarriers of a 20/40/80 MHz HT/VHT channel.

    With pilots=False the pilot tones are left out (some NICs report them with a different gain).

    Raises:
        ValueError: another bandwidth.
    """
    if bw_mhz not in _HT_VHT:
        raise ValueError(f"bandwidth {bw_mhz} MHz; expected one of {sorted(_HT_VHT)}")
    lo, hi, pilot = _HT_VHT[bw_mhz]
    k = np.r_[-np.arange(hi, lo - 1, -1), np.arange(lo, hi + 1)]
    if not pilots:
        k = k[~np.isin(np.abs(k), pilot)]
    return k


def primary_offset_hz(bw_mhz: int, sideband: int) -> float:
    """Centre of 20 MHz sub-channel `sideband` (0 = lowest) of a bw_mhz channel, relative to its centre (Hz).

    Raises:
        ValueError: sideband outside 0 .. bw_mhz/20 - 1.
    """
    n = max(1, bw_mhz // 20)
    if not 0 <= sideband < n:
        raise ValueError(f"sideband {sideband} of a {bw_mhz} MHz channel; expected 0..{n - 1}")
    return ((sideband + 0.5) * 20.0 - n * 10.0) * 1e6


def grid_weights(freq_hz: np.ndarray, primary_hz: float = 0.0) -> tuple[np.ndarray, int]:
    """Linear-in-frequency interpolation of measured subcarriers onto the 30 grid points.

    Args:
        freq_hz: (n,) frequency offsets of the measured subcarriers from the channel centre (any order,
            distinct).
        primary_hz: offset of the primary 20 MHz channel's centre from the channel centre.

    Returns:
        (weights, n_edge): weights (n, 30) float64 with `amp @ weights` = amplitudes on the grid; n_edge = how
        many grid points lie outside the measured frequency range (edge-held).

    Raises:
        ValueError: no subcarrier, or two at the same frequency.
    """
    freq_hz = np.asarray(freq_hz, dtype=np.float64)
    n = len(freq_hz)
    if n == 0:
        raise ValueError("no measured subcarrier to interpolate from")
    order = np.argsort(freq_hz, kind="stable")
    f = freq_hz[order]
    if n > 1 and np.any(np.diff(f) <= 0):
        raise ValueError("two measured subcarriers share one frequency")
    target = primary_hz + GRID_OFFSET_HZ
    n_edge = int(np.count_nonzero((target < f[0] - 1e-6) | (target > f[-1] + 1e-6)))
    w_sorted = np.zeros((n, N_GRID))
    cols = np.arange(N_GRID)
    if n == 1:
        w_sorted[0] = 1.0
    else:
        g = np.clip(target, f[0], f[-1])
        j = np.clip(np.searchsorted(f, g, side="right") - 1, 0, n - 2)
        frac = (g - f[j]) / (f[j + 1] - f[j])
        np.add.at(w_sorted, (j, cols), 1.0 - frac)
        np.add.at(w_sorted, (j + 1, cols), frac)
    weights = np.empty_like(w_sorted)
    weights[order] = w_sorted
    return weights, n_edge


def to_grid(amp: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Amplitudes (n, n_measured, n_ant) -> (n, n_ant * 30) on the grid, channel = antenna*30 + subcarrier."""
    n, _, n_ant = amp.shape
    return np.matmul(amp.transpose(0, 2, 1), weights).reshape(n, n_ant * N_GRID)  # (n, ant, 30) flattened
