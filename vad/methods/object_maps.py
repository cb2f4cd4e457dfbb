"""Score maps of the object-level methods (velocity, HF2-VAD): each object's score painted over
the cells its box touches."""

from __future__ import annotations

import numpy as np


def map_shape(size: tuple[int, int], cell: int) -> tuple[int, int]:
    """(rows, cols) of the map of a frame of `size` (width, height) in cells of `cell` px."""
    return -(-size[1] // cell), -(-size[0] // cell)


def object_map(
    boxes: np.ndarray,
    object_scores: np.ndarray,
    size: tuple[int, int],
    cell: int,
    floor: float,
) -> np.ndarray:
    """A frame's score map: each object's score over the cells its box [x1, y1, x2, y2) touches
    (the maximum where boxes overlap), `floor` elsewhere. Boxes reaching past the frame's edge
    are cut to it; every box covers at least one cell."""
    rows, cols = map_shape(size, cell)
    score_map = np.full((rows, cols), floor, np.float32)
    for box, score in zip(boxes, object_scores, strict=True):
        x1 = min(max(int(np.floor(box[0])), 0) // cell, cols - 1)
        y1 = min(max(int(np.floor(box[1])), 0) // cell, rows - 1)
        x2 = max(-(-int(np.ceil(box[2])) // cell), x1 + 1)
        y2 = max(-(-int(np.ceil(box[3])) // cell), y1 + 1)
        region = score_map[y1:y2, x1:x2]
        np.maximum(region, np.float32(score), out=region)
    return score_map
