"""The frame-difference baseline behind the method interface.

prepare: the difference energy of every cell of every frame (train and test videos) at
`baseline.size`; train: per-cell mean and standard deviation over the training frames;
score: z-scored energies as maps, their maximum as the frame score. Reads frames.h5 only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vad.cache import checked_dataset, iter_videos, open_cache, read_dataset, write_h5
from vad.config import Section, check_all
from vad.frame_cache import load_frames, video_keys
from vad.methods.base import Inputs, Method, Settings
from vad.methods.baseline.energy import BaselineModel, difference_energy, frame_scores
from vad.progress import progress as progress_bar
from vad.scores import ScoreSet, VideoScores

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
                energy = difference_energy(load_frames(frames, key, size, "gray"), patch)
                checked_dataset(f.create_group(key), "energy", energy)

    def train(
        self, prepared: Path, settings: Settings, model_dir: Path, workdir: Path
    ) -> list[dict]:
        with open_cache(prepared) as f, np.errstate(all="raise"):
            energies = [
                read_dataset(group["energy"])
                for split, _, group in iter_videos(f)
                if split == "train"
            ]
            attrs = dict(f.attrs)
        model = BaselineModel.fit(energies)
        with write_h5(model_dir / MODEL_FILE, {"model": "baseline", **_grid(attrs)}) as f:
            checked_dataset(f, "mean", model.mean)
            checked_dataset(f, "std", model.std)
        return []

    def score(
        self, inputs: Inputs, prepared: Path, model_dir: Path, settings: Settings
    ) -> ScoreSet:
        model = read_model(model_dir)
        with open_cache(prepared) as f, np.errstate(all="raise"):
            grid = _grid(dict(f.attrs))
            result = ScoreSet(
                model=self.name, attrs={"map_size": grid["size"], "patch": grid["patch"]}
            )
            for split, name, group in iter_videos(f):
                maps = model.score_maps(read_dataset(group["energy"]))
                target = result.train if split == "train" else result.test
                target[name] = VideoScores(frame_scores=frame_scores(maps), score_maps=maps)
        return result


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
