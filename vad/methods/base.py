"""The small interface every method implements.

A *method* here is one independently trained scorer, and one entry of params.yaml's `methods`
list: a two-stream paper method such as GMFC-VAE is two entries (`gmfc_vae_rgb`,
`gmfc_vae_dynflow`), fused afterwards by the `fuse` stage. Each method runs as three DVC
stages, `prepare@<name>` -> `train@<name>` -> `score@<name>`:

    settings = method.settings(params)  # {"prepare": {...}, "train": {...}, "score": {...}}
    method.prepare(inputs, settings["prepare"], prepared)  # e.g. training patches
    history = method.train(prepared, settings["train"], model_dir, workdir)
    scores = method.score(inputs, prepared, model_dir, settings["score"])  # -> ScoreStream

Scoring new footage outside the pipeline (`vad score`, vad/serve) goes through one optional
hook, `method.stream_scorer(model_dir, params)`: a `StreamScorer` that is pushed one frame at a
time and returns the frames it can score by then. A method offers it by naming its factory in
`streaming` ("module:function", like the registry's entries, so that the streaming code is no
part of the code digest of the method's pipeline stages); the default raises
`StreamingUnsupported`.

Memory: every stage streams, so that its memory does not grow with the dataset's length
(`python -m vad bench scale` measures it). `prepare` and `score` read their inputs a block of
frames at a time (`vad.frame_cache.frame_blocks`); `score` returns a `ScoreStream` that yields
one video's scores at a time, written as they come (a method may return a whole `ScoreSet`,
which is written the same way, but then holds every video at once); `train` works within its
budget (patches, epochs) or from per-video statistics.

`settings` validates its params sections (errors name the key) and returns plain JSON values
per stage kind, so a change re-runs only the stages whose settings changed; `inputs` names the
shared caches that prepare and score read (`frames`, `dynflow`, ...). Adding a method is one
folder under vad/methods/, one params section and one line in vad.methods.registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from importlib import import_module
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vad.scores import ScoreSet, ScoreStream

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


class ScoredFrame(NamedTuple):
    """The score of one frame of a stream: its index, frame score and score map (or None)."""

    index: int
    score: float
    score_map: np.ndarray | None


class StreamScorer(ABC):
    """Scores a stream frame by frame with bounded memory (a window of recent frames).

    `push` takes the next frame as the frame cache stores it (H×W×C uint8, the training run's
    `frames.color` and size) and returns the frames scored by then, in order; `finish` scores
    the frames still waiting once the stream has ended. Frame t's score is returned once frame
    t + `latency` has been pushed, or by `finish`; the scores equal those of the pipeline's
    score stage on the same frames (see each scorer for its start-of-stream rule).
    `timings` accumulates seconds per part of the work (e.g. "flow", "model").
    """

    latency: int = 0
    timings: dict[str, float]

    @abstractmethod
    def push(self, frame: np.ndarray) -> list[ScoredFrame]:
        """Add the next frame; return the frames that can now be scored."""

    @abstractmethod
    def finish(self) -> list[ScoredFrame]:
        """The stream has ended: score every frame still waiting."""


class StreamingUnsupported(NotImplementedError):
    """The method has no streaming scorer."""


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
    # "module:function(method, model_dir, params) -> StreamScorer", or None (no streaming)
    streaming: str | None = None
    # prepare also works on the test videos (its time counts in scoring throughput)
    prepare_reads_test: bool = False

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
        self,
        inputs: Inputs,
        prepared: Path,
        model_dir: Path,
        settings: Settings,
        videos: Collection[str] | None = None,
    ) -> ScoreStream | ScoreSet:
        """Frame scores (and score maps) of every test video, and of training videos for
        normalisation statistics: a `ScoreStream` yielding them one video at a time, training
        videos first (the model is loaded, and its errors raised, before it returns).
        `videos` (keys `split/name`), given only to a method whose `score_keys` lists them:
        score those alone (none: only the stream's attrs are wanted)."""

    def score_keys(self, inputs: Inputs, prepared: Path, settings: Settings) -> list[str] | None:
        """The videos `score` yields (keys `split/name`, in its order) when each one's scores
        depend on the model and that video alone: then `score(..., videos=[key])` scores just
        `key`, and the score stage may spread the videos over the workers of
        `parallel.score_jobs` (vad.methods.runner). None, the default: `score` scores every
        video in one process."""
        return None

    def stream_scorer(self, model_dir: Path, params: dict) -> StreamScorer:
        """A scorer of new footage with the model trained in `model_dir` under the full
        params.yaml `params` it was trained with (the one optional hook; see the module
        docstring)."""
        if self.streaming is None:
            raise StreamingUnsupported(
                f"method {self.name!r} does not support streaming scoring (`vad score`): "
                "it names no `streaming` factory"
            )
        module, attribute = self.streaming.split(":")
        return getattr(import_module(module), attribute)(self, Path(model_dir), params)
