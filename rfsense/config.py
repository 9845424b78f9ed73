"""Typed, validated configuration objects: one helper for every config in rfsense (no torch).

Every config is a frozen dataclass declared with `@schema`; value rules are declarations in the type
(`lr: PositiveFloat`, `keep_prob: tuple[Fraction, Fraction, Fraction]`), checked on construction and by
`dataclasses.replace`. `from_data(cls, data, "train")` turns plain data (YAML, JSON, a checkpoint) into one,
and any problem becomes one `ConfigError` line naming the key: "unknown key 'train.lrr'; allowed: ...",
"train.lr: must be greater than 0, got -1". `to_data(obj)` is the one way back to JSON-safe plain data
(dicts, lists, finite numbers, strings; NaN/Inf become None), used for configs and results alike.

Why pydantic (v2 dataclasses) rather than OmegaConf or a sixth hand-written parser: pydantic checks
ranges and finiteness declaratively (`Field(gt=0)`, `allow_inf_nan=False`), reports every error with its
location, coerces what YAML gives (lists -> tuples, ints -> floats, "1e-3" -> 0.001) while the strict types
below refuse silent surprises (1.5 epochs, "yes" for a bool), and ships pure-Python + aarch64 wheels, so
the edge runtime can depend on it. OmegaConf's structured configs merge YAML and dot-lists well but check
types only, not value ranges, so every range check would again be hand-written code.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import ConfigDict, Field, StrictBool, StrictInt, StrictStr, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from rfsense.errors import ConfigError

__all__ = [
    "Fraction",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "StrictBool",
    "StrictInt",
    "StrictStr",
    "from_data",
    "schema",
    "to_data",
]

T = TypeVar("T")

# Unknown keys are errors; NaN/Inf are never valid numbers in a config.
_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]


def schema(cls: type[T]) -> type[T]:
    """Declare a frozen, validated config dataclass (unknown keys and NaN/Inf refused)."""
    return _pydantic_dataclass(frozen=True, config=_CONFIG)(cls)  # type: ignore[return-value]


def _fields_at(cls: Any, loc: tuple[Any, ...]) -> list[str] | None:
    """Field names of the dataclass reached from `cls` by following the keys of `loc` (None if not one)."""
    for key in loc:
        if not dataclasses.is_dataclass(cls):
            return None
        hints = {f.name: f.type for f in dataclasses.fields(cls)}
        nxt = hints.get(key)
        if nxt is None:
            return None
        cls = _dataclass_in(nxt, cls)
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else None


def _dataclass_in(annotation: Any, owner: Any) -> Any:
    """The dataclass an annotation names (string annotations resolved in the owner's module)."""
    if isinstance(annotation, str):
        import sys

        annotation = vars(sys.modules[owner.__module__]).get(annotation.split("|")[0].strip(), annotation)
    return annotation


def _message(err: dict[str, Any], cls: type, prefix: str) -> str:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(loc))
    if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        allowed = _fields_at(cls, loc[:-1])
        return f"unknown key '{where}'" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    got = err.get("input")
    msg = err["msg"][0].lower() + err["msg"][1:]
    msg = msg.replace("input should be", "must be").replace("value error, ", "")
    quiet = err["type"] in ("missing", "value_error") or isinstance(got, Mapping)  # value errors say it themselves
    shown = "" if quiet else f", got {got!r}"
    return f"{where or cls.__name__}: {msg}{shown}"


def from_data(cls: type[T], data: Any, prefix: str = "") -> T:
    """Validate plain data (a mapping, possibly nested) into the config dataclass `cls`.

    Args:
        cls: a `@schema` dataclass. data: its fields as plain data; missing keys keep their defaults.
        prefix: dotted location of `data` in a larger config, used in messages (e.g. "train").

    Raises:
        ConfigError: one line naming every key that is unknown or has a bad value.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping of keys, got {data!r}")
    try:
        return TypeAdapter(cls).validate_python(dict(data))
    except ValidationError as err:
        raise ConfigError("; ".join(_message(e, cls, prefix) for e in err.errors())) from None


def to_data(obj: Any) -> Any:
    """Plain JSON-safe data: dataclasses -> dicts, tuples -> lists, numpy scalars/arrays -> Python, NaN/Inf -> None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_data(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
