"""Per-object attributes from the optical flow around one frame and its boxes: pure functions
of the flows in that frame's window, so that live scoring can call them frame by frame.

Attributes (grouped by the `attributes` param, each group scored and calibrated on its own,
density.py):
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

Temporal window (`window` frames, odd): `direction` and `speed` are read from the per-pixel
maps (`flow_maps`: the magnitude in each orientation bin, and the magnitude) averaged over the
flows of the frames t - window//2 .. t + window//2 that the video has, inside frame t's box
(`window_flows`, `FlowWindow`, `box_features`). One frame's DIS flow is noisy at a small
object; its average over a few frames is not. window = 1 is the paper's single flow.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
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


def orientation_bins(u: np.ndarray, v: np.ndarray, bins: int) -> np.ndarray:
    """Orientation bin of each vector: atan2(v, u) in [0, 2π) cut into `bins` equal bins
    (image axes: x right, y down)."""
    angle = np.mod(np.arctan2(v, u), 2 * np.pi)
    return np.minimum((angle / (2 * np.pi) * bins).astype(np.int64), bins - 1)


def orientation_histogram(flow: np.ndarray, bins: int) -> np.ndarray:
    """h×w×2 flow -> (bins,): per orientation bin, the sum of the magnitudes of the vectors
    pointing that way divided by the number of vectors."""
    u, v = flow[..., 0].astype(np.float64).ravel(), flow[..., 1].astype(np.float64).ravel()
    if u.size == 0:
        return np.zeros(bins)
    index = orientation_bins(u, v, bins)
    return np.bincount(index, weights=np.hypot(u, v), minlength=bins) / u.size


def flow_maps(flow: np.ndarray, bins: int) -> np.ndarray:
    """h×w×2 flow -> (bins + 1, h, w) float32: channel b holds the magnitude of the vectors in
    orientation bin b (0 elsewhere), the last channel the magnitude. A box's mean over channel
    b is bin b of its orientation histogram. (OpenCV's cartToPolar: its angles are within
    0.3° of atan2, so a vector on a bin's edge may fall in the next bin.)"""
    u = np.ascontiguousarray(flow[..., 0], dtype=np.float32)
    v = np.ascontiguousarray(flow[..., 1], dtype=np.float32)
    magnitude, angle = cv2.cartToPolar(u, v)
    index = np.minimum((angle * np.float32(bins / (2 * np.pi))).astype(np.int32), bins - 1)
    maps = np.empty((bins + 1, *magnitude.shape), np.float32)
    for b in range(bins):
        np.multiply(magnitude, index == b, out=maps[b])
    maps[bins] = magnitude
    return maps


def window_flows(t: int, num_frames: int, window: int) -> list[int]:
    """Indices of the flows averaged for frame t of a video of `num_frames` frames: those of
    frames t - window//2 .. t + window//2 inside the video, frame s using flow s (from s to
    s + 1) and the last frame the flow into it; ascending, distinct."""
    if num_frames < 2:
        raise ValueError(f"a video of {num_frames} frame(s) has no flow")
    half = window // 2
    frames = range(max(t - half, 0), min(t + half, num_frames - 1) + 1)
    return sorted({min(s, num_frames - 2) for s in frames})


class FlowWindow:
    """The flow maps of the flows a frame's window needs, kept until no later frame needs
    them."""

    def __init__(self, bins: int):
        self.bins = bins
        self.maps: dict[int, np.ndarray] = {}

    def __contains__(self, index: int) -> bool:
        return index in self.maps

    def put(self, index: int, flow: np.ndarray) -> None:
        self.maps[index] = flow_maps(flow, self.bins)

    def forget_before(self, index: int) -> None:
        for old in [i for i in self.maps if i < index]:
            del self.maps[old]

    def window(self, indices: Sequence[int]) -> list[np.ndarray]:
        """The maps of these flows, in the order given."""
        missing = [i for i in indices if i not in self.maps]
        if missing:
            raise KeyError(f"flow maps {missing} were not put in the window")
        return [self.maps[i] for i in indices]


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


def box_features(
    maps: Sequence[np.ndarray], boxes: np.ndarray, frame_size: tuple[int, int], bins: int
) -> np.ndarray:
    """Feature rows (N, bins + 6) of a frame's N boxes: direction, speed, size, position
    (attribute_columns gives each one's slice). `maps`: the flow maps (`flow_maps`, each
    (bins + 1, h, w) at the flow stage's size) of the frame's window, averaged over the box in
    the order given; `boxes` (N, 4) in pixels of a frame of `frame_size` (width, height)."""
    height, width = maps[0].shape[1:]
    rows = np.zeros((len(boxes), bins + 6), np.float32)
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = box_on_grid(box, frame_size, (width, height))
        crop = maps[0][:, y1:y2, x1:x2].copy()
        for other in maps[1:]:
            crop += other[:, y1:y2, x1:x2]
        crop /= np.float32(len(maps))
        rows[i, :bins] = crop[:bins].mean(axis=(1, 2))
        rows[i, bins] = crop[bins].mean()
        rows[i, bins + 1] = np.percentile(crop[bins], SPEED_PERCENTILE)
        rows[i, bins + 2] = box[2] - box[0]
        rows[i, bins + 3] = box[3] - box[1]
        rows[i, bins + 4] = (box[0] + box[2]) / 2 / frame_size[0]
        rows[i, bins + 5] = (box[1] + box[3]) / 2 / frame_size[1]
    return rows


def frame_features(
    flow: np.ndarray, boxes: np.ndarray, frame_size: tuple[int, int], bins: int
) -> np.ndarray:
    """`box_features` of one flow (h×w×2): the features with a window of one frame."""
    return box_features([flow_maps(flow, bins)], boxes, frame_size, bins)


def group_members(group: str) -> list[str]:
    """The attributes of a feature group: "speed+size" -> ["speed", "size"]."""
    return group.split("+")


def group_columns(group: str, bins: int) -> list[tuple[str, int, int]]:
    """(attribute, its column, the feature row's column) of each column of a group."""
    columns = attribute_columns(bins)
    return [
        (name, i, column)
        for name in group_members(group)
        for i, column in enumerate(range(columns[name].start, columns[name].stop))
    ]


def group_features(features: np.ndarray, bins: int, groups: Sequence[str]) -> dict[str, np.ndarray]:
    """Feature rows (N, bins + 6) -> each group's columns (N, its width)."""
    return {
        group: features[:, [column for _, _, column in group_columns(group, bins)]]
        for group in groups
    }
