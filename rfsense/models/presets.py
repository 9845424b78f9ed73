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
from typing import Annotated, Any, Literal

from pydantic import Field

from rfsense.config import PositiveInt, StrictBool, from_data, schema
from rfsense.errors import ConfigError
from rfsense.modalities import N_CLASSES
from rfsense.models._registry import get_preset, register_preset

__all__ = ["LEGACY_DEFAULTS", "STEMS", "ModelConfig", "edge", "model_config", "saved_model_config", "xfi"]

# "patch": one conv with kernel = stride (mmwave 4, wifi 4, rfid 2), i.e. ViT-style patchify; cheap on CPU.
# "resnet": the ResNet-18 stem, conv 7x7 stride 2 + max-pool 3 stride 2 (4x downsampling on every modality).
STEMS = ("patch", "resnet")
Widths = Annotated[tuple[PositiveInt, ...], Field(min_length=1)]


@schema
class ModelConfig:
    """Sizes of the encoders and the X-Fi-style fusion. Validated on construction (ConfigError via from_data)."""

    preset: str = "edge"  # label only: the preset these values started from
    d: PositiveInt = 128  # token / embedding width shared by all modalities and the fusion
    n_tokens: PositiveInt = 8  # tokens per modality (X-Fi projects every modality to 32)
    depth: PositiveInt = 2  # cross-attention + cross-modal-transformer rounds after the first fusion
    heads: PositiveInt = 4  # attention heads everywhere (d must divide evenly)
    mlp_ratio: Annotated[float, Field(gt=0)] = 2.0  # FFN and key/value-generator hidden width = mlp_ratio * d
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1  # attention-weight and residual-branch dropout
    share_depth: StrictBool = False  # X-Fi reuses ONE fusion block at every depth (tied weights)
    stem: Literal["patch", "resnet"] = "patch"  # encoder stem, one of STEMS
    blocks_per_stage: PositiveInt = 1  # residual basic blocks per encoder stage (ResNet-18: 2)
    # Encoder stage widths; the first stage keeps resolution, each later one halves it.
    mmwave_widths: Widths = (32, 64, 128)
    wifi_widths: Widths = (64, 96, 128)
    rfid_widths: Widths = (32, 64, 128)
    n_classes: Annotated[PositiveInt, Field(ge=2)] = N_CLASSES
    # "xfi": the X-Fi-style cross-modal fusion; "late": decision-level fusion, per-modality classifiers
    # averaged over the present modalities (the baseline X-Fi's own release reports on XRF55).
    fusion: Literal["xfi", "late"] = "xfi"
    # WiFi encoder input (a fixed layer before the conv trunk, encoders.SpectralFrontend): "raw" amplitude
    # (B, 270, 1000); "spectrogram": log Doppler power per antenna (B, 9 x 12 bands, 55 frames);
    # "ratio_spectrogram": the same after cancelling each NIC's gain (log amplitude minus the NIC's
    # per-packet mean). WiFi alone on the quick-start set: 30, 52 and 74 % (benchmarks/RESULTS.md).
    wifi_frontend: Literal["raw", "spectrogram", "ratio_spectrogram"] = "ratio_spectrogram"
    # RFID encoder input: "raw" preprocessed phase (B, 23, 148), or "phasor": (cos 2 theta, sin 2 theta)
    # per tag (B, 46, 148), blind to the reader's pi ambiguity, tag offsets and unwrap errors.
    rfid_frontend: Literal["raw", "phasor"] = "phasor"
    # mmWave encoder input: "raw" heatmap (B, 17, 256, 128) into a 2-D trunk, or "doppler": the maximum
    # over range of each step and Doppler bin (B, 17 steps, 128 Doppler), a 1-D trunk over Doppler. On the
    # quick-start set softmax regression reads 79 % from the Doppler profile and 42 % from the 16 x 16
    # pooled map (benchmarks/RESULTS.md).
    mmwave_frontend: Literal["raw", "doppler"] = "doppler"
    # Kernel = stride of the "patch" stem over the raw mmWave map's range x Doppler (256 x 128 -> 32 x 16 at 8).
    mmwave_patch: PositiveInt = 8

    def __post_init__(self) -> None:
        if self.d % self.heads:
            raise ValueError(f"d={self.d} must be divisible by heads={self.heads}")


# Fields added after models were first saved, with the value every model saved before them had: a saved
# config (checkpoint or run config.yaml) lacking one gets this value, not today's default.
LEGACY_DEFAULTS: dict[str, Any] = {
    "fusion": "xfi", "wifi_frontend": "raw", "rfid_frontend": "raw", "mmwave_frontend": "raw", "mmwave_patch": 4,
}


def saved_model_config(d: dict[str, Any], prefix: str = "model_config") -> ModelConfig:
    """``model_config`` for a config saved by any rfsense version (a full dump of ``ModelConfig``)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix}: expected a mapping, got {d!r}")
    return model_config({**LEGACY_DEFAULTS, **d}, prefix)


def model_config(d: dict[str, Any] | ModelConfig, prefix: str = "model") -> ModelConfig:
    """A validated ``ModelConfig`` from plain data, e.g. the ``model:`` section of a YAML file.

    ``preset`` (default ``"edge"``) selects the starting values; every other key overrides one field; ``None``
    values are ignored (unset CLI options).

    Raises:
        ConfigError: unknown key (the message lists the allowed ones), wrong type, invalid value or unknown preset.
    """
    if isinstance(d, ModelConfig):
        return d
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix}: expected a mapping, got {d!r}")
    base = get_preset(d.get("preset") or "edge")
    merged = {**dataclasses.asdict(base), **{k: v for k, v in d.items() if v is not None}}
    return from_data(ModelConfig, merged, prefix)


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
        wifi_frontend="raw",  # X-Fi's backbones read the arrays as stored
        rfid_frontend="raw",
        mmwave_frontend="raw",
    )
