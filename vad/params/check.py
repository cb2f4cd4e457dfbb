"""`python -m vad check-params`: all of params.yaml at once, in about a second, before DVC runs
anything (`make repro` and `make benchmark` run it first).

Every section's own check (vad.params.*, the same functions the stages call), `methods`, the
`settings` of every registered method (the `settings` stage resolves them all, enabled or not),
`fuse` and `evaluate`; and no top-level key that nothing reads. Each check reports its first
error, and every failing check is reported, not only the first one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from vad.config import ConfigError, load_params
from vad.fusion import fuse_settings
from vad.methods.registry import enabled_methods, get_method, method_names
from vad.params.data import data_settings, frames_settings
from vad.params.dynamic_flow import dynamic_flow_settings
from vad.params.evaluate import evaluate_settings
from vad.params.flow import flow_settings
from vad.params.objects import objects_settings
from vad.params.parallel import parallel_settings
from vad.params.serve import serve_settings
from vad.params.stc import stc_settings

SHARED_SECTIONS = (
    "methods", "data", "frames", "parallel", "flow", "dynamic_flow", "objects", "stc", "fuse",
    "evaluate", "serve",
)


def method_sections(name: str) -> tuple[str, ...]:
    """The params.yaml sections a registered method's `settings` reads."""
    return get_method(name).sections or (name,)


def check_sections(params: dict) -> None:
    """Refuse a top-level key that no stage and no registered method reads."""
    known = list(SHARED_SECTIONS)
    for name in method_names():
        known.extend(section for section in method_sections(name) if section not in known)
    unknown = [str(key) for key in params if key not in known]
    if unknown:
        raise ConfigError(
            f"params.yaml: unknown section{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(key) for key in unknown)}; known: {', '.join(known)}"
        )


def check_params(params: dict) -> list[str]:
    """Every error of `params` (a loaded params.yaml), one message each; [] when valid."""
    checks: list[tuple[str, Callable[[], object]]] = [
        ("methods", lambda: enabled_methods(params)),
        ("sections", lambda: check_sections(params)),
        ("data", lambda: data_settings(params)),
        ("frames", lambda: frames_settings(params)),
        ("parallel", lambda: parallel_settings(params)),
        ("flow", lambda: flow_settings(params)),
        ("dynamic_flow", lambda: dynamic_flow_settings(params)),
        ("objects", lambda: objects_settings(params)),
        ("stc", lambda: stc_settings(params)),
    ]
    checks += [
        (name, lambda name=name: get_method(name).settings(params)) for name in method_names()
    ]
    checks += [
        ("fuse", lambda: fuse_settings(params, method_names())),
        ("evaluate", lambda: evaluate_settings(params)),
        ("serve", lambda: serve_settings(params)),
    ]
    errors: list[str] = []
    for _, check in checks:
        try:
            check()
        except ConfigError as error:  # one message a line; the two GMFC-VAE streams share
            errors.extend(line for line in str(error).splitlines() if line not in errors)
    return errors


def with_overrides(params: dict, overrides: dict[str, object]) -> dict:
    """A copy of `params` with `dvc exp run -S key.sub=value` overrides applied."""
    result = copy.deepcopy(params)
    for key, value in overrides.items():
        *sections, name = key.split(".")
        target = result
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = value
    return result


def parse_overrides(sets: Iterable[str]) -> dict[str, object]:
    """`-S` arguments `key.sub=value` as {key.sub: value}, each value read as YAML (as DVC does).
    Hydra's `+key=value` (add a key the file lacks) and `++key=value` (add or replace) name the
    same key."""
    overrides = {}
    for item in sets:
        key, equals, value = item.partition("=")
        key = key.removeprefix("++").removeprefix("+")
        if not equals or not key:
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    return overrides


def check_params_file(path: str | Path) -> tuple[list[str], list[str]]:
    """(errors, enabled methods) of the params file at `path`."""
    try:
        params = load_params(path)
    except ConfigError as error:
        return [str(error)], []
    except yaml.YAMLError as error:
        return [f"{path}: {error}"], []
    errors = check_params(params)
    try:
        methods = enabled_methods(params)
    except ConfigError:
        methods = []
    return errors, methods
