"""The frame-difference baseline behind the method interface.

prepare: the difference energy of every cell of every frame (train and test videos) at
`baseline.size`; train: per-cell mean and standard deviation over the training frames;
score: z-scored energies as maps, their maximum as the frame score. Reads frames.h5 only.
Memory: prepare reads a block of frames at a time, train reads one video's energies at a time
(its statistics are those numpy computes of all of them, `vad.streaming_stats`), and score
yields one video's scores at a time.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np

from vad.cache import checked_dataset, iter_videos, open_cache, read_dataset, video_key, write_h5
from vad.config import Section, check_all
from vad.frame_cache import frame_blocks, video_keys
from vad.methods.base import Inputs, Method, Settings
from vad.methods.baseline.energy import BaselineModel, difference_energy, frame_scores
from vad.progress import progress as progress_bar
from vad.scores import Scored, ScoreStream, VideoScores
from vad.streaming_stats import row_mean_std

MODEL_FILE = "model.h5"


class Baseline(Method):
    name = "baseline"
    package = "vad.methods.baseline"
    inputs = ("frames",)
    streaming = "vad.serve.scorers.baseline:baseline_scorer"

    def settings(self, params: dict) -> dict[str, Settings]:
        section = Section(params, "baseline")
        _, grid = check_all(
            lambda: section.check_keys(("size", "patch")), lambda: _grid_of(section)
        )
        return {"prepare": grid, "train": {}, "score": {}}

    def prepare(self, inputs: Inputs, settings: Settings, out: Path) -> None:
        frames, size, patch = inputs["frames"], tuple(settings["size"]), settings["patch"]
        with write_h5(out, settings) as f, np.errstate(all="raise"):
            for key in progress_bar(video_keys(frames), desc="baseline energy", unit="video"):
                energy = video_energy(frames, key, size, patch)
                checked_dataset(f.create_group(key), "energy", energy)

    def train(
        self, prepared: Path, settings: Settings, model_dir: Path, workdir: Path
    ) -> list[dict]:
        with open_cache(prepared) as f, np.errstate(all="raise"):
            groups = [group for split, _, group in iter_videos(f) if split == "train"]
            if not groups:
                raise ValueError(f"{prepared}: no training videos")
            mean, std = row_mean_std(lambda: (read_dataset(g["energy"]) for g in groups))
            attrs = dict(f.attrs)
        model = BaselineModel.from_moments(mean, std)
        with write_h5(model_dir / MODEL_FILE, {"model": "baseline", **_grid(attrs)}) as f:
            checked_dataset(f, "mean", model.mean)
            checked_dataset(f, "std", model.std)
        return []

    def score(
        self,
        inputs: Inputs,
        prepared: Path,
        model_dir: Path,
        settings: Settings,
        videos: Collection[str] | None = None,
    ) -> ScoreStream:
        model = read_model(model_dir)
        with open_cache(prepared) as f:
            grid = _grid(dict(f.attrs))
        attrs = {"map_size": grid["size"], "patch": grid["patch"]}
        return ScoreStream(self.name, _scored_videos(model, prepared, videos), attrs)

    def score_keys(self, inputs: Inputs, prepared: Path, settings: Settings) -> list[str]:
        return video_keys(prepared)


def video_energy(frames: Path, key: str, size: tuple[int, int], patch: int) -> np.ndarray:
    """`difference_energy` of one video of frames.h5, read a block of frames at a time."""
    energies, previous = [], None
    for _, block in frame_blocks(frames, key, size, "gray"):
        energies.append(difference_energy(block, patch, previous))
        previous = block[-1]
    return np.concatenate(energies)


def _scored_videos(
    model: BaselineModel, prepared: Path, videos: Collection[str] | None
) -> Iterator[Scored]:
    with open_cache(prepared) as f:
        for split, name, group in iter_videos(f):
            if videos is not None and video_key(split, name) not in videos:
                continue
            with np.errstate(all="raise"):  # not around the yield: it would leak to the caller
                maps = model.score_maps(read_dataset(group["energy"]))
            yield split, name, VideoScores(frame_scores=frame_scores(maps), score_maps=maps)


def _grid_of(section: Section) -> dict:
    """`baseline.size` and `.patch`; the cells must tile the frame (`cell_means`)."""
    grid = {"size": list(section.size("size")), "patch": section.int("patch", minimum=1)}
    width, height = grid["size"]
    if width % grid["patch"] or height % grid["patch"]:
        raise section.error(
            "size",
            f"[{width}, {height}] must be a multiple of 'baseline.patch' ({grid['patch']}) "
            "in width and height: the energy cells tile the frame",
        )
    return grid


def read_model(model_dir: Path) -> BaselineModel:
    """The per-cell statistics that `train` wrote to `model_dir`."""
    with open_cache(model_dir / MODEL_FILE) as f:
        return BaselineModel(mean=read_dataset(f["mean"]), std=read_dataset(f["std"]))


def _grid(attrs: dict) -> dict:
    """The grid settings a prepared file was written with (its `settings` attribute)."""
    settings = json.loads(attrs["settings"])
    return {"size": settings["size"], "patch": settings["patch"]}


BASELINE = Baseline()
