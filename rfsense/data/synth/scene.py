"""Volunteers and scenes: body sizes and habits, room geometry, device placement (cached per seed)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rfsense.data.synth.config import SCENE_STREAM, VOLUNTEER_STREAM, rng_for
from rfsense.data.synth.constants import N_ANT, N_RX, N_TAGS, RFID_BOARD_BEHIND, WIFI_LAMBDA

__all__ = ["Scene", "Volunteer", "dist", "scene_geometry", "volunteer_traits"]


def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance along the last axis (broadcasting)."""
    return np.sqrt(((a - b) ** 2).sum(-1))


@dataclass(frozen=True)
class Volunteer:
    height: float  # scale of the body and of its motions
    speed: float  # tempo factor (programme time runs this much faster)
    style: float  # amplitude factor
    offset: tuple[float, float]  # standing position relative to the scene's spot (m)
    yaw: float  # heading relative to facing the radar (rad)
    rcs: float  # reflectivity factor (body size, clothing)


@lru_cache(maxsize=64)
def volunteer_traits(seed: int, volunteer: int) -> Volunteer:
    rng = rng_for(seed, VOLUNTEER_STREAM, volunteer)
    return Volunteer(
        height=float(rng.uniform(0.92, 1.08)),
        speed=float(rng.uniform(0.92, 1.08)),
        style=float(rng.uniform(0.9, 1.1)),
        offset=(float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.3, 0.3))),
        yaw=float(np.deg2rad(rng.uniform(-10, 10))),
        rcs=float(rng.uniform(0.8, 1.25)),
    )


@dataclass(frozen=True)
class Scene:
    spot: np.ndarray  # (3,) where volunteers stand (floor point)
    radar: np.ndarray  # (3,) mmWave radar, boresight +y
    tx: np.ndarray  # (3,) WiFi transmitter
    rx_ant: np.ndarray  # (9, 3) WiFi receive antennas, index rx*3 + antenna
    reflectors: np.ndarray  # (P, 3) static scatterers (furniture, walls) for multipath and clutter
    reflector_rcs: np.ndarray  # (P,) m^2
    walls: np.ndarray  # (W,) ranges of wall clutter seen by the radar (m)
    reader: np.ndarray  # (3,) RFID reader antenna
    tags: np.ndarray  # (23, 3) RFID tags on a board behind the volunteers
    tag_offset: np.ndarray  # (23,) tag + reader phase offsets (rad)
    rx_gain_db: np.ndarray  # (3,) per-NIC gain


@lru_cache(maxsize=16)
def scene_geometry(seed: int, scene: int) -> Scene:
    rng = rng_for(seed, SCENE_STREAM, scene)
    j = lambda s, n=3: rng.uniform(-s, s, size=n)  # noqa: E731 - geometry jitter
    spot = np.array([0.0, 2.6, 0.0]) + j(0.2) * [1, 1, 0]
    rx_centres = np.array([[2.0, 1.3, 1.1], [2.0, 3.9, 1.1], [-2.0, 3.9, 1.1]]) + rng.uniform(
        -0.3, 0.3, (3, 3)
    ) * [
        1,
        1,
        0.3,
    ]
    # 3 antennas per NIC half a wavelength apart along a random horizontal axis.
    axis = rng.uniform(0, np.pi, size=3)
    along = np.stack([np.cos(axis), np.sin(axis), np.zeros(3)], axis=1)  # (3, 3)
    rx_ant = (
        rx_centres[:, None, :] + (np.arange(N_ANT) - 1)[None, :, None] * (WIFI_LAMBDA / 2) * along[:, None, :]
    )
    n_ref = 6
    reflectors = np.stack(
        [rng.uniform(-3, 3, n_ref), rng.uniform(-0.5, 5.5, n_ref), rng.uniform(0.0, 2.5, n_ref)], axis=1
    )
    # 23 tags: a 5 x 5 grid on the back wall without the two top corners.
    gx, gz = np.meshgrid(np.linspace(-0.8, 0.8, 5), np.linspace(0.35, 1.75, 5))
    keep = ~(((gx == gx.min()) | (gx == gx.max())) & (gz == gz.max()))
    wall_y = spot[1] + RFID_BOARD_BEHIND + rng.uniform(-0.1, 0.1)  # tag board behind the volunteer
    tags = np.stack([gx[keep], np.full(N_TAGS, wall_y), gz[keep]], axis=1) + rng.normal(
        0, 0.02, (N_TAGS, 3)
    ) * [
        1,
        0,
        1,
    ]
    return Scene(
        spot=spot,
        radar=np.array([0.0, 0.0, 1.0]) + j(0.1) * [1, 0, 1],
        tx=np.array([-2.0, 1.2, 1.1]) + j(0.3) * [1, 1, 0.3],
        rx_ant=rx_ant.reshape(N_RX * N_ANT, 3),
        reflectors=reflectors,
        reflector_rcs=np.exp(rng.uniform(np.log(0.3), np.log(5.0), n_ref)),
        walls=np.array([wall_y, 5.5 + rng.uniform(-0.5, 0.5)]),
        reader=np.array([0.0, 0.4, 1.2]) + j(0.1) * [1, 1, 0.5],
        tags=tags,
        tag_offset=rng.uniform(0, 2 * np.pi, N_TAGS),
        rx_gain_db=rng.uniform(-2, 2, N_RX),
    )

