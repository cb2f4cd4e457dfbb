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


class MotionMasks:
    """The OR of the configured foreground masks (`difference_masks`, `subtractor_masks`) of a
    video pushed one H×W uint8 frame at a time: `push` returns the masks it made known (frame
    t's once frame t+1 has come: its difference mask needs it), `finish` the last frame's. Each
    frame is blurred and fed to the subtractors once."""

    def __init__(self, settings: ObjectSettings):
        self.settings = settings
        self.subtractors = [
            background_subtractor(kind) for kind in settings.foreground if kind != "difference"
        ]
        self.difference = "difference" in settings.foreground
        self.waiting: np.ndarray | None = None  # the frame before's mask, lacking the difference
        self.blurred: np.ndarray | None = None  # that frame blurred
        self.before: np.ndarray | None = None  # and its difference to the one before it

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        mask = np.zeros(frame.shape, bool)
        for model in self.subtractors:
            mask |= model.apply(frame) > 0
        ready = []
        if self.difference:
            current = cv2.GaussianBlur(frame, (self.settings.blur, self.settings.blur), 0)
            if self.blurred is not None:
                change = np.abs(current.astype(np.int16) - self.blurred.astype(np.int16))
                previous = change if self.before is None else self.before  # frame 0: to frame 1
                ready.append(self.waiting | ((previous + change) > self.settings.binary_threshold))
                self.before = change
            self.blurred = current
        elif self.waiting is not None:
            ready.append(self.waiting)
        self.waiting = mask
        return ready

    def finish(self) -> list[np.ndarray]:
        """The last frame's mask: it reuses its difference to the frame before (none: 0)."""
        if self.waiting is None:
            return []
        last, self.waiting = self.waiting, None
        if self.difference:
            before = self.before if self.before is not None else np.zeros(last.shape, np.int16)
            last = last | ((before + before) > self.settings.binary_threshold)
        return [last]


def stream_motion_masks(
    frames: Iterable[np.ndarray], settings: ObjectSettings
) -> Iterator[np.ndarray]:
    """`MotionMasks` of a video fed one H×W uint8 frame at a time, yielded in order."""
    masks = MotionMasks(settings)
    for frame in frames:
        yield from masks.push(frame)
    yield from masks.finish()


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
