"""Data layer (numpy/scipy only, never torch): XRF55 layout, validation, preprocessing, packing, ingest.

Submodules are imported on use (``from rfsense.data.pack import pack``) so that, e.g., the deployment
runtime pays only for what it needs.
"""

from __future__ import annotations
