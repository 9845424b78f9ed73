"""What each `train.stage` trains: the joint recipe and X-Fi's two-stage protocol.

- ``joint`` (default): encoders, fusion and head end to end; DAGR's θ_e are the encoders.
- ``backbones`` (X-Fi stage 1): every modality's encoder is trained on its own with its own linear
  classifier (the model's unimodal heads): every usable modality is present in every sample and the loss
  is the mean of the per-modality cross-entropies, so no encoder's gradient depends on another modality
  (the same as training three single-modality models). Fusion and head are not trained; the run is
  scored with the unimodal heads averaged over each subset (decision-level fusion). DAGR is off: its
  anchoring needs two modalities of one sample in one model, and X-Fi trains its backbones separately.
- ``fusion`` (X-Fi stage 2): the encoders of a finished ``backbones`` run are loaded and their feature
  extractors (stem + trunk) frozen; the projectors (1x1 conv, Linear over the token axis, LayerNorm;
  X-Fi's ``linear_projector``), the fusion and the head train. With frozen backbones DAGR's encoder
  parameters θ_e (Eq. 9) are the projectors: they are the trainable part of the map to z, so that is
  where α* is computed and the geometric gradient goes (without them DAGR would change nothing).
  The projectors start from their stage-1 values (X-Fi initialises its projector afresh).
- ``xfi``: both in order, stage 1 into ``RUN/backbones/``, stage 2 into ``RUN`` itself
  (``train.backbones_lr`` / ``train.backbones_epochs`` set stage 1's learning rate and length).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rfsense.errors import ConfigError
from rfsense.train.config import RunConfig
from rfsense.train.rundir import load_run_config, load_run_model

__all__ = ["backbones_config", "fit_two_stage", "prepare_stage", "unimodal_loss"]

_logger = logging.getLogger(__name__)


def unimodal_loss(model: torch.nn.Module, z: torch.Tensor, present: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each present modality's own linear head on its pooled z (B, 3, d)."""
    uni = model.unimodal_logits(z).float()  # (B, 3, C)
    k = uni.shape[1]
    per = F.cross_entropy(uni.flatten(0, 1), y.repeat_interleave(k, dim=0), reduction="none").view(-1, k)
    return (per * present).sum() / present.sum().clamp_min(1)


def load_backbones(model: torch.nn.Module, run_dir: str | Path) -> None:
    """Copy the encoders (and their input normalisation) of a finished backbones-stage run into `model`.

    Raises:
        ConfigError: the folder is not a backbones-stage run, has no best.pt, or its encoders differ in shape.
    """
    run_dir = Path(run_dir)
    try:
        saved_cfg = load_run_config(run_dir)
        source, _ = load_run_model(run_dir, "best")
    except Exception as err:  # DataError / ModelFileError with their own message
        raise ConfigError(f"train.backbones: {err}") from None
    if saved_cfg.train.stage != "backbones":
        raise ConfigError(f"train.backbones: {run_dir} is a {saved_cfg.train.stage!r} run; expected a backbones-stage run")
    try:
        model.encoders.load_state_dict(source.encoders.state_dict())
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise ConfigError(f"train.backbones: the encoders of {run_dir} do not match this model ({first})") from None


def prepare_stage(model: torch.nn.Module, cfg: RunConfig) -> list[torch.nn.Parameter]:
    """Load and freeze what `cfg.train.stage` asks for; returns the parameters the optimiser trains."""
    if cfg.train.stage == "fusion":
        assert cfg.train.backbones is not None  # the config refuses stage fusion without it
        load_backbones(model, cfg.train.backbones)
        for p in model.backbone_parameters():
            p.requires_grad_(False)
    if cfg.train.stage == "backbones":  # only the encoders and their unimodal heads get a gradient
        return [*model.encoder_parameters(), *model.unimodal_heads.parameters()]
    return [p for p in model.parameters() if p.requires_grad]


def backbones_config(cfg: RunConfig) -> RunConfig:
    """Stage 1 of the `xfi` protocol: the same run config with stage backbones and its own lr / epochs."""
    tc = cfg.train
    train = dataclasses.replace(
        tc, stage="backbones", lr=tc.backbones_lr or tc.lr, epochs=tc.backbones_epochs or tc.epochs,
        backbones_lr=None, backbones_epochs=None,
    )
    return dataclasses.replace(cfg, train=train)


def fit_two_stage(cfg: RunConfig, run_dir: Path, data: Any, resume: bool, stop_after: int | None) -> dict[str, Any]:
    """Stage 1 into run_dir/backbones, then stage 2 (fusion on the frozen backbones) into run_dir itself.

    `fit` has already checked run_dir and written its config.yaml (stage xfi); resuming continues
    whichever stage was unfinished.
    """
    from rfsense.train.loop import fit, train_run  # loop imports this module

    (run_dir / "metrics.jsonl").touch()  # run_dir counts as a run folder (for --overwrite) from the start
    stage1_dir = run_dir / "backbones"
    if not (resume and (stage1_dir / "results.json").is_file()):
        _logger.info("X-Fi protocol, stage 1 of 2: backbones alone -> %s", stage1_dir)
        fit(backbones_config(cfg), run_dir=stage1_dir, resume=resume and stage1_dir.exists(), stop_after=stop_after)
        if stop_after is not None and not (stage1_dir / "results.json").is_file():
            return {}
    _logger.info("X-Fi protocol, stage 2 of 2: projectors + fusion on the frozen backbones -> %s", run_dir)
    train = dataclasses.replace(cfg.train, stage="fusion", backbones=str(stage1_dir), backbones_lr=None,
                                backbones_epochs=None)
    stage2 = dataclasses.replace(cfg, train=train)
    return train_run(stage2, run_dir, data, resume=resume and (run_dir / "last.pt").is_file(), stop_after=stop_after)
