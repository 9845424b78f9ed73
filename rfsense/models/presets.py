"""Model config schema (``ModelConfig``) and the named presets ``edge`` and ``xfi``.

Each preset only sets sizes; ``rfsense.models.build_model`` assembles any config. Why the two differ:

- ``edge`` (default) must train and run on a 2-core CPU: d=128, 8 tokens/modality, depth 2, narrow
  3-stage conv encoders whose first layer is a strided "patch" conv (mmWave 17x256x128 -> 64x32 in
  one step), 2.0M parameters, ~0.2 s forward+backward at batch 16 (benchmarks/bench_model.py).
- ``xfi`` reproduces the X-Fi sizes on XRF55 for GPU training: d=512, 32 tokens/modality, depth 5
  with the fusion weights tied across depth (as released), ResNet-18 encoders (7x7/2 stem + max-pool,
  2 basic blocks per stage), 31.9M parameters (20.3M encoders, 11.6M fusion + head).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rfsense.errors import ConfigError
from rfsense.modalities import N_CLASSES
from rfsense.models._registry import get_preset, register_preset

__all__ = ["STEMS", "ModelConfig", "edge", "model_config_from_dict", "xfi"]

# "patch": one conv with kernel = stride (mmwave 4, wifi 4, rfid 2), i.e. ViT-style patchify; cheap on CPU.
# "resnet": the ResNet-18 stem, conv 7x7 stride 2 + max-pool 3 stride 2 (4x downsampling on every modality).
STEMS = ("patch", "resnet")


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the encoders and the X-Fi-style fusion. Validated on construction (ConfigError)."""

    preset: str = "edge"  # label only: the preset these values started from
    d: int = 128  # token / embedding width shared by all modalities and the fusion
    n_tokens: int = 8  # tokens per modality (X-Fi projects every modality to 32)
    depth: int = 2  # cross-attention + cross-modal-transformer rounds after the first fusion
    heads: int = 4  # attention heads everywhere (d must divide evenly)
    mlp_ratio: float = 2.0  # FFN and key/value-generator hidden width = mlp_ratio * d (X-Fi: 2)
    dropout: float = 0.1  # attention-weight and residual-branch dropout in the fusion
    share_depth: bool = False  # X-Fi reuses ONE fusion block at every depth (tied weights)
    stem: str = "patch"  # encoder stem, one of STEMS
    blocks_per_stage: int = 1  # residual basic blocks per encoder stage (ResNet-18: 2)
    # Encoder stage widths; the first stage keeps resolution, each later one halves it.
    mmwave_widths: tuple[int, ...] = (32, 64, 128)
    wifi_widths: tuple[int, ...] = (64, 96, 128)
    rfid_widths: tuple[int, ...] = (32, 64, 128)
    n_classes: int = N_CLASSES

    def __post_init__(self) -> None:
        errors = []
        for name in ("d", "n_tokens", "depth", "heads", "blocks_per_stage", "n_classes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                errors.append(f"{name} must be a positive int, got {v!r}")
        if not errors and self.d % self.heads:
            errors.append(f"d={self.d} must be divisible by heads={self.heads}")
        if self.n_classes == 1:
            errors.append("n_classes must be >= 2")
        if not _is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            errors.append(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not _is_number(self.mlp_ratio) or not self.mlp_ratio > 0:
            errors.append(f"mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if not isinstance(self.share_depth, bool):
            errors.append(f"share_depth must be a bool, got {self.share_depth!r}")
        if self.stem not in STEMS:
            errors.append(f"stem must be one of {', '.join(STEMS)}, got {self.stem!r}")
        for name in ("mmwave_widths", "wifi_widths", "rfid_widths"):
            w = getattr(self, name)
            if (
                not isinstance(w, tuple)
                or not w
                or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in w)
            ):
                errors.append(f"{name} must be a non-empty tuple of positive ints, got {w!r}")
        if errors:
            raise ConfigError("invalid model config: " + "; ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, ints, floats, strs) for YAML and ``torch.load(weights_only=True)``."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }


def _public_fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(ModelConfig)}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the field's default (YAML gives lists for tuples)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, list | tuple)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"model.{name}: expected {type(default).__name__}, got {value!r}")
    return value


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """Build a ``ModelConfig`` from plain data, e.g. the ``model:`` section of a YAML file.

    Args:
        d: field -> value. ``preset`` (default ``"edge"``) selects the starting values; every other
            key overrides one field. Lists are accepted for tuple fields; ``None`` values are ignored.

    Returns:
        The validated, frozen config.

    Raises:
        ConfigError: unknown key (the message lists the allowed ones), wrong type, invalid value or
            unknown preset.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"model config must be a mapping, got {type(d).__name__}")
    fields = _public_fields()
    for key in d:
        if key not in fields:
            raise ConfigError(f"unknown key 'model.{key}'; allowed: {', '.join(sorted(fields))}")
    base = get_preset(d.get("preset") or "edge")
    changes = {k: _coerce(k, v, getattr(base, k)) for k, v in d.items() if v is not None}
    return dataclasses.replace(base, **changes)


@register_preset
def edge() -> ModelConfig:
    """Small and fast on a 2-core CPU (default)."""
    return ModelConfig(preset="edge")


@register_preset
def xfi() -> ModelConfig:
    """X-Fi sizes (d=512, 32 tokens, depth 5 tied, ResNet-18 encoders); for GPU training."""
    return ModelConfig(
        preset="xfi",
        d=512,
        n_tokens=32,
        depth=5,
        heads=8,
        mlp_ratio=2.0,
        dropout=0.0,  # X-Fi trains its fusion without dropout
        share_depth=True,
        stem="resnet",
        blocks_per_stage=2,
        mmwave_widths=(64, 128, 256, 512),  # X-Fi mmWave ResNet-18, base 64
        wifi_widths=(128, 128, 256, 512),  # X-Fi WiFi/RFID 1-D ResNet-18, base 128
        rfid_widths=(128, 128, 256, 512),
    )
