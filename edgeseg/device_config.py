"""Per-board runtime settings: backend, providers, threads, thresholds.

A device config is a YAML (or JSON) file, one per board under
``device_configs/``. It is parsed into frozen dataclasses here with clear
errors for unknown keys, wrong types and impossible values, each naming the
key and the file. Defaults are declared once, on the dataclasses.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class ConfigError(ValueError):
    """A device config that is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class ProviderSpec:
    """One ONNX Runtime execution provider and its provider options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendOptions:
    """How to run the model on this board.

    Attributes:
        threads: Intra-op threads (0 lets the backend choose).
        graph_optimization: ONNX Runtime graph optimization level.
        providers: ONNX Runtime execution providers in priority order; CPU is
            always appended as the last resort.
        xnnpack: Use the XNNPACK delegate for TFLite bundles.
    """

    threads: int = 0
    graph_optimization: str = "all"
    providers: tuple[ProviderSpec, ...] = (ProviderSpec("CPUExecutionProvider"),)
    xnnpack: bool = True

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ConfigError(f"backend.threads must be >= 0, got {self.threads}")
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ConfigError(
                f"backend.graph_optimization must be one of {list(GRAPH_OPTIMIZATION_LEVELS)}, "
                f"got {self.graph_optimization!r}"
            )
        if not self.providers:
            raise ConfigError("backend.providers must name at least one execution provider")


@dataclass(frozen=True)
class DeviceConfig:
    """Settings of one board.

    Attributes:
        name: Board name (e.g. ``jetson-orin-nano``).
        backend: Backend options.
    """

    name: str = "default"
    backend: BackendOptions = field(default_factory=BackendOptions)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Converts parsed YAML ``value`` to annotation ``tp``, or raises ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}")
        item = args[0]
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{where} must be {_type_name(tp)}, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {tp}")


def from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Builds dataclass ``cls`` from a mapping, rejecting unknown keys.

    Raises:
        ConfigError: naming the offending key path (``where.key``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {unknown}; allowed: {sorted(names)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_device_config(path: str | os.PathLike) -> DeviceConfig:
    """Reads and validates a device config file (YAML or JSON).

    Raises:
        ConfigError: naming the file and the key that is wrong.
    """
    import yaml  # runtime dependency; imported here to keep `import edgeseg` light

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"device config {p} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"device config {p} is not valid YAML: {exc}") from None
    try:
        return from_dict(DeviceConfig, data or {}, "config")
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
