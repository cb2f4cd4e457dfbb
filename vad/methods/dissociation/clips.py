"""Clips of T consecutive frames for the dissociation model (Chang et al. 2022, Sec. 3.1:
frames x_1..x_T; the spatial auto-encoder reconstructs x_1, the FIF; the motion auto-encoder
sees x_1..x_{T-1} and predicts x_T - x_1, x_T being the LIF).

Training: clips start at 0, stride, 2 stride, ... up to the last full clip; a video shorter than
T frames has one clip whose missing frames repeat its last frame (`training_clip`).
Scoring: frame t is scored as the LIF of the clip ending at t (frames t-T+1 .. t), so every
frame has a score as soon as it arrives; at a video's start (t < T - 1) the missing earlier
frames repeat frame 0 (`clip_ending_at`), i.e. the first frame is scored from a static clip.

    clip = as_tensor(frames[clip_ending_at(t, 5)][None])   # (1, C, 5, H, W) in [0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np
import torch

from vad.cache import read_dataset


def training_starts(num_frames: int, length: int, stride: int) -> list[int]:
    """Start frames of a video's training clips."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if length < 2 or stride < 1:
        raise ValueError(f"clip length must be >= 2 and stride >= 1, got {length} and {stride}")
    return list(range(0, max(num_frames - length, 0) + 1, stride))


def training_clip(start: int, length: int, num_frames: int) -> np.ndarray:
    """Frame indices of the training clip starting at `start` (clamped to the last frame)."""
    return np.minimum(np.arange(start, start + length), num_frames - 1)


def clip_ending_at(frame: int, length: int) -> np.ndarray:
    """Frame indices of the clip whose LIF is `frame` (clamped to frame 0 at a video's start)."""
    return np.maximum(np.arange(frame - length + 1, frame + 1), 0)


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    """(B, T, H, W, C) uint8 -> (B, C, T, H, W) float32 in [0, 1]."""
    array = np.ascontiguousarray(np.moveaxis(frames, -1, 1), dtype=np.float32) / np.float32(255)
    return torch.from_numpy(array)


def gather(frames: np.ndarray | h5py.Dataset, clips: Sequence[np.ndarray]) -> torch.Tensor:
    """The clips (frame index arrays) of one video's frames, each frame read once."""
    wanted = np.unique(np.concatenate(clips))
    rows = read_dataset(frames, wanted) if isinstance(frames, h5py.Dataset) else frames[wanted]
    position = np.searchsorted(wanted, np.stack(clips))
    return as_tensor(rows[position])
