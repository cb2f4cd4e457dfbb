"""Boxes as float32 (N, 4) arrays of [x1, y1, x2, y2] in frame pixels, x2/y2 exclusive (a box
[0, 0, 2, 2] covers 4 pixels), and the box filters of HF2-VAD's released pre-processing
(Liu et al., ICCV 2021, pre_process/extract_bboxes.py): confidence and minimum area for
detector boxes, removal of a box mostly covered by a larger one, and the size and aspect limits
of foreground boxes."""

from __future__ import annotations

import numpy as np

EMPTY = np.zeros((0, 4), np.float32)


def as_boxes(values: object) -> np.ndarray:
    """Any (N, 4) sequence -> float32 (N, 4) array (an empty input -> shape (0, 4))."""
    boxes = np.asarray(values, np.float32)
    if boxes.size == 0:
        return EMPTY.copy()
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) [x1, y1, x2, y2], got shape {boxes.shape}")
    return boxes


def areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boxes cut to the frame [0, width] x [0, height]."""
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


def extend(boxes: np.ndarray, pixels: float, width: int, height: int) -> np.ndarray:
    """Every box grown by `pixels` on each side, within the frame (HF2-VAD: 2 px)."""
    grown = boxes + np.array([-pixels, -pixels, pixels, pixels], np.float32)
    return clip(grown, width, height)


def intersections(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Area of the intersection of one box with each of `others`."""
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def drop_covered(boxes: np.ndarray, scores: np.ndarray, cover: float) -> np.ndarray:
    """Indices of the boxes to keep: a box is dropped when more than `cover` of its own area lies
    inside one larger box (HF2-VAD's delCoverBboxes; ped2 0.6). Smallest first, as there."""
    own = areas(boxes)
    order = np.argsort(own, kind="stable")
    keep = []
    for rank, index in enumerate(order):
        larger = boxes[order[rank + 1 :]]
        if own[index] <= 0:
            continue
        ratios = intersections(boxes[index], larger) / own[index]
        if not np.any(ratios > cover):
            keep.append(int(index))
    return np.array(sorted(keep), np.int64)


def filter_detections(
    boxes: np.ndarray, scores: np.ndarray, confidence: float, min_area: float, cover: float
) -> tuple[np.ndarray, np.ndarray]:
    """HF2-VAD's detector-box filter: score > `confidence`, area >= `min_area`, then
    `drop_covered`. Returns the kept boxes and scores."""
    keep = (scores > confidence) & (areas(boxes) >= min_area)
    boxes, scores = boxes[keep], scores[keep]
    kept = drop_covered(boxes, scores, cover)
    return boxes[kept], scores[kept]


def merge_close(boxes: np.ndarray, gap: float) -> np.ndarray:
    """Union of boxes that overlap or lie within `gap` pixels of each other (repeated until no
    two remain so close): the parts of one person split by the foreground mask become one box."""
    boxes = [b.copy() for b in boxes]
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if (
                    a[0] - gap <= b[2]
                    and b[0] - gap <= a[2]
                    and a[1] - gap <= b[3]
                    and b[1] - gap <= a[3]
                ):
                    boxes[i] = np.array(
                        [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])],
                        np.float32,
                    )
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return as_boxes(boxes)
