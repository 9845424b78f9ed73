"""The data contract shared by every layer: modality names and order, array shapes, subsets."""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "FOLDERS",
    "LETTERS",
    "MODALITIES",
    "Modality",
    "N_CLASSES",
    "SHAPES",
    "SHAPE_MEANING",
    "SUBSETS",
    "TIME_AXIS",
    "canonical_batch",
    "canonical_shape",
    "expected_shape",
    "subset_mask",
]

Modality = Literal["mmwave", "wifi", "rfid"]

# The only ordering: tensors, presence masks, tables and ONNX inputs all follow it.
MODALITIES: tuple[Modality, ...] = ("mmwave", "wifi", "rfid")

# Folder names in the XRF55 download.
FOLDERS: dict[Modality, str] = {"mmwave": "mmWave", "wifi": "WiFi", "rfid": "RFID"}

# Paper letters: R = mmWave radar, W = WiFi, RF = RFID.
LETTERS: dict[Modality, str] = {"mmwave": "R", "wifi": "W", "rfid": "RF"}

# Canonical per-sample array shapes (mmWave files may carry a leading 1: (1, 17, 256, 128)).
SHAPES: dict[Modality, tuple[int, ...]] = {
    "mmwave": (17, 256, 128),
    "wifi": (270, 1000),
    "rfid": (23, 148),
}

SHAPE_MEANING: dict[Modality, str] = {
    "mmwave": "17 frames x 256 range bins x 128 Doppler bins",
    "wifi": "3 rx x 3 antennas x 30 subcarriers, 1000 samples",
    "rfid": "23 tags x 148 phase reads",
}

# Axis of time within one sample: mmWave's 17 frames, WiFi's 1000 packets, RFID's 148 reads.
TIME_AXIS: dict[Modality, int] = {"mmwave": 0, "wifi": 1, "rfid": 1}

N_CLASSES = 55  # XRF55's actions 1..55; label = action - 1

# The 7 non-empty subsets in the order of the DAGR paper's Table 4.
SUBSETS: tuple[tuple[str, tuple[Modality, ...]], ...] = (
    ("R", ("mmwave",)),
    ("W", ("wifi",)),
    ("RF", ("rfid",)),
    ("R+W", ("mmwave", "wifi")),
    ("R+RF", ("mmwave", "rfid")),
    ("W+RF", ("wifi", "rfid")),
    ("R+W+RF", ("mmwave", "wifi", "rfid")),
)


def subset_mask(mods: tuple[str, ...] | list[str]) -> tuple[bool, bool, bool]:
    """Presence mask in MODALITIES order for a collection of modality names."""
    unknown = set(mods) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modality {sorted(unknown)}; expected a subset of {list(MODALITIES)}")
    return tuple(m in mods for m in MODALITIES)  # type: ignore[return-value]


def canonical_shape(modality: Modality, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The canonical per-sample shape if `shape` is one sample of `modality` in a form files use, else None.

    mmWave files carry a leading 1 ((1, 17, 256, 128)); every other modality has one form only.
    """
    want = SHAPES[modality]
    if tuple(shape) == want or (modality == "mmwave" and tuple(shape) == (1, *want)):
        return want
    return None


def canonical_batch(modality: Modality, arr: np.ndarray) -> np.ndarray | None:
    """(B, *SHAPES[m]) view of a batch `arr`, accepting mmWave's (B, 1, 17, 256, 128); None if wrong."""
    if arr.ndim < 1 or canonical_shape(modality, arr.shape[1:]) is None:
        return None
    return arr.reshape(arr.shape[0], *SHAPES[modality])


def expected_shape(modality: Modality, batch: bool = False) -> str:
    """The expected shape in words, for error messages: '(270, 1000) = 3 rx x 3 antennas x ...'."""
    lead = "batch, " if batch else ""
    text = f"({lead}{', '.join(map(str, SHAPES[modality]))})"
    if modality == "mmwave":
        text += f" or ({lead}1, {', '.join(map(str, SHAPES[modality]))})"
    return f"{text} = {SHAPE_MEANING[modality]}"
