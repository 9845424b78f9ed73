"""onnxruntime sessions: the one place that picks execution providers and builds a session (no torch).

onnxruntime-gpu lists CUDA on any machine and silently falls back to the CPU when CUDA cannot load, so
CUDA is asked for only when a device is really there, and what the session got is checked and reported.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import glob
import io
import logging
import os
import sys
from pathlib import Path

import onnxruntime as ort

from rfsense.errors import ConfigError, ModelFileError, RFSenseError

__all__ = ["PROVIDER_CHOICES", "ProviderError", "cuda_device_usable", "make_session"]

_logger = logging.getLogger(__name__)

PROVIDER_CHOICES = ("auto", "cpu", "cuda")
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
# onnxruntime's default logger severity (0 verbose .. 4 fatal); restored after a quiet CUDA attempt.
_ORT_DEFAULT_SEVERITY = 2


class ProviderError(RFSenseError):
    """The requested execution provider (e.g. CUDA) cannot be used on this machine."""


def cuda_device_usable() -> tuple[bool, str]:
    """Whether asking onnxruntime for CUDA can work here, without asking it (which logs errors when it can't).

    onnxruntime-gpu lists CUDAExecutionProvider on any machine (it describes the build, not the hardware),
    so also look for the CUDA driver library and, on Linux, an NVIDIA device node (or WSL's /dev/dxg).
    The session may still fall back to CPU (e.g. cuDNN missing); `make_session` checks what it really got.

    Returns:
        (usable, reason it is not; "" when usable).
    """
    if _CUDA not in ort.get_available_providers():
        return False, (
            f"this onnxruntime build ({ort.__version__}) has no {_CUDA}; install onnxruntime-gpu instead of onnxruntime"
        )
    libs = ("cuda", "nvcuda") if sys.platform == "win32" else ("cuda",)
    if not any(ctypes.util.find_library(name) for name in libs):
        return False, "no CUDA driver library (libcuda) found; is an NVIDIA driver installed?"
    if sys.platform.startswith("linux") and not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/dxg")):
        return False, "no NVIDIA GPU device node (/dev/nvidia0 ...) found"
    return True, ""


def _preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN from the NVIDIA pip wheels (``pip install 'onnxruntime-gpu[cuda,cudnn]'``) when they
    are installed: onnxruntime does not search there on its own (importing a matching torch first has the same
    effect). Best effort and quiet (it prints its own warnings): what the session really got is checked after."""
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime-gpu >= 1.21
    if preload is None:
        return
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            preload()
    except Exception as err:  # a failed preload only means the default library search applies
        _logger.debug("onnxruntime.preload_dlls() failed: %s", err)


def make_session(
    model: bytes | str | os.PathLike[str], *, providers: str = "cpu", threads: int | None = None,
    name: str = "", graph_optimization: bool = True, spinning: bool = False,
) -> ort.InferenceSession:
    """An InferenceSession on the requested providers.

    Args:
        model: the serialised model (hash-checked bytes) or its path. name: the file, for messages.
        providers: "auto" (CUDA when a device is really usable, else CPU), "cpu", or "cuda" (fail if CUDA
            cannot be used). threads: intra-op threads; None lets onnxruntime choose (one per physical core).
        spinning: let idle intra-op threads spin for work (onnxruntime's default). Off here: the runtime
            alternates numpy/scipy work with short graph runs, and threads spinning after each run take the
            cores that work needs (on 2 cores, batch 1: 62 ms instead of 19 ms per prediction, measured).

    Raises:
        ConfigError: bad providers/threads. ProviderError: CUDA requested but not usable or fell back.
        ModelFileError: onnxruntime cannot load the model.
    """
    if providers not in PROVIDER_CHOICES:
        raise ConfigError(f"providers must be one of {', '.join(PROVIDER_CHOICES)}; got {providers!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer or None; got {threads!r}")
    name = name or (str(model) if not isinstance(model, bytes) else "the model")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only from this session; the outcome is reported by the caller
    if threads is not None:
        opts.intra_op_num_threads = threads  # an explicit count also disables ORT's thread pinning
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if not graph_optimization:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want_cuda = False
    if providers in ("auto", "cuda"):
        usable, why = cuda_device_usable()
        if providers == "cuda" and not usable:
            raise ProviderError(f"CUDA was requested but cannot be used on this machine: {why}. Use providers 'cpu' or 'auto'")
        want_cuda = usable
        if providers == "auto" and not usable:
            _logger.debug("not asking for CUDA: %s", why)
    source = model if isinstance(model, bytes) else str(model)
    try:
        if not want_cuda:
            return ort.InferenceSession(source, opts, providers=[_CPU])
        # A failed CUDA provider load logs errors through the default logger and then silently falls
        # back to CPU; silence it for this one attempt and check what the session really got.
        _preload_cuda_libraries()
        ort.set_default_logger_severity(4)
        try:
            session = ort.InferenceSession(source, opts, providers=[_CUDA, _CPU])
        finally:
            ort.set_default_logger_severity(_ORT_DEFAULT_SEVERITY)
    except Exception as err:  # onnxruntime raises its own exception types for an invalid model
        hint = ""
        if Path(f"{name}.data").exists():
            hint = " (it has an external-data file beside it; the runtime needs a single-file model)"
        raise ModelFileError(f"onnxruntime could not load {name}{hint}: {err}") from None
    if _CUDA not in session.get_providers():
        msg = (
            f"CUDA looked usable but onnxruntime fell back to {session.get_providers()} (are the CUDA and cuDNN "
            f"libraries onnxruntime {ort.__version__} needs installed? `pip install onnxruntime-gpu[cuda,cudnn]`)"
        )
        if providers == "cuda":
            raise ProviderError(msg)
        _logger.warning("%s", msg)
    return session
