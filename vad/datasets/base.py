"""The types every dataset reader returns: videos with lazily read frames, and ground truth."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FrameLoader = Callable[[int], np.ndarray]
MaskLoader = Callable[[], np.ndarray]


class DatasetError(ValueError):
    """Bad or missing input data; the message names the file, key or frame at fault."""


@dataclass(frozen=True)
class Video:
    """One clip. Frames are read on demand as H×W×3 uint8 RGB arrays.

    `load_frame(i)` must return frame `i` (0-based) or raise `DatasetError` naming the file.
    """

    name: str
    split: str  # "train" or "test"
    num_frames: int
    height: int
    width: int
    source: str  # the path the clip was read from (folder or video file)
    load_frame: FrameLoader = field(repr=False, compare=False)

    def frame(self, index: int) -> np.ndarray:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.source}: frame {index} out of range 0..{self.num_frames - 1}")
        frame = self.load_frame(index)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise DatasetError(
                f"{self.source}: frame {index} has shape {frame.shape} {frame.dtype}, "
                f"expected ({self.height}, {self.width}, 3) uint8"
            )
        return frame

    def frames(self) -> Iterator[np.ndarray]:
        for index in range(self.num_frames):
            yield self.frame(index)


@dataclass(frozen=True)
class GroundTruth:
    """Per-frame labels (True = anomalous) and, where the dataset has them, per-pixel masks.

    `load_masks()` returns a T×H×W bool array at the video's original size.
    """

    labels: np.ndarray  # shape (T,), bool
    load_masks: MaskLoader | None = field(default=None, repr=False, compare=False)

    @property
    def has_masks(self) -> bool:
        return self.load_masks is not None

    def mask_frames(self) -> Iterator[np.ndarray]:
        """The masks one H×W frame at a time: from the loader's own `frames()` where it has one
        (masks stored or drawn frame by frame, read in memory of one frame), else from the
        whole stack `load_masks()` returns (masks stored as one file per clip)."""
        if self.load_masks is None:
            raise ValueError("this ground truth has no masks")
        frames = getattr(self.load_masks, "frames", None)
        yield from frames() if frames is not None else self.load_masks()


@dataclass
class Dataset:
    """A dataset as distributed: training clips (all normal) and test clips with ground truth.

    `ground_truth` maps a test video name to its GroundTruth; it is empty for unlabelled footage.
    `scenes` are the scenes the clips were chosen from (ShanghaiTech's `data.scenes`), or None
    when the dataset is read whole.
    """

    name: str
    root: Path
    train: list[Video]
    test: list[Video]
    ground_truth: dict[str, GroundTruth] = field(default_factory=dict)
    scenes: tuple[str, ...] | None = None

    @property
    def videos(self) -> list[Video]:
        return self.train + self.test

    @property
    def has_pixel_masks(self) -> bool:
        return bool(self.ground_truth) and all(g.has_masks for g in self.ground_truth.values())

    def summary(self) -> dict:
        """The JSON summary printed by `python -m vad info`."""
        labelled = [self.ground_truth[v.name] for v in self.test if v.name in self.ground_truth]
        return {
            "name": self.name,
            "root": str(self.root),
            "scenes": list(self.scenes) if self.scenes is not None else None,
            "train_videos": len(self.train),
            "train_frames": sum(v.num_frames for v in self.train),
            "test_videos": len(self.test),
            "test_frames": sum(v.num_frames for v in self.test),
            "test_anomalous_frames": int(sum(int(g.labels.sum()) for g in labelled)),
            "has_ground_truth": bool(labelled),
            "has_pixel_masks": self.has_pixel_masks,
        }


def check_labels(video: Video, labels: np.ndarray, source: str | Path) -> np.ndarray:
    """Validate a label vector against its video; return it as a bool array."""
    labels = np.asarray(labels).astype(bool).reshape(-1)
    if labels.shape[0] != video.num_frames:
        raise DatasetError(
            f"{source}: {labels.shape[0]} frame labels for video {video.name!r} "
            f"which has {video.num_frames} frames"
        )
    return labels


def check_masks(video: Video, masks: np.ndarray, source: str | Path) -> np.ndarray:
    """Validate a T×H×W mask stack against its video; return it as bool."""
    masks = np.asarray(masks)
    expected = (video.num_frames, video.height, video.width)
    if masks.shape != expected:
        raise DatasetError(
            f"{source}: masks of shape {masks.shape} for video {video.name!r}, expected {expected}"
        )
    return masks.astype(bool)


def range_problem(ranges: list[tuple[int, int]], num_frames: int) -> str | None:
    """Why `ranges` are not the anomalous ranges of a clip of `num_frames` frames, or None when
    they are: 1-based inclusive [start, end] with 1 <= start <= end <= num_frames, ascending and
    disjoint."""
    previous_end = 0
    for start, end in ranges:
        if start > end:
            return f"range [{start}, {end}] ends before it starts"
        if not 1 <= start <= end <= num_frames:
            return f"range [{start}, {end}] outside frames 1..{num_frames}"
        if start <= previous_end:
            return f"range [{start}, {end}] does not start after the previous range's end"
        previous_end = end
    return None


def ranges_to_labels(ranges: list[tuple[int, int]], num_frames: int, source: str) -> np.ndarray:
    """1-based inclusive [start, end] ranges -> bool labels of length num_frames."""
    labels = np.zeros(num_frames, dtype=bool)
    for start, end in ranges:
        if not 1 <= start <= end <= num_frames:
            raise DatasetError(
                f"{source}: anomalous range [{start}, {end}] outside frames 1..{num_frames}"
            )
        labels[start - 1 : end] = True
    return labels
