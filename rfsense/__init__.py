"""rfsense: multimodal RF human sensing (mmWave, WiFi CSI, RFID) from XRF55 to the edge."""

from __future__ import annotations

from rfsense.errors import ConfigError, DataError, ModelFileError, RFSenseError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "ModelFileError", "RFSenseError", "__version__"]
