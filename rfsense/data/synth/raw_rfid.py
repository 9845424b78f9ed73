"""The Impinj reader log of a simulated trial (`rfsense synth --raw`): the reads behind the RFID .npy.

Every received read of `rfid.rfid_reads` (the same times and phases the (23, 148) array is resampled from)
becomes one CSV row in the columns of the LLRP loggers used in RFID sensing research:

    EPC,Timestamp,Antenna,TxPower,Frequency(MHz),RSS(dbm),PhaseAngle(Radian),PhaseAngle(Degree),DopplerShift(Hz),Velocity

What a real reader adds on top, and the .npy does not have (XRF55 used one fixed frequency):
- frequency hopping over 16 channels 920.625 + 0.25 * i MHz (China band), a new channel every 0.2 s in a
  shuffled order;
- a phase offset per channel: a random one of the reader's RF chain plus the tag's distance term
  4*pi*d*(f - 922.38 MHz)/c;
- the reader's phase quantisation (4096 steps per turn), microsecond timestamps since the epoch;
- RSSI from the backscatter power, Doppler from the rate of the (noise-free) phase, both noisy.

EPCs are E2801170 + seed + scene + tag number, so a scene's tag map (`tag_map_text`) lists them in row order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rfsense.data.synth.constants import N_TAGS, RCS, RFID_F, RFID_LAMBDA, WIFI_FS, C
from rfsense.data.synth.rfid import rfid_reads
from rfsense.data.synth.sample import World
from rfsense.data.synth.scene import dist

__all__ = ["HEADER", "epc", "tag_map_text", "write_raw_rfid"]

HEADER = ("EPC,Timestamp,Antenna,TxPower,Frequency(MHz),RSS(dbm),PhaseAngle(Radian),PhaseAngle(Degree),"
          "DopplerShift(Hz),Velocity")
CHANNELS_MHZ = 920.625 + 0.25 * np.arange(16)
DWELL_S = 0.2
_EPOCH_US = 1_700_000_000_000_000  # 2023-11-14: synthetic recordings start after it


def epc(seed: int, scene: int, tag: int) -> str:
    """EPC-96 (24 hex digits) of tag row `tag` (0..22) in `scene`."""
    return f"E2801170{seed % 2**32:08X}{scene % 2**16:04X}{tag:04X}"


def tag_map_text(seed: int, scene: int) -> str:
    lines = [f"# rfsense synth: the {N_TAGS} tag EPCs of Scene{scene} in XRF55 row order (5 x 5 grid minus the "
             "two top corners, row-major from the bottom)"]
    return "\n".join(lines + [epc(seed, scene, k) for k in range(N_TAGS)]) + "\n"


def write_raw_rfid(w: World, rng: np.random.Generator, path: Path, *, seed: int, scene: int, start_s: float) -> int:
    """Write the log of world `w` to `path` (rows in time order); returns bytes written.

    Args:
        w: a fresh `sample.world(...)` (its RFID noise stream unused, so the reads are the .npy's).
        rng: stream for what only the log has (hop order, channel offsets, RSSI and Doppler noise).
        seed, scene: for the EPCs. start_s: the recording's start, seconds after the log's epoch base.
    """
    r = rfid_reads(w.scene, w.body, RCS["rfid"] * w.size, w.noise[2])
    tag, col = np.nonzero(r.valid)
    t = r.times[tag, col]
    order = np.argsort(t, kind="stable")
    tag, col, t = tag[order], col[order], t[order]
    # Hopping: channel index per dwell period, and the phase offset each channel adds to each tag.
    n_dwell = int(np.ceil((t.max() + DWELL_S) / DWELL_S)) + 1
    hops = np.concatenate([rng.permutation(len(CHANNELS_MHZ)) for _ in range(n_dwell // len(CHANNELS_MHZ) + 2)])
    first = int(rng.integers(len(CHANNELS_MHZ)))
    ch = hops[first + (t / DWELL_S).astype(int)]
    d_rt = dist(w.scene.reader, w.scene.tags)  # (23,)
    f_hz = CHANNELS_MHZ * 1e6
    offset = rng.uniform(0, 2 * np.pi, len(CHANNELS_MHZ))[None, :] + 4 * np.pi * d_rt[:, None] * (f_hz - RFID_F) / C
    phase = r.phase[tag, col] + offset[tag, ch]
    code = np.rint(np.mod(phase, 2 * np.pi) / (2 * np.pi) * 4096).astype(np.int64) % 4096  # reader's 0..4095
    rss = np.round(2 * (-42 + 10 * np.log10(np.maximum(r.snr[tag, col], 1e-3)) + rng.normal(0, 0.7, len(t)))) / 2
    rate = np.gradient(np.unwrap(r.track, axis=1), 1 / WIFI_FS, axis=1)  # rad/s, (23, 1000)
    doppler = rate[tag, np.minimum((t * WIFI_FS).astype(int), rate.shape[1] - 1)] / (2 * np.pi)
    doppler = doppler + rng.normal(0, 2.0, len(t))
    stamp = _EPOCH_US + np.rint((start_s + t) * 1e6).astype(np.int64)
    epcs = [epc(seed, scene, k) for k in range(N_TAGS)]
    rows = [HEADER]
    for i in range(len(t)):
        c = int(code[i])
        rows.append(
            f"{epcs[tag[i]]},{stamp[i]},1,30.0,{CHANNELS_MHZ[ch[i]]:.3f},{rss[i]:.1f},{c * 2 * np.pi / 4096:.6f},"
            f"{c * 360 / 4096:.4f},{doppler[i]:.3f},{doppler[i] * RFID_LAMBDA / 2:.5f}"
        )
    data = ("\n".join(rows) + "\n").encode()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return len(data)
