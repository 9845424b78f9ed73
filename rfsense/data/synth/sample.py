"""One synthetic sample: the scene, the volunteer and the trial's body motion seen by the three sensors."""

from __future__ import annotations

import numpy as np

from rfsense.data.synth.config import NOISE_STREAM, TRIAL_STREAM, SynthConfig, check_key, rng_for
from rfsense.data.synth.constants import RCS
from rfsense.data.synth.mmwave import simulate_mmwave
from rfsense.data.synth.motion import body_track, programmes
from rfsense.data.synth.rfid import simulate_rfid
from rfsense.data.synth.scene import scene_geometry, volunteer_traits
from rfsense.data.synth.wifi import simulate_wifi

__all__ = ["generate_sample"]

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
    check_key(cfg, volunteer, action, trial)
    scene = scene_geometry(cfg.seed, cfg.scene_of(volunteer))
    vol = volunteer_traits(cfg.seed, volunteer)
    prog = programmes()[action - 1]
    body, size = body_track(prog, vol, scene, rng_for(cfg.seed, TRIAL_STREAM, volunteer, action, trial))
    noise = [rng_for(cfg.seed, NOISE_STREAM, volunteer, action, trial, i) for i in range(3)]
    return {
        "mmwave": simulate_mmwave(scene, body, RCS["mmwave"] * size, noise[0]),
        "wifi": simulate_wifi(scene, body, RCS["wifi"] * size, noise[1]),
        "rfid": simulate_rfid(scene, body, RCS["rfid"] * size, noise[2]),
    }

