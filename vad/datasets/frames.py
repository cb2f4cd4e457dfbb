"""The frames layout of the MNAD / HF2-VAD releases (Ped1, Ped2, Avenue, ShanghaiTech):

    training/frames/<clip>/000.jpg ...
    testing/frames/<clip>/000.jpg ...
    testing/masks/<clip>/000.png ...     optional pixel masks (0/255), one per test frame
    <name>.mat                           frame-level GT: variable `gt`, a 1×N cell (one per test
                                         clip, in sorted order) of 2×R arrays of 1-based
                                         inclusive [start; end] anomalous ranges (R×2 [start,
                                         end] rows are accepted where unambiguous)

The .mat is `<name>.mat` if present, else the single `*.mat` at the root. Without one, frame
labels come from the masks (a frame is anomalous if its mask has any anomalous pixel), which then
must cover every test clip. A clip without a mask folder gets `load_masks=None`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vad.datasets.base import (
    Dataset,
    DatasetError,
    GroundTruth,
    Video,
    range_problem,
    ranges_to_labels,
)
from vad.datasets.imageio import image_clips, list_dirs, load_mat_variable, mask_folder


def read_mat_ranges(path: Path) -> list[np.ndarray]:
    """Per test clip, the integer array of anomalous ranges stored in `gt` of a .mat file: 2×R
    [start; end] columns or R×2 [start, end] rows (2×0 for a clip without anomaly). Which of the
    two a 2×2 array is depends on the clip's frame count: see `clip_ranges`."""
    gt = load_mat_variable(path, "gt")
    if gt.dtype != object:
        raise DatasetError(f"{path}: variable 'gt' is a {gt.dtype} array, expected a cell array")
    clips = []
    for index, cell in enumerate(gt.reshape(-1), start=1):
        ranges = np.asarray(cell)
        if ranges.size == 0:  # a clip with no anomaly
            clips.append(np.zeros((2, 0), dtype=np.int64))
            continue
        if ranges.ndim != 2 or 2 not in ranges.shape:
            raise DatasetError(
                f"{path}: gt{{{index}}} has shape {ranges.shape}, expected 2×R [start; end] ranges"
            )
        if not np.issubdtype(ranges.dtype, np.number) or not np.all(ranges == np.round(ranges)):
            raise DatasetError(f"{path}: gt{{{index}}} holds non-integer values {ranges.tolist()}")
        clips.append(ranges.astype(np.int64))
    return clips


def _columns(array: np.ndarray) -> list[tuple[int, int]]:
    return [(int(start), int(end)) for start, end in array.T]


def clip_ranges(array: np.ndarray, num_frames: int, source: str) -> list[tuple[int, int]]:
    """The ranges of a clip of `num_frames` frames from its 2×R or R×2 array.

    Only a 2×2 array can be read both ways; the reading whose ranges are valid (`range_problem`:
    within the clip, start <= end, ascending and disjoint) is taken. When neither or both are, it
    is an error naming `source` and both readings.
    """
    readings = {}
    if array.shape[0] == 2:
        readings["2×R [start; end] columns"] = _columns(array)
    if array.shape[1] == 2:
        readings["R×2 [start, end] rows"] = _columns(array.T)
    problems = {what: range_problem(ranges, num_frames) for what, ranges in readings.items()}
    valid = [what for what, problem in problems.items() if problem is None]
    if len(valid) == 1:
        return readings[valid[0]]
    if len(readings) == 1:
        raise DatasetError(f"{source}: {next(iter(problems.values()))}")
    details = "; ".join(
        f"read as {what}: {', '.join(f'[{a}, {b}]' for a, b in ranges)} "
        f"({problems[what] or 'valid'})"
        for what, ranges in readings.items()
    )
    raise DatasetError(
        f"{source}: cannot tell the orientation of the 2×2 array {array.tolist()} for a clip of "
        f"{num_frames} frames; {details}"
    )


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
        arrays = read_mat_ranges(mat)
        if len(arrays) != len(test):
            raise DatasetError(
                f"{mat}: ground truth for {len(arrays)} clips but "
                f"{root / 'testing' / 'frames'} has {len(test)} test clips"
            )
        labels = {}
        for index, (video, array) in enumerate(zip(test, arrays, strict=True), start=1):
            source = f"{mat} (gt{{{index}}}, clip {video.name})"
            ranges = clip_ranges(array, video.num_frames, source)
            labels[video.name] = ranges_to_labels(ranges, video.num_frames, source)
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
