"""The boxes of a stream, found as the `objects` stage finds them (vad.objects), frame by frame.

The stage's difference mask of frame t is |b(t-1) - b(t)| + |b(t) - b(t+1)| of the blurred
frames, frame 0 taking twice its difference to frame 1 and the last frame twice its difference
to the one before: `difference_masks` on the window of frames t-1, t, t+1 (0, 1 for frame 0;
the last two at the end) gives exactly that frame's mask. So frame t's boxes are known once
frame t + 1 has arrived (latency 1), and the last frame's when the stream ends. The background
subtractors (MOG2, KNN) are causal: each is fed every frame once, in order, as the stage feeds
a video. Detector boxes (HOG, ONNX) are found frame by frame, and their pixels are not
foreground, as in the stage. A frame's boxes are its detector boxes, then its foreground
boxes (the stage's order).
"""

from __future__ import annotations

from collections import deque
from time import perf_counter

import numpy as np

from vad.objects.foreground import background_subtractor, difference_masks, mask_boxes
from vad.objects.runner import build_detectors, detect
from vad.objects.settings import ObjectSettings


class ObjectStream:
    """Push gray H×W uint8 frames (as the stage reads frames.h5); get (frame index, (N, 4)
    float32 boxes) of each frame once known, in order."""

    latency = 1

    def __init__(self, settings: ObjectSettings):
        self.settings = settings
        self.detectors = build_detectors(settings)
        self.differences = "difference" in settings.foreground
        self.subtractors = [
            background_subtractor(kind) for kind in settings.foreground if kind != "difference"
        ]
        self.window: deque[np.ndarray] = deque(maxlen=3)  # the last gray frames
        # frames whose boxes are not known yet: index -> (detector boxes, subtractor mask)
        self.waiting: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.count = 0  # frames pushed
        self.timings = {"objects": 0.0}

    def push(self, gray: np.ndarray) -> list[tuple[int, np.ndarray]]:
        start = perf_counter()
        index, self.count = self.count, self.count + 1
        (boxes, _), _ = detect(gray, self.settings, self.detectors)
        subtracted = np.zeros(gray.shape, bool)
        for subtractor in self.subtractors:
            subtracted |= subtractor.apply(gray) > 0
        self.waiting[index] = (boxes, subtracted)
        self.window.append(gray)
        ready = [] if index == 0 else [self._boxes(index - 1, last=False)]
        self.timings["objects"] += perf_counter() - start
        return ready

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The last frame's boxes (none for a stream of one frame: the stage's difference mask
        needs two frames)."""
        if self.count < 2:
            return []
        start = perf_counter()
        ready = [self._boxes(self.count - 1, last=True)]
        self.timings["objects"] += perf_counter() - start
        return ready

    def _boxes(self, index: int, last: bool) -> tuple[int, np.ndarray]:
        """Frame `index`'s boxes: the middle of the window (its first for frame 0, its last
        at the end of the stream)."""
        detected, mask = self.waiting.pop(index)
        if self.differences:
            frames = list(self.window)
            if last:  # frames T-2, T-1
                frames, position = frames[-2:], 1
            elif index == 0:  # frames 0, 1
                position = 0
            else:  # frames t-1, t, t+1
                position = 1
            s = self.settings
            mask = mask | difference_masks(np.stack(frames), s.blur, s.binary_threshold)[position]
        foreground, _ = mask_boxes(mask, self.settings, detected)
        return index, np.concatenate([detected, foreground]).astype(np.float32).reshape(-1, 4)
