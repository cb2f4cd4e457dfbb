"""The small interface every method implements.

A *method* here is one independently trained scorer, and one entry of params.yaml's `methods`
list: a two-stream paper method such as GMFC-VAE is two entries (`gmfc_vae_rgb`,
`gmfc_vae_dynflow`), fused afterwards by the `fuse` stage. Each method runs as three DVC
stages, `prepare@<name>` -> `train@<name>` -> `score@<name>`:

    settings = method.settings(params)  # {"prepare": {...}, "train": {...}, "score": {...}}
    method.prepare(inputs, settings["prepare"], prepared)  # e.g. training patches
    history = method.train(prepared, settings["train"], model_dir, workdir)
    scores = method.score(inputs, prepared, model_dir, settings["score"])  # -> ScoreSet

`settings` validates its params sections (errors name the key) and returns plain JSON values
per stage kind, so a change re-runs only the stages whose settings changed; `inputs` names the
shared caches that prepare and score read (`frames`, `dynflow`, ...). Adding a method is one
folder under vad/methods/, one params section and one line in vad.methods.registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vad.scores import ScoreSet

KINDS = ("prepare", "train", "score")
Settings = dict[str, Any]


class Inputs:
    """The shared caches a method reads, by name (`inputs["frames"]` -> Path)."""

    def __init__(self, paths: Mapping[str, str | Path]):
        self.paths = {name: Path(path) for name, path in paths.items()}

    def __getitem__(self, name: str) -> Path:
        if name not in self.paths:
            raise KeyError(
                f"cache {name!r} is not among this method's inputs ({', '.join(self.paths)}); "
                "add it to the method's `inputs`"
            )
        return self.paths[name]


class Method(ABC):
    """One scorer: validated settings from params.yaml, then prepare -> train -> score."""

    name: str  # the entry in params.yaml `methods`; names its stages and files
    package: str  # the Python package whose code its stages run (fingerprinted by `settings`)
    inputs: tuple[str, ...] = ("frames",)  # shared caches read by prepare and score
    # params.yaml sections `settings` reads (`python -m vad check-params` refuses top-level keys
    # that no stage and no method reads); empty: the one named like the method
    sections: tuple[str, ...] = ()
    # dataset -> params overrides that make up its documented CPU budget (`make benchmark`)
    budgets: Mapping[str, Mapping[str, Any]] = {}

    @abstractmethod
    def settings(self, params: dict) -> dict[str, Settings]:
        """Validated settings for each of KINDS from params.yaml (ConfigError names the key)."""

    @abstractmethod
    def prepare(self, inputs: Inputs, settings: Settings, out: Path) -> None:
        """Write what training and scoring need (one HDF5 file, atomically) to `out`."""

    @abstractmethod
    def train(
        self, prepared: Path, settings: Settings, model_dir: Path, workdir: Path
    ) -> list[dict]:
        """Train from `prepared` into the (empty) folder `model_dir`; `workdir` keeps
        checkpoints between runs. Returns the loss history, one row per epoch."""

    @abstractmethod
    def score(
        self, inputs: Inputs, prepared: Path, model_dir: Path, settings: Settings
    ) -> ScoreSet:
        """Frame scores (and score maps) of every test video, and of training videos for
        normalisation statistics."""
