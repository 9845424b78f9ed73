"""The data contract shared by every layer: modality names and order, array shapes, subsets."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "FOLDERS",
    "LETTERS",
    "MODALITIES",
    "Modality",
    "N_CLASSES",
    "SHAPES",
    "SHAPE_MEANING",
    "SUBSETS",
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

N_CLASSES = 55

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
