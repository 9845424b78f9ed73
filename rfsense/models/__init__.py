"""rfsense.models: per-modality encoders, X-Fi-style masked fusion, presets ``edge`` and ``xfi``.

The configs (``ModelConfig``, presets) import without torch, so loading a run config never loads it; the
network (``RFSenseNet``, ``build_model``) is imported on first use.
"""

from __future__ import annotations

from typing import Any

from rfsense.models import presets as _presets  # noqa: F401  (fills the preset registry)
from rfsense.models._registry import list_presets, register_preset
from rfsense.models.presets import ModelConfig, model_config

__all__ = [
    "ModelConfig",
    "RFSenseNet",
    "build_model",
    "list_presets",
    "model_config",
    "register_preset",
]


def __getattr__(name: str) -> Any:
    if name in ("RFSenseNet", "build_model"):
        from rfsense.models import network

        return getattr(network, name)
    raise AttributeError(f"module 'rfsense.models' has no attribute {name!r}")
