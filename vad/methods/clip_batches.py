"""Batches of frame clips for the clip methods (ITAE, dissociation): a clip's frame indices
clamped to its video, and the clips of one video as a (B, C, T, H, W) float tensor in [0, 1],
each frame read once."""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np
import torch

from vad.cache import read_dataset


def clamped_clip(start: int, length: int, num_frames: int) -> np.ndarray:
    """Frame indices of the clip of `length` frames starting at `start`; past the video's end
    they repeat its last frame."""
    return np.minimum(np.arange(start, start + length), num_frames - 1)


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    """(B, T, H, W, C) uint8 -> (B, C, T, H, W) float32 in [0, 1]."""
    array = np.ascontiguousarray(np.moveaxis(frames, -1, 1), dtype=np.float32) / np.float32(255)
    return torch.from_numpy(array)


def gather(frames: np.ndarray | h5py.Dataset, clips: Sequence[np.ndarray]) -> torch.Tensor:
    """The clips (frame index arrays of equal length) of one video's frames (an array or an
    HDF5 dataset, T x H x W x C uint8), each frame read once."""
    wanted = np.unique(np.concatenate(clips))
    rows = read_dataset(frames, wanted) if isinstance(frames, h5py.Dataset) else frames[wanted]
    position = np.searchsorted(wanted, np.stack(clips))
    return as_tensor(rows[position])
