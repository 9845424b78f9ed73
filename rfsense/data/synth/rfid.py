"""RFID backscatter phase of the simulated scene: 23 tags read irregularly at ~30 Hz, 148 slots.

`rfid_reads` gives every read the reader takes (time, phase, whether it was received); `simulate_rfid`
resamples them to the 148 slots of the XRF55 array, and `raw_rfid` logs the same reads as an Impinj CSV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rfsense.data.synth.constants import (
    BLOCK,
    DURATION_S,
    N_T,
    N_TAGS,
    RFID_LAMBDA,
    RFID_MISS_P,
    RFID_N,
    RFID_PHASE_NOISE,
    RFID_PI_JUMP_P,
    RFID_RATE,
    RFID_SESSION_DRIFT,
    RFID_TAG_DRIFT,
    WIFI_FS,
)
from rfsense.data.synth.scene import Scene, dist

__all__ = ["RfidReads", "rfid_reads", "simulate_rfid"]


@dataclass(frozen=True)
class RfidReads:
    """Every read attempt of the 23 tags in 5 s: times (23, n) s, phase (23, n) rad (not wrapped),
    valid (23, n) bool (received, before 5 s), snr (23, n) relative backscatter power at each read, and the
    noise-free round-trip phase track (23, 1000) on the 200 Hz grid (its rate is the tag's Doppler shift)."""

    times: np.ndarray
    phase: np.ndarray
    valid: np.ndarray
    snr: np.ndarray
    track: np.ndarray


def rfid_reads(scene: Scene, body: np.ndarray, rcs: np.ndarray, rng: np.random.Generator) -> RfidReads:
    """The reads of one recording: round-trip phase 4*pi*d/lambda + tag offset, shadowing, noise, misses."""
    k = 2 * np.pi / RFID_LAMBDA
    reader, tags = scene.reader, scene.tags
    d_rt = dist(reader, tags)  # (23,)
    d_rs = dist(reader, body)  # (S, T)
    d_st = dist(body[:, None, :, :], tags[None, :, None, :])  # (S, 23, T)
    # Shadowing: a body part inside the first Fresnel zone of the reader->tag line attenuates it.
    seg = tags - reader  # (23, 3)
    w = ((body[:, None] - reader) * seg[None, :, None]).sum(-1) / (seg**2).sum(-1)[
        None, :, None
    ]  # (S, 23, T)
    w = np.clip(w, 0.02, 0.98)
    closest = reader + w[..., None] * seg[None, :, None, :]
    off = dist(body[:, None], closest)  # (S, 23, T)
    r_f = np.sqrt(RFID_LAMBDA * w * (1 - w) * d_rt[None, :, None])  # first Fresnel radius there
    block = np.prod(1 - BLOCK[:, None, None] * np.exp(-((off / r_f) ** 2)), axis=0)  # (23, T)
    # One-way channel: LOS + reflections off each body part (bistatic radar equation).
    refl = np.sqrt(rcs / (4 * np.pi))[:, None, None] / (d_rs[:, None, :] * d_st)  # (S, 23, T)
    h = block * np.exp(-1j * k * d_rt)[:, None] / d_rt[:, None] + (
        refl * np.exp(-1j * k * (d_rs[:, None, :] + d_st))
    ).sum(0)
    h = h * d_rt[:, None]  # relative to the unobstructed LOS
    # The tag answers on the same carrier, so the round trip is h^2: phase 4*pi*d/lambda.
    # Reader restarts and cable/temperature drift move the offsets between recordings.
    drift = rng.normal(0, RFID_SESSION_DRIFT) + rng.normal(0, RFID_TAG_DRIFT, N_TAGS)
    phase = -np.angle(h * h) + (scene.tag_offset + drift)[:, None]
    snr = np.abs(h) ** 2  # (23, T), 1 at full line of sight
    # Irregular reads: the reader inventories tags in turn, ~30 reads/s each with jittered gaps.
    n_max = int(DURATION_S * RFID_RATE * 1.3) + 4
    gaps = rng.gamma(8.0, 1 / (8.0 * RFID_RATE), size=(N_TAGS, n_max))
    times = rng.uniform(0, 1 / RFID_RATE, (N_TAGS, 1)) + np.cumsum(gaps, axis=1) - gaps[:, :1]
    idx = np.minimum((times * WIFI_FS).round().astype(int), N_T - 1)
    rows = np.arange(N_TAGS)[:, None]
    # Missed reads: more likely when the tag is shadowed (low backscatter power).
    miss_p = RFID_MISS_P + 0.5 * np.clip(1 - snr[rows, idx], 0, 1) ** 2
    valid = (times < DURATION_S) & (rng.random(times.shape) >= miss_p)
    valid[:, 0] = True
    # Phase noise grows as the SNR drops; random pi jumps model the Miller-encoding ambiguity.
    noise = RFID_PHASE_NOISE / np.sqrt(np.maximum(snr[rows, idx], 0.25))
    reads = phase[rows, idx] + noise * rng.standard_normal(times.shape)
    reads += np.pi * (rng.random(times.shape) < RFID_PI_JUMP_P)
    return RfidReads(times, reads, valid, snr[rows, idx], phase)


def simulate_rfid(
    scene: Scene, body: np.ndarray, rcs: np.ndarray, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Wrapped backscatter phase (23, 148) float64 in [0, 2*pi), zero-order hold on missing reads."""
    r = rfid_reads(scene, body, rcs, rng)
    times, reads, valid = r.times, r.phase, r.valid
    # Resample to 148 slots by zero-order hold: slot i takes the latest read at or before its end;
    # slots before the first read take the first read. (Interpolating wrapped phase would
    # invent values across the 2*pi wraps.)
    t_read = np.where(valid, times, np.inf)
    order = np.argsort(t_read, axis=1, kind="stable")
    t_read = np.take_along_axis(t_read, order, axis=1)
    reads = np.take_along_axis(reads, order, axis=1)
    slot_end = (np.arange(RFID_N) + 1) * DURATION_S / RFID_N
    last = (t_read[:, :, None] <= slot_end[None, None, :]).sum(1) - 1  # (23, 148)
    out = np.take_along_axis(reads, np.maximum(last, 0), axis=1)
    out = np.mod(out, 2 * np.pi)
    out[out >= 2 * np.pi] = 0.0  # np.mod can round up to exactly 2*pi
    return out
