"""The one family of expected errors; the CLI turns these into a one-line message and exit code 1."""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "ModelFileError", "RFSenseError"]


class RFSenseError(Exception):
    """Base class of every error a user can cause (bad data, bad config, bad model file)."""


class ConfigError(RFSenseError):
    """A config file, key, value or command-line override is wrong."""


class DataError(RFSenseError):
    """A data file or folder is missing, malformed or inconsistent."""


class ModelFileError(RFSenseError):
    """A checkpoint, ONNX model or manifest is missing, corrupt or does not match."""
