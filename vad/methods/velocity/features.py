"""Per-object attributes from one frame's optical flow and boxes: pure functions of that frame,
so that live scoring can call them frame by frame.

Attributes (each its own feature group, scored and calibrated separately, density.py):
- `direction`: the magnitude-weighted histogram of flow orientations inside the box,
  h_b = (1/|box|) * sum over the box's pixels p with orientation in bin b of |f_p|
  (Reiss & Hoshen's velocity feature: `bins` orientation bins over [0, 360°), each holding the
  mean over the box of the magnitudes pointing that way; their released code uses 8 bins, 1 on
  Ped2, and L1 magnitudes |u| + |v|; here the Euclidean magnitude);
- `speed`: the mean and the 90th percentile of the flow magnitude inside the box;
- `size`: the box's width and height, in frame pixels;
- `position`: the box centre, as fractions of the frame's width and height (scene-specific).
Flow is in pixels per frame at the flow stage's size; boxes are in frame pixels and are scaled
to the flow's grid.
"""

from __future__ import annotations

import numpy as np

ATTRIBUTES = ("direction", "speed", "size", "position")
SPEED_PERCENTILE = 90


def attribute_widths(bins: int) -> dict[str, int]:
    """Columns of each attribute in a feature row, in ATTRIBUTES order."""
    return {"direction": bins, "speed": 2, "size": 2, "position": 2}


def attribute_columns(bins: int) -> dict[str, slice]:
    """The slice of a feature row each attribute occupies."""
    columns, start = {}, 0
    for name, width in attribute_widths(bins).items():
        columns[name] = slice(start, start + width)
        start += width
    return columns


def orientation_histogram(flow: np.ndarray, bins: int) -> np.ndarray:
    """h×w×2 flow -> (bins,): per orientation bin, the sum of the magnitudes of the vectors
    pointing that way divided by the number of vectors (orientation atan2(v, u) in [0, 2π),
    image axes: x right, y down)."""
    u, v = flow[..., 0].astype(np.float64).ravel(), flow[..., 1].astype(np.float64).ravel()
    if u.size == 0:
        return np.zeros(bins)
    magnitude = np.hypot(u, v)
    angle = np.mod(np.arctan2(v, u), 2 * np.pi)
    index = np.minimum((angle / (2 * np.pi) * bins).astype(int), bins - 1)
    return np.bincount(index, weights=magnitude, minlength=bins) / u.size


def box_on_grid(
    box: np.ndarray, frame_size: tuple[int, int], grid: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A frame-pixel box [x1, y1, x2, y2] as integer cell bounds of a grid (width, height)
    covering the same frame; never empty."""
    sx, sy = grid[0] / frame_size[0], grid[1] / frame_size[1]
    x1 = min(int(np.floor(box[0] * sx)), grid[0] - 1)
    y1 = min(int(np.floor(box[1] * sy)), grid[1] - 1)
    x2 = max(int(np.ceil(box[2] * sx)), x1 + 1)
    y2 = max(int(np.ceil(box[3] * sy)), y1 + 1)
    return x1, y1, min(x2, grid[0]), min(y2, grid[1])


def frame_features(
    flow: np.ndarray, boxes: np.ndarray, frame_size: tuple[int, int], bins: int
) -> np.ndarray:
    """Feature rows (N, bins + 6) of a frame's N boxes: direction, speed, size, position
    (attribute_columns gives each one's slice). `flow` is h×w×2 at the flow stage's size,
    `boxes` (N, 4) in pixels of a frame of `frame_size` (width, height)."""
    height, width = flow.shape[:2]
    rows = np.zeros((len(boxes), bins + 6), np.float32)
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = box_on_grid(box, frame_size, (width, height))
        crop = flow[y1:y2, x1:x2].astype(np.float32)
        magnitude = np.hypot(crop[..., 0], crop[..., 1])
        rows[i, :bins] = orientation_histogram(crop, bins)
        rows[i, bins] = magnitude.mean()
        rows[i, bins + 1] = np.percentile(magnitude, SPEED_PERCENTILE)
        rows[i, bins + 2] = box[2] - box[0]
        rows[i, bins + 3] = box[3] - box[1]
        rows[i, bins + 4] = (box[0] + box[2]) / 2 / frame_size[0]
        rows[i, bins + 5] = (box[1] + box[3]) / 2 / frame_size[1]
    return rows
