"""The files the `settings` and `inputs` stages write (see vad.methods.plan), as the method
stages read them back: one method's settings for one stage kind, and its input caches."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path

from vad.cache import cache_digest
from vad.methods.base import Inputs, Method

FORMAT = "vad.methods.plan/1"


def dump(data: object) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def read_stage_settings(path: str | Path, method: str, kind: str) -> dict:
    """The settings file of one method stage, checked to be the one asked for."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: settings file not found (run `dvc repro settings`)")
    content = json.loads(path.read_text())
    if (content.get("format"), content.get("method"), content.get("kind")) != (
        FORMAT,
        method,
        kind,
    ):
        raise ValueError(
            f"{path}: holds the {content.get('kind')!r} settings of {content.get('method')!r} "
            f"(format {content.get('format')!r}), not the {kind!r} settings of {method!r}"
        )
    return content


def load_method(plan: dict) -> Method:
    """The method a settings file belongs to, imported from the registry entry it records
    (so method stages do not depend on the registry's other lines)."""
    module, attribute = plan["entry"].split(":")
    return getattr(import_module(module), attribute)


def read_inputs(path: str | Path, method: str) -> Inputs:
    """The caches of `method`, each checked to hold the content the inputs stage saw."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: inputs file not found (run `dvc repro inputs`)")
    content = json.loads(path.read_text())
    if (content.get("format"), content.get("method")) != (FORMAT, method):
        raise ValueError(f"{path}: not the inputs file of method {method!r}")
    for cache, entry in content["inputs"].items():
        if cache_digest(entry["path"]) != entry["digest"]:
            raise ValueError(
                f"{entry['path']} (cache {cache!r}) changed after the inputs stage fingerprinted "
                "it; run `dvc repro` so that every stage sees the same data"
            )
    return Inputs({cache: entry["path"] for cache, entry in content["inputs"].items()})
