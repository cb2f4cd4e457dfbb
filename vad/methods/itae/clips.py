"""Clips of T consecutive frames (Cho, Kim, Lee: "we randomly segment sequential T frames"):
where they start in a video, which frames they hold, and batches of them as tensors.

A video of n >= T frames has clips starting at 0, stride, 2 stride, ... and one more ending at
its last frame (so every frame is in a clip); a video shorter than T has one clip starting at 0
whose missing frames repeat its last frame (`clip_frames` clamps the indices). At test time a
frame's score is the mean over every clip it appears in (the paper's "mean of error values in
all segments in which it appears"), each appearance counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np
import torch

from vad.cache import read_dataset


def clip_starts(num_frames: int, length: int, stride: int) -> list[int]:
    """Start frames of the clips covering a video of `num_frames` frames."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if length < 1 or stride < 1:
        raise ValueError(f"clip length and stride must be >= 1, got {length} and {stride}")
    last = max(num_frames - length, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def clip_frames(start: int, length: int, num_frames: int) -> np.ndarray:
    """The frame indices of the clip starting at `start` (clamped to the last frame)."""
    return np.minimum(np.arange(start, start + length), num_frames - 1)


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    """(B, T, H, W, C) uint8 -> (B, C, T, H, W) float32 in [0, 1]."""
    array = np.ascontiguousarray(np.moveaxis(frames, -1, 1), dtype=np.float32) / np.float32(255)
    return torch.from_numpy(array)


class VideoClips:
    """The clips of one video's frames (an array or an HDF5 dataset, T x H x W x C uint8)."""

    def __init__(self, frames: np.ndarray | h5py.Dataset, length: int, stride: int):
        self.frames = frames
        self.length = length
        self.num_frames = len(frames)
        self.starts = clip_starts(self.num_frames, length, stride)

    def batch(self, starts: Sequence[int]) -> torch.Tensor:
        """The clips starting at `starts`, (B, C, T, H, W) in [0, 1]."""
        index = [clip_frames(s, self.length, self.num_frames) for s in starts]
        wanted = np.unique(np.concatenate(index))
        rows = read_dataset(self.frames, wanted) if isinstance(self.frames, h5py.Dataset) else (
            self.frames[wanted]
        )
        position = {frame: i for i, frame in enumerate(wanted)}
        return as_tensor(np.stack([rows[[position[f] for f in clip]] for clip in index]))


class FrameAverage:
    """Per-frame means of per-clip values (frame scores or maps) over every clip a frame is
    in, each appearance counted."""

    def __init__(self, num_frames: int, shape: tuple[int, ...] = ()):
        self.sums = np.zeros((num_frames, *shape), np.float64)
        self.counts = np.zeros(num_frames, np.int64)

    def add(self, frames: np.ndarray, values: np.ndarray) -> None:
        """`values` (T, *shape) of a clip holding `frames` (T,)."""
        np.add.at(self.sums, frames, values)
        np.add.at(self.counts, frames, 1)

    def mean(self) -> np.ndarray:
        if (self.counts == 0).any():
            missing = np.flatnonzero(self.counts == 0)[:5].tolist()
            raise ValueError(f"frames {missing} are in no clip")
        return (self.sums / self.counts.reshape(-1, *[1] * (self.sums.ndim - 1))).astype(
            np.float32
        )
