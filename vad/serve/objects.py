"""The boxes of a stream, found as the `objects` stage finds them (vad.objects), frame by frame.

The stage's masks come from `vad.objects.foreground.MotionMasks`, pushed one frame at a time:
frame t's difference mask needs frame t + 1, so frame t's boxes are known once frame t + 1 has
arrived (latency 1), and the last frame's when the stream ends. The background subtractors
(MOG2, KNN) are fed every frame once, in order, as the stage feeds a video. Detector boxes
(HOG, ONNX) are found frame by frame, and their pixels are not foreground, as in the stage. A
frame's boxes are its detector boxes, then its foreground boxes (the stage's order).
"""

from __future__ import annotations

from time import perf_counter

import numpy as np

from vad.objects.foreground import MotionMasks, mask_boxes
from vad.objects.runner import build_detectors, detect
from vad.objects.settings import ObjectSettings


class ObjectStream:
    """Push gray H×W uint8 frames (as the stage reads frames.h5); get (frame index, (N, 4)
    float32 boxes) of each frame once known, in order."""

    latency = 1

    def __init__(self, settings: ObjectSettings):
        self.settings = settings
        self.detectors = build_detectors(settings)
        self.masks = MotionMasks(settings)
        self.detected: dict[int, np.ndarray] = {}  # detector boxes of frames not yet boxed
        self.count = 0  # frames pushed
        self.boxed = 0  # frames whose boxes were returned
        self.timings = {"objects": 0.0}

    def push(self, gray: np.ndarray) -> list[tuple[int, np.ndarray]]:
        start = perf_counter()
        (boxes, _), _ = detect(gray, self.settings, self.detectors)
        self.detected[self.count] = boxes
        self.count += 1
        ready = [self._boxes(mask) for mask in self.masks.push(gray)]
        self.timings["objects"] += perf_counter() - start
        return ready

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The last frame's boxes (none for a stream of one frame: the stage's difference mask
        needs two frames)."""
        if self.count < 2:
            return []
        start = perf_counter()
        ready = [self._boxes(mask) for mask in self.masks.finish()]
        self.timings["objects"] += perf_counter() - start
        return ready

    def _boxes(self, mask: np.ndarray) -> tuple[int, np.ndarray]:
        """The next frame's boxes from its motion mask: detector boxes, then foreground."""
        index, self.boxed = self.boxed, self.boxed + 1
        detected = self.detected.pop(index)
        foreground, _ = mask_boxes(mask, self.settings, detected)
        return index, np.concatenate([detected, foreground]).astype(np.float32).reshape(-1, 4)
