"""Frame differences shared by several methods: absolute differences, moving pixels, and the
number of moving pixels in each patch of a grid.

Convention: frame t is compared with frame t-1, and frame 0 takes its difference to frame 1,
so every frame of a clip gets a difference. Usage:

    moving = moving_pixels(gray, threshold=10)          # (T, H, W) bool
    counts = moving_counts(moving, patch=28, stride=7)  # (T, rows, cols) int

A video read in blocks of frames gives the same differences block by block: pass each block
after the first with `previous`, the frame before it (the first block holds at least two
frames, unless the video has one).
"""

from __future__ import annotations

import numpy as np


def absolute_differences(gray: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """T×H×W uint8 gray frames -> T×H×W int16 |frame t - frame t-1| (frame 0: to frame 1, or
    to `previous`, the H×W frame before them when they are a later block of a video)."""
    if previous is not None:
        stacked = np.concatenate([np.asarray(previous)[None], gray]).astype(np.int16)
        return np.abs(np.diff(stacked, axis=0))
    diff = np.abs(np.diff(gray.astype(np.int16), axis=0))
    return np.concatenate([diff[:1], diff]) if len(diff) else np.zeros(gray.shape, np.int16)


def moving_pixels(
    gray: np.ndarray, threshold: float, previous: np.ndarray | None = None
) -> np.ndarray:
    """T×H×W bool: the pixels whose absolute frame difference exceeds `threshold`
    (`previous`: see `absolute_differences`)."""
    return absolute_differences(gray, previous) > threshold


def moving_counts(moving: np.ndarray, patch: int, stride: int) -> np.ndarray:
    """(T, rows, cols) number of moving pixels in each patch of the stride grid (integral image)."""
    integral = np.pad(moving.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0))).astype(np.int64)
    height, width = moving.shape[1:]
    ys = np.arange(0, height - patch + 1, stride)
    xs = np.arange(0, width - patch + 1, stride)
    y0, x0 = np.meshgrid(ys, xs, indexing="ij")
    y1, x1 = y0 + patch, x0 + patch
    return integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]


def cell_means(values: np.ndarray, patch: int) -> np.ndarray:
    """T×H×W -> T×(H/patch)×(W/patch) mean over each cell of the non-overlapping patch grid."""
    count, height, width = values.shape
    if height % patch or width % patch:
        raise ValueError(f"frame size {width}x{height} is not a multiple of the patch {patch}")
    cells = values.reshape(count, height // patch, patch, width // patch, patch)
    return cells.mean(axis=(2, 4))
