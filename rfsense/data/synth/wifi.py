"""WiFi CSI amplitude of the simulated scene: Intel 5300, 3 rx x 3 antennas x 30 subcarriers at 200 Hz."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rfsense.data.synth.constants import (
    N_ANT,
    N_RX,
    N_SC,
    N_T,
    T_GRID,
    WIFI_AGC_STEPS,
    WIFI_BACKGROUND_MOVERS,
    WIFI_DROP_P,
    WIFI_FC,
    WIFI_FREQS,
    WIFI_OUTLIER_P,
    WIFI_PACKET_GAIN_DB,
    WIFI_SCALE,
    WIFI_SNR_DB,
    C,
)
from rfsense.data.synth.scene import Scene, dist

__all__ = ["simulate_wifi"]


def _background_movers(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tracks (B, 1000, 3) and RCS (B,) of other people walking behind the radar (y < 0).

    The WiFi links see them; the radar (boresight +y) and the RFID reader (facing the tag wall)
    have them behind their antennas, so those sensors ignore them.
    """
    n = rng.poisson(WIFI_BACKGROUND_MOVERS)
    start = np.stack([rng.uniform(-3, 3, n), rng.uniform(-3.5, -0.8, n), np.full(n, 1.2)], 1)
    head = rng.uniform(0, 2 * np.pi, n)
    vel = np.stack([np.cos(head), np.sin(head), np.zeros(n)], 1) * rng.uniform(0.3, 1.2, (n, 1))
    t0 = rng.uniform(-2, 4, (n, 1))
    walk = np.clip(T_GRID[None] - t0, 0, rng.uniform(1, 4, (n, 1)))  # (B, T) seconds walked
    tracks = start[:, None, :] + walk[..., None] * vel[:, None, :]
    tracks[..., 1] = np.minimum(tracks[..., 1], -0.5)  # they stay behind the radar
    return tracks, rng.uniform(0.3, 1.0, n)


def simulate_wifi(
    scene: Scene, body: np.ndarray, rcs: np.ndarray, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """|CSI| (270, 1000) float64, channel = rx*90 + antenna*30 + subcarrier, 200 Hz."""
    k = 2 * np.pi * WIFI_FREQS / C  # (30,) rad/m per subcarrier
    ant = scene.rx_ant  # (9, 3)
    # Static channel: line of sight + furniture/wall reflections. A path of length L has phase
    # -2*pi*f*L/c; amplitude follows the bistatic radar equation relative to the LOS (1/d):
    # sqrt(rcs/4pi) / (d1*d2).
    d_los = dist(scene.tx, ant)  # (9,)
    d1 = dist(scene.tx, scene.reflectors)[:, None]  # (P, 1)
    d2 = dist(scene.reflectors[:, None, :], ant[None])  # (P, 9)
    lengths = np.concatenate([d_los[None], d1 + d2])  # (P+1, 9)
    gains = np.concatenate([1 / d_los[None], np.sqrt(scene.reflector_rcs / (4 * np.pi))[:, None] / (d1 * d2)])
    h_static = (gains[:, :, None] * np.exp(-1j * lengths[:, :, None] * k)).sum(0)  # (9, 30)
    # Other people walking behind the radar add their own Doppler to the WiFi links only.
    movers, m_rcs = _background_movers(scene, rng)
    pts = np.concatenate([body, movers])  # (S, T, 3) with S = body parts + movers
    refl = np.sqrt(np.concatenate([rcs, m_rcs]) / (4 * np.pi))
    # Reflections: path tx -> scatterer -> antenna changes with motion (Doppler 2v/lambda).
    b1 = dist(scene.tx, pts)  # (S, T)
    b2 = dist(pts[:, None, :, :], ant[None, :, None, :])  # (S, 9, T)
    path = b1[:, None, :] + b2  # (S, 9, T)
    g = refl[:, None, None] / (b1[:, None, :] * b2)  # (S, 9, T)
    # phase k_f * L split as k_c * L (float64: ~100 cycles) + (k_f - k_c) * L (float32: < 0.2 cycle)
    a_c = (g * np.exp(-1j * (2 * np.pi * WIFI_FC / C) * path)).astype(np.complex64)  # (S, 9, T)
    dk = (2 * np.pi * (WIFI_FREQS - WIFI_FC) / C).astype(np.float32)  # (30,)
    ph = path.astype(np.float32)[:, :, None, :] * dk[None, None, :, None]  # (S, 9, 30, T)
    rot = np.empty(ph.shape, np.complex64)
    rot.real, rot.imag = np.cos(ph), -np.sin(ph)
    rot *= a_c[:, :, None, :]
    h_body = rot.sum(0)  # (9, 30, T)
    level = np.sqrt(np.mean(np.abs(h_static) ** 2))
    h = (h_static[:, :, None] + h_body) * (WIFI_SCALE / level)  # (9, 30, T)
    # Thermal noise at the receiver input, before the AGC amplifies signal and noise alike.
    sigma = WIFI_SCALE * 10 ** (-WIFI_SNR_DB / 20) / np.sqrt(2)
    h = h + sigma * (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape))
    # AGC: each NIC re-levels its gain a few times per recording (steps of 0.5-2 dB).
    gain_db = np.repeat(scene.rx_gain_db[:, None], N_T, axis=1)  # (3, T)
    for rx in range(N_RX):
        for _ in range(rng.poisson(WIFI_AGC_STEPS)):
            at = rng.integers(1, N_T)
            gain_db[rx, at:] += rng.choice([-1, 1]) * rng.uniform(0.5, 2.0)
    # Per-packet gain jitter of each NIC (power control / AGC settling), common to its 90 channels.
    gain_db += WIFI_PACKET_GAIN_DB * rng.standard_normal((N_RX, N_T))
    gain = 10 ** (gain_db / 20)
    h = h * np.repeat(gain, N_ANT, axis=0)[:, None, :]
    # The NIC reports 8-bit I/Q: quantise before taking the magnitude.
    amp = np.abs(np.round(h.real) + 1j * np.round(h.imag)).reshape(N_RX * N_ANT * N_SC, N_T)
    # Impulsive outliers (the reason pipelines run a Hampel filter): rare spikes of 2-5x.
    hit = rng.random(amp.shape) < WIFI_OUTLIER_P
    amp[hit] *= rng.uniform(2.0, 5.0, hit.sum())
    # Dropped packets: fixed-rate pipelines repeat the last received packet (forward fill),
    # per NIC; bursts of loss happen when the NIC is busy.
    for rx in range(N_RX):
        lost = rng.random(N_T) < WIFI_DROP_P
        for _ in range(rng.poisson(0.5)):
            at = rng.integers(1, N_T)
            lost[at : at + rng.integers(5, 30)] = True
        lost[0] = False
        src = np.maximum.accumulate(np.where(lost, 0, np.arange(N_T)))
        rows = slice(rx * N_ANT * N_SC, (rx + 1) * N_ANT * N_SC)
        amp[rows] = amp[rows][:, src]
    return amp.astype(np.float64)

