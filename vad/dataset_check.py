"""Decode every frame and mask of a dataset and collect every problem (`vad info --check`).

Opening a dataset reads only the first frame of each clip and the headers of the rest; this reads
them all. Each unreadable frame or mask file is one problem (the `DatasetError` message, which
starts with the path at fault) and checking goes on with the next one. A video file is checked
up to its first problem only: its later frames cannot be reached without the damaged one.
"""

from __future__ import annotations

from vad.datasets.base import Dataset, DatasetError, Video
from vad.datasets.imageio import MaskSequence, VideoFile
from vad.progress import ProgressBar, progress


def _check_frames(video: Video, bar: ProgressBar) -> list[str]:
    problems = []
    for index in range(video.num_frames):
        try:
            video.frame(index)
        except DatasetError as error:
            problems.append(str(error))
            if isinstance(video.load_frame, VideoFile):
                problems[-1] += f" (frames {index + 1}.. of this video not checked)"
                bar.update(video.num_frames - index)
                return problems
        bar.update(1)
    return problems


def _check_masks(video: Video, load_masks: object, bar: ProgressBar) -> list[str]:
    if not isinstance(load_masks, MaskSequence):  # one file for the whole clip
        try:
            load_masks()
        except DatasetError as error:
            return [str(error)]
        finally:
            bar.update(video.num_frames)
        return []
    problems = []
    for path in load_masks.paths:
        try:
            load_masks.read_file(path)
        except DatasetError as error:
            problems.append(str(error))
        bar.update(1)
    return problems


def check_dataset(dataset: Dataset, show_progress: bool = True) -> list[str]:
    """Every problem found decoding all frames and masks of `dataset` (empty when none)."""
    masked = [
        (video, dataset.ground_truth[video.name].load_masks)
        for video in dataset.test
        if video.name in dataset.ground_truth and dataset.ground_truth[video.name].has_masks
    ]
    total = sum(v.num_frames for v in dataset.videos) + sum(v.num_frames for v, _ in masked)
    problems: list[str] = []
    with progress(total=total, desc="check", unit="image", disable=not show_progress) as bar:
        for video in dataset.videos:
            bar.set_postfix_str(f"{video.split}/{video.name}")
            problems += _check_frames(video, bar)
        for video, load_masks in masked:
            bar.set_postfix_str(f"masks/{video.name}")
            problems += _check_masks(video, load_masks, bar)
    return problems
