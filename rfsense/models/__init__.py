"""rfsense.models: per-modality encoders, X-Fi-style masked fusion, presets ``edge`` and ``xfi``."""

from __future__ import annotations

from rfsense.models import presets as _presets  # noqa: F401  (fills the preset registry)
from rfsense.models._registry import list_presets, register_preset
from rfsense.models.network import RFSenseNet, build_model
from rfsense.models.presets import ModelConfig, model_config_from_dict

__all__ = [
    "ModelConfig",
    "RFSenseNet",
    "build_model",
    "list_presets",
    "model_config_from_dict",
    "register_preset",
]
