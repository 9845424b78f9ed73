"""Typed run configuration: dataclass defaults, then YAML, then `--set a.b=c` overrides.

Unknown keys and wrongly typed values are errors that name the key and the allowed ones.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rfsense.data.layout import SplitSpec
from rfsense.data.preprocess import PreprocessConfig
from rfsense.errors import ConfigError, RFSenseError
from rfsense.train.dagr import DagrConfig

__all__ = ["DataConfig", "RunConfig", "TrainConfig", "apply_overrides", "load_config", "to_dict"]


@dataclass(frozen=True)
class DataConfig:
    root: str = "data/XRF55"  # the XRF55 tree (any of the three layouts) or a synthetic one
    pack_dir: str | None = None  # None: <root>.packs/<settings digest>
    pack_dtype: str = "float16"  # halves disk and read bandwidth; values are O(1) after preprocessing
    split: SplitSpec = SplitSpec()
    preprocessing: PreprocessConfig = PreprocessConfig()


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 16  # X-Fi's batch size
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0
    seed: int = 0
    # Per-sample modality keep probabilities (X-Fi: mmWave 0.5, WiFi 0.9, RFID 0.6); empty draws are redrawn.
    keep_prob: tuple[float, float, float] = (0.5, 0.9, 0.6)
    pairing: str = "none"  # "none" | "dml" (same-class re-pairing per modality, DML paper §3.3)
    # Weight of the per-modality (unimodal head) cross-entropy added to the fused one; 0 turns it off.
    unimodal_weight: float = 0.5
    # Random shift of each sample by up to this fraction of the 5 s window (0: off). Off by default: the
    # encoders see mmWave's 17 frames as channels, and shifting them stopped the mmWave encoder from
    # fitting at all on small sets (tiny set, seed 1: R 25% with 0.1, 54% with 0).
    time_shift: float = 0.0
    val_fraction: float = 0.1  # held out of the training split to pick best.pt (never the test split)
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    eval_batch_size: int = 32
    log_every: int = 20  # steps between progress lines


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    out_dir: str = "runs"
    data: DataConfig = DataConfig()
    model: dict = field(default_factory=lambda: {"preset": "edge"})  # validated by rfsense.models
    train: TrainConfig = TrainConfig()
    dagr: DagrConfig = DagrConfig()

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; the YAML-facing subset of typing only."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        if hasattr(tp, "from_dict"):
            try:
                return tp.from_dict(value)
            except RFSenseError as err:
                raise ConfigError(f"{key}: {err}") from None
        return _from_dict(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def _from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"unknown key '{full}'; allowed: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], full)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{prefix or cls.__name__}: {err}") from None


def to_dict(obj: Any) -> Any:
    """Plain data (dicts, lists, numbers, strings) for YAML/JSON/checkpoints."""
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


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
    """Validate a plain tree into a RunConfig (model keys checked by rfsense.models)."""
    cfg = _from_dict(RunConfig, tree)
    from rfsense.models import (
        model_config_from_dict,  # torch layer; imported here to keep config import light
    )

    try:
        model_config_from_dict(dict(cfg.model))
    except RFSenseError as err:
        raise ConfigError(str(err) if "model." in str(err) else f"model: {err}") from None
    if cfg.train.pairing not in ("none", "dml"):
        raise ConfigError(f"train.pairing: '{cfg.train.pairing}'; allowed: none, dml")
    if cfg.train.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"train.device: '{cfg.train.device}'; allowed: auto, cpu, cuda")
    if cfg.train.unimodal_weight < 0:
        raise ConfigError(f"train.unimodal_weight: {cfg.train.unimodal_weight}; expected >= 0")
    if not all(0.0 <= p <= 1.0 for p in cfg.train.keep_prob) or not any(cfg.train.keep_prob):
        raise ConfigError(f"train.keep_prob: {cfg.train.keep_prob}; each in [0, 1], not all 0")
    return cfg


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] = ()) -> RunConfig:
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
