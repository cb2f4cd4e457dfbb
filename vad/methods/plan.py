"""What the `settings` and `inputs` stages write for every method, and how method stages read it.

DVC's templating repeats the method stages for every entry of params.yaml's `methods`, but it
cannot look anything up per entry (which params, code and caches a method uses). Two small
stages resolve that into one file per method, and the method stages depend on those files:

- `settings` -> data/settings/<method>/<kind>.json (kind: prepare, train, score): the method's
  validated settings for that stage, the caches it reads, and the digest of every source file
  its code imports (vad.imports). A params or code change therefore re-runs exactly the stages
  of the methods whose settings or code changed, and nothing else.
- `inputs` -> data/inputs/<method>.json: path and content digest (vad.cache.cache_digest) of each
  cache the method reads, so a new dynamic flow re-runs the motion stream but not the
  appearance stream.

Both are written for every registered method, enabled or not, so switching `methods` changes
neither's files (`settings` re-reads all of params.yaml in under a second on any change; its
unchanged files re-run nothing). Files are JSON with sorted keys: equal content, equal bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from vad.cache import atomic_directory, cache_digest
from vad.imports import ROOT, closure_files
from vad.methods.base import KINDS, Method
from vad.methods.registry import REGISTRY, enabled_methods, get_method
from vad.methods.stage_files import FORMAT, dump

CACHES_FILE = "caches.json"  # {method: [caches it reads]}: all the inputs stage needs
REPO = ROOT.parent


def code_digests(package: str) -> dict[str, str]:
    """BLAKE2b of every source file `package` imports (transitively), by repo-relative path."""
    return {
        str(path.relative_to(REPO)): hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        for path in closure_files(package)
    }


def settings_files(method: Method, params: dict) -> dict[str, dict]:
    """The content of data/settings/<method>/<kind>.json for each kind."""
    settings = method.settings(params)
    missing = [kind for kind in KINDS if kind not in settings]
    if missing:
        raise TypeError(f"{method.name}.settings() returned no settings for {missing}")
    code = code_digests(method.package)
    return {
        kind: {
            "format": FORMAT,
            "method": method.name,
            "kind": kind,
            "entry": REGISTRY[method.name],
            "settings": settings[kind],
            "inputs": list(method.inputs),
            "code": code,
        }
        for kind in KINDS
    }


def write_settings(params: dict, out_dir: str | Path) -> list[str]:
    """Validate `methods` and every registered method's settings; write them all (atomically),
    and `caches.json`: which caches each method reads (all the inputs stage needs, so that a
    settings change does not re-run it). Returns the registered method names."""
    enabled_methods(params)
    files = {name: settings_files(get_method(name), params) for name in REGISTRY}
    with atomic_directory(out_dir) as tmp:
        for name, kinds in files.items():
            (tmp / name).mkdir()
            for kind, content in kinds.items():
                (tmp / name / f"{kind}.json").write_text(dump(content))
        caches = {name: kinds["prepare"]["inputs"] for name, kinds in files.items()}
        (tmp / CACHES_FILE).write_text(dump({"format": FORMAT, "caches": caches}))
    return list(files)


def write_inputs(
    caches_file: str | Path, caches: Mapping[str, str | Path], out_dir: str | Path
) -> None:
    """For every method of `caches_file` (the settings stage's caches.json): path and content
    digest of each cache it reads."""
    content = json.loads(Path(caches_file).read_text())
    if content.get("format") != FORMAT:
        raise ValueError(f"{caches_file}: not a caches file of the settings stage")
    digests: dict[str, str] = {}
    files = {}
    for method, names in sorted(content["caches"].items()):
        entry = {}
        for cache in names:
            if cache not in caches:
                raise ValueError(
                    f"method {method!r} reads the cache {cache!r}, which the inputs stage "
                    f"was not given (it has {', '.join(caches)})"
                )
            if cache not in digests:
                digests[cache] = cache_digest(caches[cache])
            entry[cache] = {"path": str(caches[cache]), "digest": digests[cache]}
        files[method] = {"format": FORMAT, "method": method, "inputs": entry}
    with atomic_directory(out_dir) as tmp:
        for name, content in files.items():
            (tmp / f"{name}.json").write_text(dump(content))
