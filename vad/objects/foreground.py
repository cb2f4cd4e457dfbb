"""Motion foreground boxes of one video, as HF2-VAD's released pre-processing finds the objects
its detector missed (getFgBboxes): the summed absolute difference of Gaussian-blurred frames
t-1, t and t+1 above a threshold, pixels inside detector boxes blanked, then connected
components above a minimum area and below an aspect limit, each box grown by a few pixels.

Added here: optional OpenCV background subtractors (MOG2, KNN; causal, shadows off) OR-ed into
the mask, a morphological closing that reconnects the parts of one person, and the merging of
boxes that overlap (or lie within `merge_gap` px): a group of people walking together stays
one box when their masks touch (no splitting: see DEVIATIONS.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from vad.motion.frame_difference import absolute_differences
from vad.objects import boxes as B
from vad.objects.settings import ObjectSettings


def difference_masks(gray: np.ndarray, blur: int, threshold: float) -> np.ndarray:
    """T×H×W uint8 -> T×H×W bool: |b(t-1) - b(t)| + |b(t) - b(t+1)| > threshold, b the blurred
    frames (the first and last frame reuse their only neighbour)."""
    blurred = np.stack([cv2.GaussianBlur(f, (blur, blur), 0) for f in gray])
    before = absolute_differences(blurred)  # |b(t) - b(t-1)|, frame 0: to frame 1
    after = np.concatenate([before[1:], before[-1:]])  # |b(t+1) - b(t)|, the last: to t-1
    return (before + after) > threshold


def background_subtractor(kind: str) -> cv2.BackgroundSubtractor:
    """A fresh OpenCV MOG2 or KNN background subtractor (OpenCV's defaults, shadows off)."""
    if kind == "mog2":
        return cv2.createBackgroundSubtractorMOG2(detectShadows=False)
    return cv2.createBackgroundSubtractorKNN(detectShadows=False)


def subtractor_masks(gray: np.ndarray, kind: str) -> np.ndarray:
    """Foreground of OpenCV's MOG2 or KNN background subtractor, fed the video in order."""
    model = background_subtractor(kind)
    return np.stack([model.apply(frame) > 0 for frame in gray])


def motion_masks(gray: np.ndarray, settings: ObjectSettings) -> np.ndarray:
    """The OR of the configured foreground masks, T×H×W bool."""
    mask = np.zeros(gray.shape, bool)
    for kind in settings.foreground:
        if kind == "difference":
            mask |= difference_masks(gray, settings.blur, settings.binary_threshold)
        else:
            mask |= subtractor_masks(gray, kind)
    return mask


def mask_boxes(
    mask: np.ndarray, settings: ObjectSettings, blank: np.ndarray = B.EMPTY
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of the foreground components of one H×W bool mask (outside the `blank` boxes), and
    their scores: the fraction of the box that is foreground."""
    height, width = mask.shape
    mask = mask.astype(np.uint8)
    for box in B.extend(blank, settings.extend, width, height).astype(int):
        mask[box[1] : box[3] + 1, box[0] : box[2] + 1] = 0
    if settings.close > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (settings.close, settings.close))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    found = []
    for x, y, w, h, _ in stats[1:count]:
        if (w + 1) * (h + 1) > settings.contour_min_area and max(
            w / h, h / w
        ) < settings.max_aspect:
            found.append([x, y, x + w, y + h])
    boxes = B.extend(B.as_boxes(found), settings.extend, width, height)
    if settings.merge_gap >= 0:
        boxes = B.merge_close(boxes, settings.merge_gap)
    scores = np.array(
        [mask[int(b[1]) : int(b[3]), int(b[0]) : int(b[2])].mean() if B.areas(b[None])[0] else 0.0
         for b in boxes],
        np.float32,
    )  # fmt: skip
    return boxes, scores


def foreground_boxes(
    gray: np.ndarray, settings: ObjectSettings, blanks: list[np.ndarray] | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(boxes, scores) per frame of a T×H×W uint8 video; `blanks[t]` are frame t's detector
    boxes, whose pixels are not foreground (HF2-VAD)."""
    masks = motion_masks(gray, settings)
    for t, mask in enumerate(masks):
        yield mask_boxes(mask, settings, blanks[t] if blanks is not None else B.EMPTY)
