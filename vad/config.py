"""params.yaml -> validated values, with errors that name the bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(ValueError):
    """A missing or invalid setting in params.yaml; the message names the key."""


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: parameter file not found (run from the repository root)")
    with open(path) as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return params


class Section:
    """Typed access to one section of params.yaml, e.g. `Section(params, "flow").str("method")`."""

    def __init__(self, params: dict, name: str):
        self.name = name
        value = params
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ConfigError(f"params.yaml: missing section '{name}'")
            value = value[part]
        if not isinstance(value, dict):
            raise ConfigError(f"params.yaml: '{name}' must be a mapping")
        self.values: dict = value

    def _get(self, key: str, default: Any) -> Any:
        if key in self.values:
            return self.values[key]
        if default is _REQUIRED:
            raise ConfigError(f"params.yaml: missing key '{self.name}.{key}'")
        return default

    def _fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"params.yaml: '{self.name}.{key}' {message}")

    def str(self, key: str, choices: list[str] | None = None, default: Any = None) -> str:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, str):
            raise self._fail(key, f"must be a string, got {value!r}")
        if choices is not None and value not in choices:
            raise self._fail(key, f"must be one of {choices}, got {value!r}")
        return value

    def int(self, key: str, minimum: int | None = None, default: Any = None) -> int:
        value = self._get(key, _REQUIRED if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self._fail(key, f"must be >= {minimum}, got {value}")
        return value

    def float(self, key: str, minimum: float | None = None, default: Any = None) -> float:
        value = self._get(key, _REQUIRED if default is None else default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, f"must be a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise self._fail(key, f"must be >= {minimum}, got {value}")
        return float(value)

    def size(self, key: str, allow_none: bool = False) -> tuple[int, int] | None:
        """A [width, height] pair of positive integers (or null when allowed)."""
        value = self._get(key, None if allow_none else _REQUIRED)
        if value is None and allow_none:
            return None
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            raise self._fail(key, f"must be [width, height] positive integers, got {value!r}")
        return int(value[0]), int(value[1])

    def mapping(self, key: str) -> dict:
        value = self._get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, f"must be a mapping, got {value!r}")
        return dict(value)


_REQUIRED = object()
