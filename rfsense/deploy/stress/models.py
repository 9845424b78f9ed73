"""The models a stress run compares, behind one small interface.

An exported `.onnx` runs through the torch-free runtime, as in the field; a run folder runs the PyTorch model
(needed for the paper's feature-level `dropout`, which masks encoder tokens). Both apply their own quality
rule and preprocessing (the settings they were trained with), so each model sees the corrupted streams as
its deployment would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rfsense.data.preprocess import PreprocessConfig, preprocess
from rfsense.data.quality import Assessment, QualityConfig, assess
from rfsense.errors import ConfigError, ModelFileError
from rfsense.modalities import MODALITIES

__all__ = ["StressModel", "load_stress_model"]


@dataclass
class StressModel:
    """One model under test.

    name: a label for tables (the file or folder name, made unique by the caller).
    raw_std: s(m) per modality (the gaussian fault's scale), or None where the model's records lack it.
    """

    name: str
    source: str
    class_names: list[str]
    preprocessing: PreprocessConfig
    quality: QualityConfig
    raw_std: dict[str, float] | None
    _logits: Any
    _torch: Any = None  # (model, torch) for run folders: feature-level faults
    _screen: Any = None  # the runtime's checks of preprocessed rows (exports); None: no such checks

    @property
    def supports_features(self) -> bool:
        return self._torch is not None

    def check(self, modality: str, raw: np.ndarray) -> Assessment:
        """The model's quality rule on raw streams (repair, statuses)."""
        return assess(modality, raw, self.quality)  # type: ignore[arg-type]

    def prepare(self, modality: str, x: np.ndarray) -> np.ndarray:
        """The model's preprocessing; NaN/Inf are not hidden (the health-off path relies on it)."""
        with np.errstate(all="ignore"):
            return preprocess(modality, x, self.preprocessing)

    def screen(self, modality: str, feeds: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """(n,) bool: the `usable` rows the runtime masks after preprocessing (non-finite, or the distribution
        check of an rfsense-onnx/2 export: implausible). All False for run folders, which record no statistics."""
        out = np.zeros(len(feeds), dtype=bool)
        if self._screen is not None and usable.any():
            out[usable] = [v is not None for v in self._screen(modality, feeds[usable])]
        return out

    def logits(self, feeds: dict[str, np.ndarray], present: np.ndarray) -> np.ndarray:
        """(B, C) logits for preprocessed feeds (absent rows may hold anything) under `present` (B, 3)."""
        return self._logits(feeds, present)

    def logits_with_token_mask(self, feeds: dict[str, np.ndarray], present: np.ndarray, modality: str,
                               mask: np.ndarray) -> np.ndarray:
        """Logits with `mask` (B, n_tokens * d, True = masked) zeroing features of one modality's encoder output."""
        if self._torch is None:
            raise ConfigError(f"{self.name}: feature-level faults need the PyTorch model; give its run folder")
        model, torch = self._torch
        j = MODALITIES.index(modality)
        with torch.no_grad():
            x = [torch.from_numpy(np.nan_to_num(feeds[m], nan=0.0, posinf=0.0, neginf=0.0)) for m in MODALITIES]
            p = torch.from_numpy(present)
            tokens, _ = model.encode(*x, p)
            t = tokens[:, j].reshape(len(present), -1)
            t = torch.where(torch.from_numpy(mask), torch.zeros((), dtype=t.dtype), t)
            tokens = tokens.clone()
            tokens[:, j] = t.reshape(tokens[:, j].shape)
            return model.fuse(tokens, p).float().numpy()

    def token_features(self) -> int:
        model, _ = self._torch
        return int(model.config.n_tokens * model.config.d)


def _onnx(path: Path, threads: int | None) -> StressModel:
    from rfsense.deploy.runtime import Runtime

    # numpy kernels: the stress suite preprocesses with them anyway, and its numbers must not depend on when a
    # background compile finished (the compiled ones agree to float rounding; measured: no faster on the demo run)
    rt = Runtime(path, providers="cpu", threads=threads, kernels="numpy")
    raw_std = rt.manifest.get("raw_std")
    return StressModel(path.stem, str(path), rt.class_names, rt.preprocessing, rt.health, raw_std,
                       lambda feeds, present: rt.logits(feeds, present), _screen=rt.screen)


def _run_folder(path: Path, threads: int | None) -> StressModel:
    try:
        import torch
    except ImportError as err:
        raise ConfigError(f"{path} is a run folder, which needs the 'train' extra (torch): pip install 'rfsense[train]'; "
                          "or give its exported .onnx") from err
    from rfsense.data.classes import CLASS_NAMES
    from rfsense.train.rundir import load_run_model, open_run_pack, resolve_run

    if threads:
        torch.set_num_threads(threads)
    run = resolve_run(path)
    model, cfg = load_run_model(run, "best")
    pack = open_run_pack(cfg)

    def logits(feeds: dict[str, np.ndarray], present: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = [torch.from_numpy(np.ascontiguousarray(feeds[m], dtype=np.float32)) for m in MODALITIES]
            return model(*x, torch.from_numpy(present)).float().numpy()

    return StressModel(path.name, str(path), list(CLASS_NAMES[: model.config.n_classes]), cfg.data.preprocessing,
                       cfg.data.quality, pack.meta.get("raw_std"), logits, (model, torch))


def load_stress_model(path: str | os.PathLike[str], threads: int | None = None) -> StressModel:
    """An exported model (`X.onnx` with its manifest) or a trained run folder.

    Raises:
        ModelFileError / ConfigError: not a model or run folder, or what loading it refuses.
    """
    path = Path(path)
    if path.is_dir():
        return _run_folder(path, threads)
    if path.suffix == ".onnx":
        return _onnx(path, threads)
    raise ModelFileError(f"{path}: expected an exported .onnx (with its manifest) or a trained run folder")
