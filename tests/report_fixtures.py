"""Inputs of the `evaluate` stage for tests: a frame cache and ground truth of a tiny synthetic
scene whose ground truth has every awkward case, and score files of several kinds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from vad.datasets.base import GroundTruth
from vad.datasets.synthetic import open_synthetic
from vad.frame_cache import write_frame_cache
from vad.scores import ScoreSet, VideoScores, write_scores

SCENE = dict(seed=3, width=64, height=48, train_videos=1, test_videos=4, frames_per_video=16)
GRID = (6, 8)  # score maps on 8x8-pixel cells: coarser than the 48x64 masks
# Report order and kinds, as stages/evaluate.py score_sets gives them.
KINDS = {"maps": "method", "frames_only": "method", "fused": "fused"}
KINDS |= {"part_a": "part of fused", "part_b": "part of fused"}


def write_ground_truth_and_frames(root: Path) -> tuple[Path, Path]:
    """frames.h5 and gt.h5 of the scene, its ground truth changed so that:
    test_00 has an anomalous-labelled frame with an empty mask (2) and a normal-labelled frame
    with mask pixels (10); test_01 has labels but no masks; test_03 has no ground truth."""
    dataset = open_synthetic(**SCENE)
    truth = dict(dataset.ground_truth)
    labels = truth["test_00"].labels.copy()
    labels[2], labels[10] = True, False
    truth["test_00"] = replace(truth["test_00"], labels=labels)
    truth["test_01"] = GroundTruth(labels=truth["test_01"].labels)
    del truth["test_03"]
    dataset = replace(dataset, ground_truth=truth)
    frames, ground_truth = root / "frames.h5", root / "gt.h5"
    write_frame_cache(dataset, frames, ground_truth, progress=False)
    return frames, ground_truth


def write_labels_only(root: Path, labels: list[list[bool]]) -> tuple[Path, Path]:
    """frames.h5 and gt.h5 of test videos test_00, test_01, ... with these labels (all of one
    length) and no masks."""
    dataset = open_synthetic(
        **{**SCENE, "test_videos": len(labels), "frames_per_video": len(labels[0])}
    )
    truth = {
        video.name: GroundTruth(labels=np.array(values, bool))
        for video, values in zip(dataset.test, labels, strict=True)
    }
    frames, ground_truth = root / "frames.h5", root / "gt.h5"
    write_frame_cache(
        replace(dataset, ground_truth=truth), frames, ground_truth, progress=False
    )
    return frames, ground_truth


def write_frame_scores(path: Path, scores: dict[str, list[float]]) -> str:
    """A score file of frame scores only."""
    test = {name: VideoScores(frame_scores=np.array(values)) for name, values in scores.items()}
    write_scores(path, ScoreSet(model=path.stem, test=test))
    return str(path)


def _masks() -> dict[str, np.ndarray]:
    dataset = open_synthetic(**SCENE)
    return {name: truth.load_masks() for name, truth in dataset.ground_truth.items()}


def random_scores(
    seed: int, maps: bool, explanations: bool = False, skip: str | None = None
) -> ScoreSet:
    """Scores of every test video (but `skip`) that lean towards the anomalies, with ties;
    maps on the coarse grid, cells holding anomalous pixels scoring higher."""
    rng = np.random.default_rng(seed)
    test = {}
    for name, mask in _masks().items():
        if name == skip:
            continue
        cells = mask.reshape(mask.shape[0], GRID[0], 8, GRID[1], 8).mean(axis=(2, 4))
        score_map = np.round(cells * rng.random() + rng.random(cells.shape), 1)
        video = VideoScores(frame_scores=score_map.max(axis=(1, 2)) + rng.random(mask.shape[0]))
        if maps:
            video.score_maps = score_map
        if explanations:
            video.extras["explanation"] = np.array(
                ["" if t % 3 else f"cell {t} moves fast" for t in range(mask.shape[0])]
            )
        test[name] = video
    train = {"train_00": VideoScores(frame_scores=rng.random(16))}
    return ScoreSet(model="m", test=test, train=train)


def write_score_files(root: Path) -> dict[str, str]:
    """Score files named after KINDS, in its order: name -> path."""
    sets = {
        "maps": random_scores(1, maps=True, explanations=True),
        "frames_only": random_scores(2, maps=False, skip="test_02"),
        "fused": random_scores(3, maps=True),
        "part_a": random_scores(4, maps=True),
        "part_b": random_scores(5, maps=True),
    }
    sets["fused"].attrs["parts"] = ["part_a", "part_b"]
    paths = {}
    for name, score_set in sets.items():
        paths[name] = str(root / f"{name}.h5")
        write_scores(paths[name], score_set)
    return paths
