"""Tiny XRF55 trees written by the tests themselves (real shapes, few samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rfsense.modalities import FOLDERS, SHAPES

GOOD_SHAPES = {"mmwave": (1, 17, 256, 128), "wifi": (270, 1000), "rfid": (23, 148)}


def write_sample(folder: Path, key: str, rng: np.random.Generator, mods=("mmwave", "wifi", "rfid"),
                 dtype=np.float32) -> None:
    for m in mods:
        d = folder / FOLDERS[m]
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / f"{key}.npy", rng.random(GOOD_SHAPES[m]).astype(dtype))


def flat_tree(root: Path, volunteers=(1, 2), actions=(1, 2), trials=(1, 15), seed=0, pad=False) -> Path:
    rng = np.random.default_rng(seed)
    for v in volunteers:
        for a in actions:
            for t in trials:
                key = f"{v:02d}_{a:02d}_{t:02d}" if pad else f"{v}_{a}_{t}"
                write_sample(root, key, rng)
    return root


def plausible_batch(modality: str, b: int, seed: int = 0) -> np.ndarray:
    """Plausible random input: positive amplitudes/heatmaps, wrapped phases (no exact repeats)."""
    rng = np.random.default_rng(seed)
    shape = (b, *SHAPES[modality])
    if modality == "rfid":
        return rng.uniform(0, 2 * np.pi, shape)
    if modality == "wifi":
        return 20 + rng.normal(0, 2, shape)
    return rng.exponential(100.0, shape).astype(np.float32)
