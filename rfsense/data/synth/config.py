"""What to generate (`SynthConfig`) and the seeded random streams every sample is a pure function of."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rfsense.modalities import N_CLASSES

__all__ = ["SynthConfig", "check_key", "rng_for"]

@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Volunteers are numbered 1..N, actions 1..K, trials 1..T.

    volunteer v belongs to scene ((v - 1) % scenes) + 1.
    layout "flat":   OUT/{WiFi,RFID,mmWave}/<v>_<a>_<t>.npy
    layout "scenes": OUT/Scene<k>/Scene<k>_part1/{WiFi,RFID,mmWave}/<v>_<a>_<t>.npy (as the download)
    """

    volunteers: int = 2
    actions: int = 10
    trials: int = 20
    scenes: int = 1
    seed: int = 0
    layout: str = "flat"

    def __post_init__(self) -> None:
        for name in ("volunteers", "actions", "trials", "scenes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.actions > N_CLASSES:
            raise ValueError(
                f"actions must be at most {N_CLASSES} (XRF55 has 55 classes), got {self.actions}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.layout not in ("flat", "scenes"):
            raise ValueError(f"layout must be 'flat' or 'scenes', got {self.layout!r}")

    @property
    def n_samples(self) -> int:
        return self.volunteers * self.actions * self.trials

    def scene_of(self, volunteer: int) -> int:
        return (volunteer - 1) % self.scenes + 1

    def keys(self) -> list[tuple[int, int, int]]:
        """All (volunteer, action, trial) keys in generation order."""
        return [
            (v, a, t)
            for v in range(1, self.volunteers + 1)
            for a in range(1, self.actions + 1)
            for t in range(1, self.trials + 1)
        ]


def check_key(cfg: SynthConfig, volunteer: int, action: int, trial: int) -> None:
    for name, value in (("volunteer", volunteer), ("action", action), ("trial", trial)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if action > N_CLASSES:
        raise ValueError(f"action must be at most {N_CLASSES}, got {action}")


def rng_for(*key: int) -> np.random.Generator:
    # SeedSequence hashes the whole key, so neighbouring keys give independent streams.
    return np.random.default_rng([int(k) for k in key])


# Stream tags keep the random streams of different purposes apart.
ACTION_SEED = 55_2024  # fixed: the 55 motion programmes are part of the generator, not of cfg.seed
VOLUNTEER_STREAM, SCENE_STREAM, TRIAL_STREAM, NOISE_STREAM, RAW_STREAM = 1, 2, 3, 4, 5

