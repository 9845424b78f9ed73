"""Name -> preset-builder registry for model configs (torchvision/timm style, private).

A preset is a zero-argument function returning a ``ModelConfig``; ``@register_preset`` files it under
its function name. ``rfsense/models/__init__.py`` imports ``presets`` so the registry is full before
anyone looks a name up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from rfsense.errors import ConfigError

if TYPE_CHECKING:
    from rfsense.models.presets import ModelConfig

__all__ = ["get_preset", "list_presets", "register_preset"]

PresetFn = Callable[[], "ModelConfig"]
F = TypeVar("F", bound=PresetFn)

_PRESETS: dict[str, PresetFn] = {}


def register_preset(fn: F) -> F:
    """Decorator: register ``fn`` under ``fn.__name__``; a name that is already taken is an error."""
    name = fn.__name__
    if name in _PRESETS:
        raise ValueError(f"preset {name!r} is already registered ({_PRESETS[name].__module__})")
    _PRESETS[name] = fn
    return fn


def list_presets() -> list[str]:
    """Registered preset names, sorted."""
    return sorted(_PRESETS)


def get_preset(name: str) -> ModelConfig:
    """The ``ModelConfig`` of preset ``name``; ConfigError listing the choices when unknown."""
    try:
        fn = _PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(list_presets())}") from None
    return fn()
