"""Motion foreground boxes of one video, as HF2-VAD's released pre-processing finds the objects
its detector missed (getFgBboxes): the summed absolute difference of Gaussian-blurred frames
t-1, t and t+1 above a threshold, pixels inside detector boxes blanked, then connected
components above a minimum area and below an aspect limit, each box grown by a few pixels.

Added here: optional OpenCV background subtractors (MOG2, KNN; causal, shadows off) OR-ed into
the mask, a morphological closing that reconnects the parts of one person, and the merging of
boxes that overlap (or lie within `merge_gap` px): a group of people walking together stays
one box when their masks touch (no splitting: see DEVIATIONS.md).

A video is fed one frame at a time (`stream_motion_masks`): frame t's mask is known once frame
t+1 has come, so memory holds three frames, whatever the video's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

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
    return np.stack(list(stream_motion_masks(gray, settings)))


def stream_motion_masks(
    frames: Iterable[np.ndarray], settings: ObjectSettings
) -> Iterator[np.ndarray]:
    """`motion_masks` of a video fed one H×W uint8 frame at a time, yielded in order (frame
    t's once frame t+1 has come: its difference mask needs it)."""
    subtractors = [
        background_subtractor(kind) for kind in settings.foreground if kind != "difference"
    ]
    difference = "difference" in settings.foreground
    waiting: np.ndarray | None = None  # the mask of the frame before, lacking the difference
    blurred = before = None  # that frame blurred, and its difference to the one before it
    for frame in frames:
        mask = np.zeros(frame.shape, bool)
        for model in subtractors:
            mask |= model.apply(frame) > 0
        if difference:
            current = cv2.GaussianBlur(frame, (settings.blur, settings.blur), 0)
            if blurred is not None:
                change = np.abs(current.astype(np.int16) - blurred.astype(np.int16))
                previous = change if before is None else before  # frame 0: to frame 1
                yield waiting | ((previous + change) > settings.binary_threshold)
                before = change
            blurred = current
        else:
            if waiting is not None:
                yield waiting
        waiting = mask
    if waiting is None:
        return
    if difference:  # the last frame reuses its difference to the frame before (none: 0)
        last = before if before is not None else np.zeros(waiting.shape, np.int16)
        waiting = waiting | ((last + last) > settings.binary_threshold)
    yield waiting


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
    for t, mask in enumerate(stream_motion_masks(gray, settings)):
        yield mask_boxes(mask, settings, blanks[t] if blanks is not None else B.EMPTY)
