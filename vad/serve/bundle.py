"""A run bundle: a folder with everything `vad score` needs, checked when it is loaded.

Layout: `manifest.json` (format, version, scorers with their training statistics and alert
thresholds, the frames the run was trained on, provenance, the files params name (below), and
the size and BLAKE2b digest of every other file), `params.yaml` (the params that produced the
models), `models/<method>/` (each method's trained model folder as its train stage wrote it)
and `inputs/` (copies of files that params name and streaming reads, e.g. `objects.onnx`, the
ONNX detector; `param_files` maps each params key to its copy, and the loaded params point to
the copy). Loading refuses, naming the
file, a bundle whose manifest is missing, unreadable or of another format version, and any
listed file that is missing, of another size or another digest (truncated or altered).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

FORMAT = "vad-run-bundle"
VERSION = 1
MANIFEST = "manifest.json"
PARAMS = "params.yaml"
MODELS = "models"
INPUTS = "inputs"


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the file at fault."""


def file_digest(path: Path) -> str:
    """BLAKE2b-128 hex of a file's bytes, read in blocks."""
    hasher = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def file_entries(folder: Path) -> dict[str, dict]:
    """{relative path: {"size", "blake2b"}} of every file under `folder` except the manifest."""
    return {
        str(path.relative_to(folder)): {"size": path.stat().st_size, "blake2b": file_digest(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


@dataclass
class Bundle:
    path: Path
    manifest: dict
    params: dict

    @property
    def scorers(self) -> dict[str, dict]:
        """Scorer name -> its entry (kind, statistics, threshold, parts of a fused one)."""
        return self.manifest["scorers"]

    @property
    def default_scorer(self) -> str:
        return self.manifest["default"]

    def entry(self, name: str) -> dict:
        if name not in self.scorers:
            raise BundleError(
                f"{self.path / MANIFEST}: no method {name!r} in this bundle; "
                f"it has {', '.join(self.scorers)}"
            )
        return self.scorers[name]

    def model_dir(self, method: str) -> Path:
        return self.path / MODELS / method


def load_bundle(path: str | Path) -> Bundle:
    """The bundle at `path`, every file checked against the manifest (BundleError if not)."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise BundleError(f"{path}: bundle folder not found (write one with `vad export`)")
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: missing; {path} is not a complete run bundle")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{manifest_path}: unreadable (truncated?): {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise BundleError(
            f"{manifest_path}: bundle format version {manifest.get('version')!r}; this vad "
            f"reads version {VERSION} (export the run again with this version)"
        )
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{file}: missing from the bundle")
        size = file.stat().st_size
        if size != expected["size"]:
            raise BundleError(
                f"{file}: {size} bytes, the manifest says {expected['size']} (truncated?)"
            )
        if file_digest(file) != expected["blake2b"]:
            raise BundleError(f"{file}: content differs from the manifest's digest (altered?)")
    params = yaml.safe_load((path / PARAMS).read_text())
    for key, inside in manifest.get("param_files", {}).items():
        section, name = key.split(".", 1)
        params[section][name] = str(path / inside)
    return Bundle(path=path, manifest=manifest, params=params)
