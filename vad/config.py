"""params.yaml -> validated values, with errors that name the bad key."""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Iterable
from difflib import get_close_matches
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


def check_all(*checks: Callable[[], Any]) -> list[Any]:
    """Call every check (a function of no arguments) and return their results; if any failed,
    raise one ConfigError with every failed check's message, one per line (so that a typo in a
    key and a bad value elsewhere are reported together)."""
    results, errors = [], []
    for check in checks:
        try:
            results.append(check())
        except ConfigError as error:
            errors.extend(line for line in str(error).splitlines() if line not in errors)
            results.append(None)
    if errors:
        raise ConfigError("\n".join(errors))
    return results


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

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError `params.yaml: '<section>.<key>' <message>` (for checks of a caller)."""
        return self._fail(key, message)

    def check_keys(self, known: Iterable[str]) -> None:
        """Refuse keys the section does not use (a typo such as `gmfc_vae.Kk` would otherwise be
        ignored silently); the error names each unknown key and the closest known one."""
        known = [str(key) for key in known]
        unknown = [str(key) for key in self.values if str(key) not in known]
        if not unknown:
            return
        described = []
        for key in unknown:
            close = get_close_matches(key, known, n=1) or [
                name for name in known if name.lower() == key.lower()
            ]
            hint = f" (did you mean '{self.name}.{close[0]}'?)" if close else ""
            described.append(f"'{self.name}.{key}'{hint}")
        raise ConfigError(
            f"params.yaml: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(described)}; "
            f"'{self.name}' takes {', '.join(known)}"
        )

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

    def float(
        self,
        key: str,
        minimum: float | None = None,
        default: Any = None,
        above: float | None = None,
    ) -> float:
        """A finite number, >= `minimum` and > `above` where given."""
        value = self._get(key, _REQUIRED if default is None else default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise self._fail(key, f"must be a finite number, got {value}")
        if minimum is not None and value < minimum:
            raise self._fail(key, f"must be >= {minimum}, got {value}")
        if above is not None and value <= above:
            raise self._fail(key, f"must be > {above}, got {value}")
        return float(value)

    def bool(self, key: str, default: Any = None) -> bool:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false, got {value!r}")
        return value

    def numbers(
        self, key: str, length: int, kind: type = builtins.int, minimum: float = 0, names: str = ""
    ) -> list | None:
        """Null (None), or a list of `length` numbers of `kind` (int: integers only; float:
        any number) each >= `minimum`; `names` describes the positions in the error, e.g.
        "[autoencoder, glow]"."""
        value = self.values.get(key)
        if value is None:
            return None
        wanted = (int,) if kind is int else (int, float)
        if (
            not isinstance(value, list)
            or len(value) != length
            or not all(isinstance(v, wanted) and not isinstance(v, bool) for v in value)
            or any(v < minimum for v in value)
        ):
            what = "integers" if kind is int else "numbers"
            names = f" {names}" if names else ""
            raise self._fail(
                key, f"must be null or a list of {length} {what} >= {minimum}{names}, got {value!r}"
            )
        return [kind(v) for v in value]

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
