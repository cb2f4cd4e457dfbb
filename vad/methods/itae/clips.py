"""Clips of T consecutive frames (Cho, Kim, Lee: "we randomly segment sequential T frames"):
where they start in a video, which frames they hold, and batches of them as tensors.

A video of n >= T frames has clips starting at 0, stride, 2 stride, ... and one more ending at
its last frame (so every frame is in a clip); a video shorter than T has one clip starting at 0
whose missing frames repeat its last frame (`clamped_clip` clamps the indices). At test time a
frame's score is the mean over every clip it appears in (the paper's "mean of error values in
all segments in which it appears"), each appearance counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np
import torch

from vad.methods.clip_batches import clamped_clip, gather


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


class VideoClips:
    """The clips of one video's frames (an array or an HDF5 dataset, T x H x W x C uint8)."""

    def __init__(self, frames: np.ndarray | h5py.Dataset, length: int, stride: int):
        self.frames = frames
        self.length = length
        self.num_frames = len(frames)
        self.starts = clip_starts(self.num_frames, length, stride)

    def batch(self, starts: Sequence[int]) -> torch.Tensor:
        """The clips starting at `starts`, (B, C, T, H, W) in [0, 1]."""
        return gather(self.frames, [clamped_clip(s, self.length, self.num_frames) for s in starts])


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
