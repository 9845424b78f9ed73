"""mmWave range-Doppler heatmaps of the simulated scene: 17 steps x 256 range x 128 Doppler bins.

The radar runs XRF55's profile (constants.py): 100 frames in 5 s (20 frames/s), each 192 chirps of 147 us
with all three TX on. `radar_scatterers` gives what the radar sees in every frame (range, radial velocity,
amplitude and direction of each body part, plus static clutter); `simulate_mmwave` draws the map the
DCA1000 reader (`rfsense.data.recordings.radar_dsp`) would compute from it, and `raw_mmwave` writes the
raw ADC capture of the same scatterers. Step s of the 17 is the mean of the frames f with
f * 17 // 100 == s (5 or 6 frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rfsense.data.recordings.radar_dsp import doppler_response
from rfsense.data.synth.constants import (
    EXTENT,
    MM_CHIRPS,
    MM_FLUCT,
    MM_FRAME_S,
    MM_FRAMES,
    MM_NOISE,
    MM_RANGE_RES,
    MM_SCALE,
    MM_T_CHIRP,
    MM_V_RES,
    N_DOPPLER,
    N_PARTS,
    N_RANGE,
    N_STEPS,
    N_T,
    WIFI_FS,
)
from rfsense.data.synth.scene import Scene, dist

__all__ = ["RadarScene", "radar_scatterers", "simulate_mmwave", "step_frames"]

_RANGE_BINS = np.arange(N_RANGE, dtype=np.float32)
_DOPPLER_BINS = np.arange(N_DOPPLER, dtype=np.float32)
_T_MID = MM_CHIRPS * MM_T_CHIRP / 2  # a frame's centre, after its first chirp


def _gauss(z: np.ndarray) -> np.ndarray:
    # exact zeros beyond 6 sigma: float32 denormals from the far tails make the blob sum ~10x slower
    return np.where(np.abs(z) < 6, np.exp(-0.5 * np.minimum(z * z, 36)), 0).astype(np.float32)


def step_frames(n_frames: int = MM_FRAMES, n_steps: int = N_STEPS) -> list[np.ndarray]:
    """Frame indices of each step: frame f of a window of n_frames belongs to step f * n_steps // n_frames."""
    of_step = np.arange(n_frames) * n_steps // n_frames
    return [np.flatnonzero(of_step == s) for s in range(n_steps)]


@dataclass(frozen=True)
class RadarScene:
    """What the radar sees: S body parts in F = 100 frames, and the static clutter.

    range_m, velocity_m_s, amplitude, azimuth, elevation: (S, F) at each frame's centre (velocity
    positive = moving away; amplitude in ADC counts of the beat signal, including the antenna pattern and
    the per-frame Swerling fluctuation). track_m: (S, 1000) range on the 200 Hz grid, for per-chirp phases.
    clutter_range_m, clutter_amplitude: (K,) static reflectors and walls.
    """

    range_m: np.ndarray
    velocity_m_s: np.ndarray
    amplitude: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray
    track_m: np.ndarray
    clutter_range_m: np.ndarray
    clutter_amplitude: np.ndarray


def radar_scatterers(scene: Scene, body: np.ndarray, rcs: np.ndarray, rng: np.random.Generator) -> RadarScene:
    """Per-frame range, velocity, amplitude and direction of each body part (draws the echo fluctuation)."""
    rel = body - scene.radar  # (S, T, 3)
    rng_m = np.sqrt((rel**2).sum(-1))  # (S, T)
    vel = np.gradient(rng_m, 1 / WIFI_FS, axis=1)  # radial velocity dR/dt (m/s), >0 moving away
    # Frame centres on the 200 Hz trajectory grid (linear interpolation between grid points).
    pos = (np.arange(MM_FRAMES) * MM_FRAME_S + _T_MID) * WIFI_FS
    i0 = np.minimum(pos.astype(int), N_T - 2)
    w = (pos - i0)[None, :]
    r, v = (rng_m[:, i0] * (1 - w) + rng_m[:, i0 + 1] * w), (vel[:, i0] * (1 - w) + vel[:, i0 + 1] * w)
    rl = rel[:, i0] * (1 - w[..., None]) + rel[:, i0 + 1] * w[..., None]  # (S, F, 3)
    # Antenna pattern: wide in azimuth, narrow in elevation (patch antennas of the ISK board), so
    # feet and a bowed head fall partly out of the beam.
    az = np.arctan2(rl[..., 0], rl[..., 1])
    el = np.arctan2(rl[..., 2], np.hypot(rl[..., 0], rl[..., 1]))
    beam = np.exp(-((az / np.deg2rad(60)) ** 2) - (el / np.deg2rad(20)) ** 2)
    # Received amplitude ~ sqrt(rcs)/R^2 (radar equation), with Swerling-I-like fluctuation per frame.
    fluct = np.abs(
        1 + MM_FLUCT * (rng.standard_normal(r.shape) + 1j * rng.standard_normal(r.shape)) / np.sqrt(2)
    )
    a = MM_SCALE * np.sqrt(rcs)[:, None] * beam / r**2 * fluct
    # Static clutter (furniture, walls).
    c_r = np.concatenate([dist(scene.radar, scene.reflectors), scene.walls - scene.radar[1]])
    c_a = MM_SCALE * np.sqrt(np.concatenate([scene.reflector_rcs, [3.0, 3.0]])) / c_r**2
    return RadarScene(r, v, a, az, el, rng_m, c_r, c_a)


def simulate_mmwave(
    scene: Scene, body: np.ndarray, rcs: np.ndarray, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Range-Doppler magnitude (1, 17, 256, 128) float32: 17 steps x 256 range bins x 128 Doppler bins.

    Each body part is a blob at its range bin (R / 6.5 cm; Gaussian, widened by the part's depth) and its
    Doppler bin (64 + v / 4.34 cm/s; the exact response of the reader's windowed Doppler FFT, so motion
    faster than +-2.78 m/s leaves the map and aliases back only beyond +-8.32 m/s), averaged over the frames
    of each step; static clutter at zero Doppler; receiver noise.
    """
    rs = radar_scatterers(scene, body, rcs, rng)
    a = rs.amplitude.astype(np.float32)
    rbin = (rs.range_m / MM_RANGE_RES).astype(np.float32)
    dbin = (N_DOPPLER / 2 + rs.velocity_m_s / MM_V_RES).astype(np.float32)
    sig_r = np.sqrt(0.7**2 + (EXTENT / MM_RANGE_RES) ** 2).astype(np.float32)[:, None]
    rprof = _gauss((_RANGE_BINS[None, None, :] - rbin[..., None]) / sig_r[..., None])  # (S, F, 256)
    dprof = doppler_response(_DOPPLER_BINS[None, None, :] - dbin[..., None], MM_CHIRPS)  # (S, F, 128)
    # Mean over the frames of each step, as (17, 256, K) x (17, K, 128) with K = parts x 6 frame slots
    # (steps of 5 frames get a zero-weight slot).
    frames = step_frames()
    k_max = max(len(f) for f in frames)
    idx = np.array([np.pad(f, (0, k_max - len(f)), mode="edge") for f in frames])  # (17, 6)
    wts = np.array([[1 / len(f)] * len(f) + [0.0] * (k_max - len(f)) for f in frames], np.float32)
    kk = N_PARTS * k_max
    rp = (a[:, idx, None] * wts[None, :, :, None]) * rprof[:, idx]  # (S, 17, 6, 256)
    rp = rp.transpose(1, 3, 0, 2).reshape(N_STEPS, N_RANGE, kk)
    dp = dprof[:, idx].transpose(1, 0, 2, 3).reshape(N_STEPS, kk, N_DOPPLER)
    # einsum rather than matmul: no BLAS threads, which oversubscribe the cores of worker processes
    heat = np.einsum("frk,fkd->frd", rp, dp)  # (17, 256, 128)
    # Static clutter (furniture, walls) sits at zero Doppler with a faint phase-noise skirt.
    c_prof = (
        rs.clutter_amplitude[:, None]
        * np.exp(-0.5 * ((_RANGE_BINS[None] - rs.clutter_range_m[:, None] / MM_RANGE_RES) / 0.8) ** 2)
    ).sum(0)
    d_skirt = doppler_response(_DOPPLER_BINS - N_DOPPLER / 2, MM_CHIRPS) + 2e-3
    heat += (c_prof[:, None] * d_skirt[None, :]).astype(np.float32)[None]
    # Receiver noise: complex Gaussian per cell; the stored map is the magnitude.
    heat += MM_NOISE * rng.standard_normal(heat.shape, dtype=np.float32)
    out = np.sqrt(heat * heat + (MM_NOISE * rng.standard_normal(heat.shape, dtype=np.float32)) ** 2)
    return out[None].astype(np.float32, copy=False)
