"""Deployment: the torch-free runtime and stream health checks.

Only numpy/scipy/onnxruntime names are re-exported here, so ``import rfsense.deploy`` never pulls in
torch. The exporter needs torch and is imported by its module path: ``from rfsense.deploy.export import ...``.
"""

from __future__ import annotations

from rfsense.deploy.health import STATUSES, HealthConfig, Verdict, batch_size, check_streams
from rfsense.deploy.runtime import (
    MANIFEST_FORMAT,
    Prediction,
    ProviderError,
    Runtime,
    cuda_device_usable,
    format_predictions,
    manifest_path_for,
    read_manifest,
    softmax,
)

__all__ = [
    "MANIFEST_FORMAT",
    "STATUSES",
    "HealthConfig",
    "Prediction",
    "ProviderError",
    "Runtime",
    "Verdict",
    "batch_size",
    "check_streams",
    "cuda_device_usable",
    "format_predictions",
    "manifest_path_for",
    "read_manifest",
    "softmax",
]
