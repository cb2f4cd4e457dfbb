"""CUHK Avenue as distributed:

    training_videos/01.avi ...
    testing_videos/01.avi ...
    ground_truth_demo/testing_label_mask/1_label.mat ...   (no leading zero) variable `volLabel`,
                                                           a 1×T cell of H×W pixel masks

A frame is anomalous when its mask is non-empty. The label files are read once at open for the
frame labels; the masks themselves are re-read on demand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vad.datasets.base import Dataset, DatasetError, GroundTruth, Video, check_labels
from vad.datasets.imageio import list_files, load_mat_variable, require_dir, video_clips


def read_vol_label(path: Path, height: int, width: int) -> list[np.ndarray]:
    """The per-frame masks of one Avenue label file, each checked to be height×width."""
    cells = load_mat_variable(path, "volLabel")
    if cells.dtype != object:
        raise DatasetError(f"{path}: volLabel is a {cells.dtype} array, expected a 1×T cell array")
    masks = [np.asarray(cell) for cell in cells.reshape(-1)]
    for index, mask in enumerate(masks):
        if mask.shape != (height, width):
            raise DatasetError(
                f"{path}: volLabel{{{index + 1}}} is a mask of shape {mask.shape}, "
                f"expected ({height}, {width}) like its video"
            )
    return masks


class LabelMasks:
    """`load_masks` for one Avenue test video: re-reads its label file."""

    def __init__(self, path: Path, height: int, width: int):
        self.path, self.height, self.width = path, height, width

    def __call__(self) -> np.ndarray:
        masks = read_vol_label(self.path, self.height, self.width)
        stack = np.empty((len(masks), self.height, self.width), dtype=bool)
        for index, mask in enumerate(masks):
            stack[index] = mask != 0
        return stack


def _label_file(label_dir: Path, video: Video) -> Path:
    number = str(int(video.name)) if video.name.isdigit() else video.name
    return label_dir / f"{number}_label.mat"


def open_avenue(root: Path, name: str = "avenue") -> Dataset:
    train = video_clips(root / "training_videos", "train")
    test = video_clips(root / "testing_videos", "test")
    label_dir = require_dir(
        root / "ground_truth_demo" / "testing_label_mask", "Avenue ground-truth"
    )
    label_files = [
        p for p in list_files(label_dir, frozenset({".mat"})) if p.stem.endswith("_label")
    ]
    if len(label_files) != len(test):
        raise DatasetError(
            f"{label_dir}: {len(label_files)} *_label.mat files but {root / 'testing_videos'} "
            f"has {len(test)} test videos"
        )

    ground_truth = {}
    for video in test:
        path = _label_file(label_dir, video)
        masks = read_vol_label(path, video.height, video.width)
        labels = check_labels(video, np.array([np.any(mask) for mask in masks]), path)
        ground_truth[video.name] = GroundTruth(
            labels=labels, load_masks=LabelMasks(path, video.height, video.width)
        )
    return Dataset(name=name, root=root, train=train, test=test, ground_truth=ground_truth)
