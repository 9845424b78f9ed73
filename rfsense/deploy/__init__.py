"""Deployment: the torch-free runtime, its stream health checks, the manifest and onnxruntime sessions.

Only numpy/scipy/onnxruntime names are re-exported here, so ``import rfsense.deploy`` never pulls in
torch. The exporter needs torch and is imported by its module path: ``from rfsense.deploy.export import ...``.
"""

from __future__ import annotations

from rfsense.deploy.health import STATUSES, Verdict, batch_size, check_streams
from rfsense.deploy.manifest import FORMAT as MANIFEST_FORMAT
from rfsense.deploy.manifest import manifest_path_for, read_manifest
from rfsense.deploy.plausibility import Plausibility, PlausibilityConfig
from rfsense.deploy.runtime import Prediction, Runtime, format_predictions, softmax
from rfsense.deploy.session import ProviderError, cuda_device_usable

__all__ = [
    "MANIFEST_FORMAT",
    "STATUSES",
    "Plausibility",
    "PlausibilityConfig",
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
