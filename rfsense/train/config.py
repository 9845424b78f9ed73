"""Typed run configuration: dataclass defaults, then YAML, then `--set a.b=c` overrides.

Schemas are declared with `rfsense.config.schema` (pydantic dataclasses): unknown keys and bad values
are one-line errors that name the key (and the allowed ones). Importing this module never imports torch,
so `rfsense data pack --config` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator

from rfsense.config import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    StrictBool,
    StrictStr,
    from_data,
    schema,
    to_data,
)
from rfsense.data.layout import SplitSpec
from rfsense.data.preprocess import PreprocessConfig
from rfsense.data.quality import QualityConfig
from rfsense.errors import ConfigError
from rfsense.models.presets import ModelConfig, model_config
from rfsense.train.faults import FaultTraining

__all__ = [
    "DagrConfig",
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_tree",
    "config_tree",
    "load_config",
]

NonEmpty = Annotated[StrictStr, Field(min_length=1)]


@schema
class DataConfig:
    root: NonEmpty = "data/XRF55"  # the XRF55 tree (any of the three layouts) or a synthetic one
    pack_dir: NonEmpty | None = None  # None: <root>.packs/<settings digest>
    pack_dtype: Literal["float16", "float32"] = "float16"  # halves disk and read bandwidth; values are O(1)
    split: SplitSpec = SplitSpec()
    preprocessing: PreprocessConfig = PreprocessConfig()
    quality: QualityConfig = QualityConfig()  # which samples are usable: the same rule as the runtime's
    pack_workers: PositiveInt | None = None  # processes packing on first use (None: min(4, cores)); same bytes


@schema
class TrainConfig:
    epochs: PositiveInt = 30
    batch_size: PositiveInt = 16  # X-Fi's batch size
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.01
    warmup_epochs: NonNegativeFloat = 1.0
    grad_clip: NonNegativeFloat = 1.0  # 0 turns clipping off
    seed: NonNegativeInt = 0
    # Modality keep probabilities (X-Fi: mmWave 0.5, WiFi 0.9, RFID 0.6); empty draws are redrawn.
    keep_prob: Annotated[tuple[Fraction, ...], Field(min_length=3, max_length=3)] = (0.5, 0.9, 0.6)
    # "per_sample": every sample draws its own subset, so every batch mixes subsets (the default: on the
    # medium synthetic set, 3 seeds, 70.0 +- 1.9 % mean over the 7 subsets against 66.3 +- 0.9 for
    # per_batch; benchmarks/RESULTS.md, learning). "per_batch": one subset for the whole batch, as X-Fi draws
    # it; the encoders of absent modalities are skipped, so a step costs about half (edge, CPU).
    presence: Literal["per_sample", "per_batch"] = "per_sample"
    # "joint": encoders, fusion and head end to end (the default). X-Fi's two-stage protocol: "backbones"
    # trains each modality's encoder alone with its own classifier; "fusion" loads the encoders of the
    # finished `backbones` run, freezes their feature extractors and trains projectors + fusion + head
    # (DAGR's theta_e are then the projectors); "xfi" runs both in order (RUN/backbones/, then RUN).
    stage: Literal["joint", "backbones", "fusion", "xfi"] = "joint"
    backbones: NonEmpty | None = None  # run folder of a finished "backbones" stage (stage "fusion" only)
    backbones_lr: PositiveFloat | None = None  # stage "xfi": stage 1's learning rate (None: lr)
    backbones_epochs: PositiveInt | None = None  # stage "xfi": stage 1's epochs (None: epochs)
    pairing: Literal["none", "dml"] = "none"  # "dml": same-class re-pairing per modality (DML paper §3.3)
    # Weight of the per-modality (unimodal head) cross-entropy added to the fused one; 0 turns it off.
    unimodal_weight: NonNegativeFloat = 0.5
    # Random shift of each sample by up to this fraction of the 5 s window (0: off). Off by default: the
    # encoders see mmWave's 17 frames as channels, and shifting them stopped the mmWave encoder from
    # fitting at all on small sets (tiny set, seed 1: R 25% with 0.1, 54% with 0).
    time_shift: Annotated[float, Field(ge=0, lt=1)] = 0.0
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1  # held out of train to pick best.pt (never test)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: StrictBool = True  # bf16 autocast on CUDA; ignored on the CPU
    threads: PositiveInt | None = None  # torch CPU threads; None leaves torch's default
    eval_batch_size: PositiveInt = 32
    log_every: NonNegativeInt = 20  # steps between progress lines; 0: none
    # Fault-aware training (off while `names` is empty): corrupt a share of each batch with field faults'
    # preprocessed variants (rfsense/train/faults.py).
    faults: FaultTraining = FaultTraining()
    prefetch: NonNegativeInt = 2  # batches read ahead by background threads while one trains; 0: read in the loop

    def __post_init__(self) -> None:
        if not any(self.keep_prob):
            raise ValueError("keep_prob: at least one modality needs a keep probability above 0")
        if self.stage == "fusion" and self.backbones is None:
            raise ValueError("stage fusion needs backbones: the run folder of a finished backbones stage")
        if self.stage != "fusion" and self.backbones is not None:
            raise ValueError(f"backbones is only read by stage fusion, not by stage {self.stage}")
        if self.stage != "xfi" and (self.backbones_lr is not None or self.backbones_epochs is not None):
            raise ValueError("backbones_lr and backbones_epochs are only read by stage xfi")


@schema
class DagrConfig:
    """DAGR settings. beta and tau follow the paper's sensitivity study (App. C.1 sweeps beta in
    {0.1, 0.15, 0.2} and tau in {0, 0.25, 0.5}); the paper gives no value for t (rfsense's choice,
    swept in benchmarks/RESULTS.md)."""

    enabled: StrictBool = True
    mode: Literal["pareto", "fixed"] = "pareto"  # "pareto": Eq. 10-11, the paper's default; "fixed": Eq. 8
    # "params": alpha* from the gradients on the encoder parameters (Eq. 9-10, faithful); "embeddings": from
    # the gradients on z, an approximation (nearly free; alpha* differs, see benchmarks/RESULTS.md).
    pareto_space: Literal["params", "embeddings"] = "params"
    t: PositiveFloat = 2.0  # RBF temperature of the dispersion kernel (Eq. 6); not given by the paper
    tau: NonNegativeFloat = 0.25  # agreement-band radius on the unit sphere (Eq. 7); C.1 sweeps {0, 0.25, 0.5}
    beta: NonNegativeFloat = 0.1  # total geometric weight in pareto mode (Eq. 11); C.1 sweeps {0.1, 0.15, 0.2}
    lambda_d: NonNegativeFloat = 0.1  # fixed-mode weight of L_d
    lambda_a: NonNegativeFloat = 0.1  # fixed-mode weight of L_a
    # Under torchrun, L_d and L_a see the whole global batch through a differentiable all-gather of z, as
    # one process would; False: each rank's own rows (the mean of per-rank losses: fewer dispersion pairs).
    global_batch: StrictBool = True


@schema
class RunConfig:
    name: NonEmpty = "run"  # one plain folder name: the run folder is out_dir/name
    out_dir: NonEmpty = "runs"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()  # in YAML, `preset:` picks the starting sizes; other keys override
    train: TrainConfig = TrainConfig()
    dagr: DagrConfig = DagrConfig()

    @field_validator("name")
    @classmethod
    def _one_component(cls, v: str) -> str:
        # --overwrite deletes out_dir/name: ".." or an absolute path would point outside out_dir.
        if v in (".", "..") or PurePath(v).name != v or "/" in v or "\\" in v:
            raise ValueError(f"must be one plain folder name (no '/', '..' or absolute path), got {v!r}")
        return v

    @field_validator("model", mode="before")
    @classmethod
    def _preset_then_overrides(cls, v: Any) -> Any:
        return model_config(v) if isinstance(v, dict) else v

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: '{p}' is not a section")
        node = nxt
    node[parts[-1]] = value


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply `a.b=c` strings (c parsed with yaml.safe_load) to a plain config tree."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {key}: cannot parse {raw!r} ({err.problem})") from None
        _set_path(tree, key.strip(), value)
    return tree


def config_from_tree(tree: dict) -> RunConfig:
    """Validate a plain tree (YAML, a run folder's config.yaml) into a RunConfig."""
    return from_data(RunConfig, tree)


def config_tree(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as plain data (what a run folder's config.yaml holds)."""
    return to_data(cfg)


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Defaults, then the YAML file at `path` (if any), then `overrides`."""
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    return config_from_tree(apply_overrides(tree, list(overrides)))
