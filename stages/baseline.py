"""Stages `train_baseline` and `score_baseline`: the frame-difference energy floor model."""

from __future__ import annotations

import argparse

import h5py
import numpy as np
from tqdm import tqdm

from vad.cache import write_h5
from vad.config import Section, load_params
from vad.frame_cache import load_frames, video_keys
from vad.models.baseline import BaselineModel, difference_energy, frame_scores
from vad.scores import ScoreSet, VideoScores, write_scores


def energies(frames_path: str, split: str, size: tuple[int, int], patch: int) -> dict:
    keys = video_keys(frames_path, split)
    return {
        key.split("/", 1)[1]: difference_energy(load_frames(frames_path, key, size, "gray"), patch)
        for key in tqdm(keys, desc=f"baseline {split}", unit="video")
    }


def train(frames_path: str, model_path: str, size: tuple[int, int], patch: int) -> None:
    model = BaselineModel.fit(list(energies(frames_path, "train", size, patch).values()))
    with write_h5(model_path, {"model": "baseline", "size": size, "patch": patch}) as f:
        f.create_dataset("mean", data=model.mean)
        f.create_dataset("std", data=model.std)


def score(frames_path: str, model_path: str, out: str, size: tuple[int, int], patch: int) -> None:
    with h5py.File(model_path, "r") as f:
        model = BaselineModel(mean=f["mean"][()], std=f["std"][()])
    result = ScoreSet(model="baseline", attrs={"map_size": list(size), "patch": patch})
    for split, target in (("train", result.train), ("test", result.test)):
        for name, energy in energies(frames_path, split, size, patch).items():
            maps = model.score_maps(energy)
            target[name] = VideoScores(frame_scores=frame_scores(maps), score_maps=maps)
    write_scores(out, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["train", "score"])
    parser.add_argument("--frames", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--scores", help="output score file (score)")
    args = parser.parse_args()
    section = Section(load_params(), "baseline")
    size, patch = section.size("size"), section.int("patch", minimum=1)
    np.seterr(all="raise")
    if args.action == "train":
        train(args.frames, args.model, size, patch)
    else:
        if not args.scores:
            parser.error("score needs --scores")
        score(args.frames, args.model, args.scores, size, patch)


if __name__ == "__main__":
    main()
