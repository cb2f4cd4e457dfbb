"""Any folder of video files (.avi .mp4 .mov .mkv .mpg .webm), without ground truth.

If the folder has both `train/` and `test/` sub-folders, their videos are the two splits;
otherwise every video directly in the folder is a test video. Videos are named by file stem.
"""

from __future__ import annotations

from pathlib import Path

from vad.datasets.base import Dataset
from vad.datasets.imageio import video_clips


def open_videos(root: Path, name: str = "videos") -> Dataset:
    if (root / "train").is_dir() and (root / "test").is_dir():
        train = video_clips(root / "train", "train")
        test = video_clips(root / "test", "test")
    else:
        train, test = [], video_clips(root, "test")
    return Dataset(name=name, root=root, train=train, test=test, ground_truth={})
