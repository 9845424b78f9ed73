"""The raw DCA1000 capture the IWR6843 would have recorded of a simulated trial (`rfsense synth --raw`).

The scatterers are those `mmwave.simulate_mmwave` draws its map from (same ranges, velocities, amplitudes
and Swerling draws, `mmwave.radar_scatterers`), recorded with XRF55's profile: 100 frames of 192 chirps x 4
RX x 256 complex samples. Each body part and each static reflector is one point scatterer (the map widens
a part's blob by its depth; here it is the radar's point response). The beat signal of a scatterer at
range R is

    A * exp(j * 4 * pi * f0 * R(t_c) / c) * exp(j * 2 * pi * (2 * slope * R / c) * n / fs) * exp(j * pi * k * sin(az))

for chirp c (t_c = frame start + c * 147 us, R(t_c) from the 200 Hz trajectory: the velocity is the phase
progression across chirps), sample n (the beat frequency gives the range; R at the frame centre, i.e.
range migration within the 28 ms of a frame is ignored) and receiver k (half-wavelength array). f0 is the
carrier at the first ADC sample. Receiver noise is complex Gaussian, scaled so that the reader's map has
the generator's noise floor (MM_NOISE per cell), and the sum is rounded to int16 ADC codes.

ADC counts equal the generator's map units: `rfsense.data.recordings.dca1000` reads the capture back into
maps of the same scale (|X| over window gains). One capture is 100 x 786,432 bytes = 79 MB.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rfsense._io import atomic_write_json
from rfsense.data.recordings.dca1000 import encode_frames
from rfsense.data.recordings.radar_config import XRF55_RADAR, mmwave_studio_json
from rfsense.data.recordings.radar_dsp import hann
from rfsense.data.synth.constants import MM_FRAME_S, MM_FRAMES, MM_NOISE, N_PARTS, RCS, WIFI_FS, C
from rfsense.data.synth.mmwave import radar_scatterers
from rfsense.data.synth.sample import World

__all__ = ["write_raw_mmwave"]


def _noise_sigma() -> float:
    """ADC noise per I/Q component that gives MM_NOISE per cell after the reader's windowed FFTs."""
    cfg = XRF55_RADAR
    gain = 1.0
    for n in (cfg.adc_samples, cfg.loops):
        w = hann(n).astype(np.float64)
        gain *= np.sqrt((w**2).sum()) / w.sum()
    return MM_NOISE / gain


def write_raw_mmwave(w: World, rng: np.random.Generator, bin_path: Path, config_path: Path) -> int:
    """Write the capture of world `w` to `bin_path` (XRF55 layout) and its mmWave Studio JSON; returns bytes.

    Args:
        w: a fresh `sample.world(...)` (its mmWave noise stream must be unused, so the scatterers and their
            fluctuations are those of the .npy map).
        rng: stream for what only the raw capture has (clutter phases, ADC noise).
    """
    cfg = XRF55_RADAR
    rs = radar_scatterers(w.scene, w.body, RCS["mmwave"] * w.size, w.noise[0])
    f0 = cfg.start_freq_ghz * 1e9 + cfg.slope_mhz_per_us * 1e12 * cfg.adc_start_time_us * 1e-6
    fs, slope = cfg.sample_rate_ksps * 1e3, cfg.slope_mhz_per_us * 1e12
    n = np.arange(cfg.adc_samples)
    rx = np.arange(cfg.rx_channels)
    t_chirp = np.arange(cfg.loops) * cfg.chirp_period_s
    grid = np.arange(rs.track_m.shape[1]) / WIFI_FS
    # Static clutter: fixed phases; reflectors seen at their azimuth, walls at boresight.
    c_az = np.concatenate([np.arctan2(w.scene.reflectors[:, 0] - w.scene.radar[0],
                                      w.scene.reflectors[:, 1] - w.scene.radar[1]), [0.0, 0.0]])
    c_amp = rs.clutter_amplitude * np.exp(2j * np.pi * rng.random(len(c_az)))
    c_tone = np.exp(2j * np.pi * (2 * slope * rs.clutter_range_m[:, None] / C) * n / fs)  # (K, 256)
    c_sig = np.einsum("k,kr,kn->rn", c_amp * np.exp(4j * np.pi * f0 * rs.clutter_range_m / C),
                      np.exp(1j * np.pi * np.sin(c_az)[:, None] * rx), c_tone)  # (4, 256), same every chirp
    sigma = _noise_sigma()
    tmp = bin_path.with_name(bin_path.name + ".tmp")
    with open(tmp, "wb") as fh:
        for f in range(MM_FRAMES):
            r_c = np.stack([np.interp(f * MM_FRAME_S + t_chirp, grid, tr) for tr in rs.track_m])  # (S, 192)
            slow = rs.amplitude[:, f, None] * np.exp(4j * np.pi * f0 * r_c / C)  # (S, 192): Doppler phase
            steer = np.exp(1j * np.pi * (np.sin(rs.azimuth[:, f]) * np.cos(rs.elevation[:, f]))[:, None] * rx)
            tone = np.exp(2j * np.pi * (2 * slope * r_c.mean(axis=1, keepdims=True) / C) * n / fs)  # (S, 256)
            lhs = (slow[:, :, None] * steer[:, None, :]).reshape(N_PARTS, -1)  # (S, 192*4)
            sig = (lhs.T @ tone).reshape(cfg.loops, cfg.rx_channels, cfg.adc_samples) + c_sig[None]
            noise = rng.standard_normal((2, *sig.shape), dtype=np.float32) * np.float32(sigma)
            frame = sig.astype(np.complex64) + (noise[0] + 1j * noise[1])
            fh.write(encode_frames(frame[None], cfg).tobytes())
    os.replace(tmp, bin_path)
    atomic_write_json(config_path, mmwave_studio_json(cfg))
    return MM_FRAMES * cfg.frame_bytes
