"""mmWave range-Doppler heatmaps of the simulated scene: 17 steps x 256 range x 128 Doppler bins."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rfsense.data.synth.constants import (
    DURATION_S,
    EXTENT,
    MM_FLUCT,
    MM_FRAMES_PER_STEP,
    MM_NOISE,
    MM_RANGE_RES,
    MM_SCALE,
    MM_V_RES,
    N_DOPPLER,
    N_PARTS,
    N_RANGE,
    N_STEPS,
    N_T,
    WIFI_FS,
)
from rfsense.data.synth.scene import Scene, dist

__all__ = ["simulate_mmwave"]

_RANGE_BINS = np.arange(N_RANGE, dtype=np.float32)
_DOPPLER_BINS = np.arange(N_DOPPLER, dtype=np.float32)

def _circ(d: np.ndarray, n: int) -> np.ndarray:
    return np.abs((d + n / 2) % n - n / 2)


def _gauss(z: np.ndarray) -> np.ndarray:
    # exact zeros beyond 6 sigma: float32 denormals from the far tails make the blob sum ~10x slower
    return np.where(np.abs(z) < 6, np.exp(-0.5 * np.minimum(z * z, 36)), 0).astype(np.float32)


def simulate_mmwave(
    scene: Scene, body: np.ndarray, rcs: np.ndarray, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Range-Doppler magnitude (1, 17, 256, 128) float32: 17 steps x 256 range bins x 128 Doppler bins."""
    # Snapshot times: the ~6 radar frames (20 fps) that fall in each of the 17 steps.
    sub = (np.arange(N_STEPS)[:, None] + (np.arange(MM_FRAMES_PER_STEP) + 0.5) / MM_FRAMES_PER_STEP) / N_STEPS
    ti = np.minimum((sub.ravel() * DURATION_S * WIFI_FS).astype(int), N_T - 1)  # (102,)
    rel = body - scene.radar  # (S, T, 3)
    rng_m = np.sqrt((rel**2).sum(-1))  # (S, T)
    vel = np.gradient(rng_m, 1 / WIFI_FS, axis=1)  # radial velocity dR/dt (m/s), >0 moving away
    r, v, rl = rng_m[:, ti], vel[:, ti], rel[:, ti]  # (S, F)
    # Antenna pattern: wide in azimuth, narrow in elevation (patch antennas of the ISK board), so
    # feet and a bowed head fall partly out of the beam.
    az = np.arctan2(rl[..., 0], rl[..., 1])
    el = np.arctan2(rl[..., 2], np.hypot(rl[..., 0], rl[..., 1]))
    beam = np.exp(-((az / np.deg2rad(60)) ** 2) - (el / np.deg2rad(20)) ** 2)
    # Received amplitude ~ sqrt(rcs)/R^2 (radar equation), with Swerling-I-like fluctuation per frame.
    fluct = np.abs(
        1 + MM_FLUCT * (rng.standard_normal(r.shape) + 1j * rng.standard_normal(r.shape)) / np.sqrt(2)
    )
    a = (MM_SCALE * np.sqrt(rcs)[:, None] * beam / r**2 * fluct).astype(np.float32)
    rbin = (r / MM_RANGE_RES).astype(np.float32)
    dbin = (N_DOPPLER / 2 + v / MM_V_RES).astype(np.float32)  # aliases (wraps) beyond +-v_max
    sig_r = np.sqrt(0.7**2 + (EXTENT / MM_RANGE_RES) ** 2).astype(np.float32)[:, None]
    rprof = _gauss((_RANGE_BINS[None, None, :] - rbin[..., None]) / sig_r[..., None])  # (S, F, 256)
    dprof = _gauss(_circ(_DOPPLER_BINS[None, None, :] - dbin[..., None], N_DOPPLER) / 1.2)  # (S, F, 128)
    # Sum the blobs of all parts and the frames of each step: (17, 256, K) x (17, K, 128)
    kk = N_PARTS * MM_FRAMES_PER_STEP
    rp = (a[..., None] * rprof).reshape(N_PARTS, N_STEPS, MM_FRAMES_PER_STEP, N_RANGE)
    rp = rp.transpose(1, 3, 0, 2).reshape(N_STEPS, N_RANGE, kk)
    dp = (
        dprof.reshape(N_PARTS, N_STEPS, MM_FRAMES_PER_STEP, N_DOPPLER)
        .transpose(1, 0, 2, 3)
        .reshape(N_STEPS, kk, N_DOPPLER)
    )
    # einsum rather than matmul: no BLAS threads, which oversubscribe the cores of worker processes
    heat = np.einsum("frk,fkd->frd", rp, dp) / MM_FRAMES_PER_STEP  # (17, 256, 128)
    # Static clutter (furniture, walls) sits at zero Doppler with a faint window-sidelobe skirt.
    c_r = np.concatenate([dist(scene.radar, scene.reflectors), scene.walls - scene.radar[1]])
    c_a = MM_SCALE * np.sqrt(np.concatenate([scene.reflector_rcs, [3.0, 3.0]])) / c_r**2
    c_prof = (
        c_a[:, None] * np.exp(-0.5 * ((_RANGE_BINS[None] - c_r[:, None] / MM_RANGE_RES) / 0.8) ** 2)
    ).sum(0)
    d_skirt = np.exp(-0.5 * ((_DOPPLER_BINS - N_DOPPLER / 2) / 0.8) ** 2) + 2e-3
    heat += (c_prof[:, None] * d_skirt[None, :]).astype(np.float32)[None]
    # Receiver noise: complex Gaussian per cell; the stored map is the magnitude.
    heat += MM_NOISE * rng.standard_normal(heat.shape, dtype=np.float32)
    out = np.sqrt(heat * heat + (MM_NOISE * rng.standard_normal(heat.shape, dtype=np.float32)) ** 2)
    return out[None].astype(np.float32, copy=False)

