"""The frames layout of the MNAD / HF2-VAD releases (Ped1, Ped2, Avenue, ShanghaiTech):

    training/frames/<clip>/000.jpg ...
    testing/frames/<clip>/000.jpg ...
    testing/masks/<clip>/000.png ...     optional pixel masks (0/255), one per test frame
    <name>.mat                           frame-level GT: variable `gt`, a 1×N cell (one per test
                                         clip, in sorted order) of 2×R arrays of 1-based
                                         inclusive [start; end] anomalous ranges

The .mat is `<name>.mat` if present, else the single `*.mat` at the root. Without one, frame
labels come from the masks (a frame is anomalous if its mask has any anomalous pixel), which then
must cover every test clip. A clip without a mask folder gets `load_masks=None`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vad.datasets.base import Dataset, DatasetError, GroundTruth, Video, ranges_to_labels
from vad.datasets.imageio import image_clips, list_dirs, load_mat_variable, mask_folder


def read_mat_ranges(path: Path) -> list[list[tuple[int, int]]]:
    """Per test clip, the 1-based inclusive anomalous ranges stored in `gt` of a .mat file."""
    gt = load_mat_variable(path, "gt")
    if gt.dtype != object:
        raise DatasetError(f"{path}: variable 'gt' is a {gt.dtype} array, expected a cell array")
    clips = []
    for index, cell in enumerate(gt.reshape(-1), start=1):
        ranges = np.asarray(cell)
        if ranges.size == 0:  # a clip with no anomaly
            clips.append([])
            continue
        if ranges.ndim != 2 or 2 not in ranges.shape:
            raise DatasetError(
                f"{path}: gt{{{index}}} has shape {ranges.shape}, expected 2×R [start; end] ranges"
            )
        if ranges.shape[0] != 2:  # stored as R×2
            ranges = ranges.T
        clips.append([(int(start), int(end)) for start, end in ranges.T])
    return clips


def _find_mat(root: Path, name: str) -> Path | None:
    named = root / f"{name}.mat"
    if named.is_file():
        return named
    mats = sorted(p for p in root.glob("*.mat") if not p.name.startswith("."))
    if len(mats) > 1:
        raise DatasetError(
            f"{root}: several .mat files ({', '.join(p.name for p in mats)}) and no {name}.mat; "
            "cannot tell which holds the ground truth"
        )
    return mats[0] if mats else None


def _read_masks(root: Path, test: list[Video]) -> dict[str, GroundTruth]:
    masks_dir = root / "testing" / "masks"
    if not masks_dir.is_dir():
        return {}
    names = {video.name for video in test}
    for folder in list_dirs(masks_dir):
        if folder.name not in names:
            raise DatasetError(
                f"{folder}: mask folder for clip {folder.name!r}, "
                f"which is not in {root / 'testing' / 'frames'}"
            )
    return {
        v.name: mask_folder(masks_dir / v.name, v) for v in test if (masks_dir / v.name).is_dir()
    }


def open_frames(
    root: Path, name: str = "frames", require_labels: bool = False, corrupt_frames: str = "error"
) -> Dataset:
    """Read a dataset in the frames layout; `require_labels` makes missing ground truth an error,
    `corrupt_frames` is passed to `image_clips`."""
    train = image_clips(root / "training" / "frames", "train", corrupt_frames=corrupt_frames)
    test = image_clips(root / "testing" / "frames", "test", corrupt_frames=corrupt_frames)
    masks = _read_masks(root, test)
    mat = _find_mat(root, name)

    if mat is not None:
        clip_ranges = read_mat_ranges(mat)
        if len(clip_ranges) != len(test):
            raise DatasetError(
                f"{mat}: ground truth for {len(clip_ranges)} clips but "
                f"{root / 'testing' / 'frames'} has {len(test)} test clips"
            )
        labels = {
            video.name: ranges_to_labels(
                ranges, video.num_frames, f"{mat} (gt of clip {video.name})"
            )
            for video, ranges in zip(test, clip_ranges, strict=True)
        }
    elif masks and len(masks) == len(test):
        labels = {clip: load().any(axis=(1, 2)) for clip, load in masks.items()}
    elif masks or require_labels:
        raise DatasetError(
            f"{root}: no {name}.mat (or other single .mat) with frame-level ground truth, "
            f"and masks in {root / 'testing' / 'masks'} for {len(masks)} of {len(test)} test clips"
        )
    else:
        labels = {}

    ground_truth = {
        video_name: GroundTruth(labels=video_labels, load_masks=masks.get(video_name))
        for video_name, video_labels in labels.items()
    }
    return Dataset(name=name, root=root, train=train, test=test, ground_truth=ground_truth)
