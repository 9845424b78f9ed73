"""FMCW radar signal processing shared by the DCA1000 reader and the synthetic generator (numpy only).

One radar frame of complex ADC samples (chirps, channels, samples) becomes one range-Doppler magnitude map
(256 range bins, 128 Doppler bins), the axes `rfsense synth` documents in synth.json:

- range: Hann window over the samples of a chirp, FFT of 256 points (zero-padded when a chirp has fewer
  samples; the first 256 bins kept when it has more). Bin i is the beat frequency i * fs / 256, i.e. the
  range i * c * fs / (2 * slope * 256) (XRF55: 6.50 cm).
- Doppler: Hann window over the N chirps of a frame (N = 192 for XRF55, whose chirps fire all three TX at
  once every T_chirp = 147 us), FFT zero-padded to 2N points (384), and the 128 bins around zero velocity
  kept: bin b (0..127) is the radial velocity (b - 64) * lambda / (2 * 2N * T_chirp), positive = moving
  away (XRF55: 4.34 cm/s per bin, -2.78..+2.74 m/s). Every chirp is used coherently, so the resolution is
  that of the whole frame (lambda / (2 N T_chirp) = 8.7 cm/s, about 2 bins; the zero padding interpolates).
  Faster motion lies outside the 128 bins (it aliases only beyond the unambiguous +-lambda / (4 T_chirp) =
  +-8.32 m/s). The 4.34 cm/s spacing is also the axis of XRF55's README processing (192 chirps read as 3
  "tx" slots x 64 chirps, 128-point FFT); that reading wraps at +-2.78 m/s, this one does not.
- magnitude: |X| divided by the coherent gain of both windows, so a scatterer whose beat signal has
  amplitude A (ADC counts) peaks at A; averaged over the receive channels (non-coherent).

With TDM-MIMO profiles (several chirps per loop, one per TX) the chirps of one loop slot are the Doppler
sequence and the slots join the receivers as channels; T_chirp is then the loop period.

`doppler_response` is the magnitude this processing gives a constant-velocity scatterer away from its bin
centre; the generator draws its Doppler blobs with it, so synthetic maps and maps read from captures share
one point-spread function.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft  # complex64 in and out, ~10x numpy.fft's speed on these sizes

__all__ = ["N_DOPPLER", "N_RANGE", "doppler_fft_size", "doppler_response", "hann", "range_doppler"]

N_RANGE = 256  # range bins of the XRF55 maps
N_DOPPLER = 128  # Doppler bins of the XRF55 maps
_RESPONSE_STEPS = 32  # table points per Doppler bin for doppler_response


@lru_cache(maxsize=16)
def hann(n: int) -> npt.NDArray[np.float32]:
    """Periodic Hann window of n points (float32), the window of both FFTs."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def doppler_fft_size(n_chirps: int, n_doppler: int = N_DOPPLER) -> int:
    """FFT length of the Doppler transform: twice the chirps (zero padding), at least n_doppler."""
    return max(2 * n_chirps, n_doppler)


def range_doppler(
    frame: np.ndarray, *, clutter_removal: bool = False, n_range: int = N_RANGE, n_doppler: int = N_DOPPLER
) -> npt.NDArray[np.float32]:
    """One frame of complex ADC samples (chirps, channels, samples) -> magnitude map (n_range, n_doppler).

    Args:
        frame: complex (N chirps, C channels, S samples), channels = receivers (x TX slots in TDM-MIMO).
        clutter_removal: subtract each channel's mean over the chirps after the range FFT (removes
            static reflectors, i.e. the zero-Doppler column, before the Doppler FFT).

    Returns:
        float32 (n_range, n_doppler): |X| / coherent gain, averaged over channels; Doppler bin
        n_doppler // 2 is 0 m/s.
    """
    n_chirps, _, n_samples = frame.shape
    x = frame.astype(np.complex64, copy=False) * hann(n_samples)
    rng = sfft.fft(x, n=max(n_range, n_samples), axis=2)[:, :, :n_range]  # (N, C, 256)
    if clutter_removal:
        rng -= rng.mean(axis=0, keepdims=True)
    rng *= hann(n_chirps)[:, None, None]
    n_fft = doppler_fft_size(n_chirps, n_doppler)
    dop = sfft.fft(rng, n=n_fft, axis=0)  # (n_fft, C, 256), bin k = k / n_fft cycles per chirp
    keep = np.arange(-(n_doppler // 2), n_doppler - n_doppler // 2) % n_fft  # velocities around zero
    mag = np.abs(dop[keep]).mean(axis=1)  # (128, 256)
    gain = float(hann(n_samples).sum()) * float(hann(n_chirps).sum())
    return (mag.T / gain).astype(np.float32)


@lru_cache(maxsize=8)
def _response_table(n_chirps: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.arange(-n_fft // 2 * _RESPONSE_STEPS, n_fft // 2 * _RESPONSE_STEPS) / _RESPONSE_STEPS
    w = hann(n_chirps).astype(np.float64)
    phase = np.exp(-2j * np.pi * np.outer(offsets / n_fft, np.arange(n_chirps)))
    return offsets, np.abs(phase @ w) / w.sum()


def doppler_response(
    offset_bins: np.ndarray, n_chirps: int = 192, n_doppler: int = N_DOPPLER
) -> npt.NDArray[np.float32]:
    """Relative magnitude (1 at 0) that `range_doppler` gives a constant-velocity scatterer in a Doppler
    bin `offset_bins` away from the (fractional) bin of its velocity; any real offset, periodic in the FFT
    length (a velocity beyond the unambiguous interval aliases)."""
    n_fft = doppler_fft_size(n_chirps, n_doppler)
    grid, table = _response_table(n_chirps, n_fft)
    return np.interp(offset_bins, grid, table, period=n_fft).astype(np.float32)
