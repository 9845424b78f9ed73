"""One synthetic sample: the scene, the volunteer and the trial's body motion seen by the three sensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rfsense.data.synth.config import NOISE_STREAM, TRIAL_STREAM, SynthConfig, check_key, rng_for
from rfsense.data.synth.constants import RCS
from rfsense.data.synth.mmwave import simulate_mmwave
from rfsense.data.synth.motion import body_track, programmes
from rfsense.data.synth.rfid import simulate_rfid
from rfsense.data.synth.scene import Scene, scene_geometry, volunteer_traits
from rfsense.data.synth.wifi import simulate_wifi

__all__ = ["World", "generate_sample", "world"]


@dataclass(frozen=True)
class World:
    """One trial's simulated world: the scene, the body's scatterer tracks (S, 1000, 3) on the 200 Hz grid,
    its RCS scale, and the seeded noise streams of the three sensors (mmwave, wifi, rfid)."""

    scene: Scene
    body: np.ndarray
    size: float
    noise: tuple[np.random.Generator, np.random.Generator, np.random.Generator]


def world(cfg: SynthConfig, volunteer: int, action: int, trial: int) -> World:
    """The world of sample (volunteer, action, trial): a pure function of (cfg.seed, cfg.scenes, key).

    Raises:
        ValueError: an id is not a positive integer or action > 55.
    """
    check_key(cfg, volunteer, action, trial)
    scene = scene_geometry(cfg.seed, cfg.scene_of(volunteer))
    vol = volunteer_traits(cfg.seed, volunteer)
    prog = programmes()[action - 1]
    body, size = body_track(prog, vol, scene, rng_for(cfg.seed, TRIAL_STREAM, volunteer, action, trial))
    noise = tuple(rng_for(cfg.seed, NOISE_STREAM, volunteer, action, trial, i) for i in range(3))
    return World(scene, body, size, noise)  # type: ignore[arg-type]


def generate_sample(cfg: SynthConfig, volunteer: int, action: int, trial: int) -> dict[str, np.ndarray]:
    """Generate one sample; a pure function of (cfg.seed, cfg.scenes, volunteer, action, trial).

    Args:
        cfg: generator config (only `seed` and `scenes` influence the arrays).
        volunteer, action, trial: 1-based ids as in the XRF55 file name `<v>_<a>_<t>.npy`.

    Returns:
        {'mmwave': (1, 17, 256, 128) float32 range-Doppler magnitude,
         'wifi': (270, 1000) float64 |CSI| (channel = rx*90 + antenna*30 + subcarrier, 200 Hz),
         'rfid': (23, 148) float64 wrapped phase in [0, 2*pi)}.

    Raises:
        ValueError: an id is not a positive integer or action > 55.
    """
    w = world(cfg, volunteer, action, trial)
    return {
        "mmwave": simulate_mmwave(w.scene, w.body, RCS["mmwave"] * w.size, w.noise[0]),
        "wifi": simulate_wifi(w.scene, w.body, RCS["wifi"] * w.size, w.noise[1]),
        "rfid": simulate_rfid(w.scene, w.body, RCS["rfid"] * w.size, w.noise[2]),
    }
