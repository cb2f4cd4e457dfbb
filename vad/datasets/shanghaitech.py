"""ShanghaiTech Campus as distributed:

    training/videos/01_001.avi ...
    testing/frames/01_0014/000.jpg ...
    testing/test_frame_mask/01_0014.npy     T frame labels (0/1)
    testing/test_pixel_mask/01_0014.npy     T×H×W pixel masks (0/1); optional

Clips are named `<scene>_<video>`. With `scenes` (`data.scenes`, see scenes.py) only the clips
of those scenes are opened, and only their label and mask files are read and counted. Pixel masks
are memory-mapped at open to check their shape and loaded on demand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vad.datasets.base import Dataset, DatasetError, GroundTruth, Video, check_labels, check_masks
from vad.datasets.imageio import image_clips, list_files, require_dir, video_clips
from vad.datasets.scenes import choose_scenes, clip_names, scene_pattern

_NPY = frozenset({".npy"})


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: ground-truth file not found")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DatasetError(f"{path}: unreadable .npy file ({error})") from error


class NpyMasks:
    """`load_masks` for one ShanghaiTech test clip."""

    def __init__(self, path: Path, video: Video):
        self.path = path
        self.video = video

    def __call__(self) -> np.ndarray:
        return check_masks(self.video, _load_npy(self.path), self.path)


def _check_count(folder: Path, test_dir: Path, test: list[Video], pattern: str | None) -> None:
    """As many .npy files (of the chosen scenes' clips, with `pattern`) as test clips."""
    files = list_files(folder, _NPY)
    if pattern is not None:
        files = [path for path in files if re.fullmatch(pattern, path.stem)]
    if len(files) != len(test):
        chosen = " of the chosen scenes" if pattern is not None else ""
        raise DatasetError(
            f"{folder}: {len(files)} .npy files{chosen} but {test_dir} has {len(test)} test "
            f"clips{chosen}"
        )


def open_shanghaitech(
    root: Path,
    name: str = "shanghaitech",
    corrupt_frames: str = "error",
    scenes: Sequence[int | str] | None = None,
) -> Dataset:
    """Read ShanghaiTech as distributed; `scenes` (scene numbers or ids) limits it to those
    scenes' clips, an unknown scene or one without clips in both splits being a DatasetError."""
    chosen, pattern = None, None
    if scenes is not None:
        chosen = choose_scenes(scenes, *clip_names(root, "shanghaitech"), root)
        pattern = scene_pattern(chosen)
    train = video_clips(root / "training" / "videos", "train", pattern)
    test_dir = root / "testing" / "frames"
    test = image_clips(test_dir, "test", pattern, corrupt_frames=corrupt_frames)
    label_dir = require_dir(root / "testing" / "test_frame_mask", "ShanghaiTech frame-label")
    _check_count(label_dir, test_dir, test, pattern)
    mask_dir = root / "testing" / "test_pixel_mask"
    if mask_dir.is_dir():
        _check_count(mask_dir, test_dir, test, pattern)

    ground_truth = {}
    for video in test:
        label_file = label_dir / f"{video.name}.npy"
        labels = check_labels(video, _load_npy(label_file), label_file)
        load_masks = None
        if mask_dir.is_dir():
            mask_file = mask_dir / f"{video.name}.npy"
            shape = _load_npy(mask_file, mmap=True).shape  # reads the header only
            expected = (video.num_frames, video.height, video.width)
            if shape != expected:
                raise DatasetError(
                    f"{mask_file}: masks of shape {shape} for video {video.name!r}, "
                    f"expected {expected}"
                )
            load_masks = NpyMasks(mask_file, video)
        ground_truth[video.name] = GroundTruth(labels=labels, load_masks=load_masks)
    return Dataset(
        name=name, root=root, train=train, test=test, ground_truth=ground_truth, scenes=chosen
    )
