"""Appearance detectors needing no downloaded weights: OpenCV's HOG people detector (Dalal &
Triggs; its linear SVM ships inside OpenCV) and an optional user-supplied ONNX model run
through `cv2.dnn`.

ONNX contract: one input, 1×3×H×W float32 RGB in [0, 1] at `objects.onnx_size` (the frame is
stretched to it); one output reshaped to (N, C) with C >= 5, each row [x1, y1, x2, y2, score,
...] in input pixels (further columns, such as a class, are ignored). Boxes are brought back
to frame pixels. A detector with another output format needs a small ONNX wrapper.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vad.objects import boxes as B

Detections = tuple[np.ndarray, np.ndarray]  # boxes (N, 4), scores (N,)


class HogPeople:
    """OpenCV's default HOG people detector on the frame enlarged `upscale` times (its window is
    64×128 px, larger than a Ped2 pedestrian)."""

    def __init__(self, upscale: float, threshold: float):
        self.upscale = upscale
        self.threshold = threshold
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, gray: np.ndarray) -> Detections:
        image = cv2.resize(gray, None, fx=self.upscale, fy=self.upscale)
        rects, weights = self.hog.detectMultiScale(
            image, hitThreshold=self.threshold, winStride=(8, 8), padding=(8, 8), scale=1.05
        )
        if len(rects) == 0:
            return B.EMPTY.copy(), np.zeros(0, np.float32)
        rects = np.asarray(rects, np.float32) / self.upscale
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        height, width = gray.shape
        return B.clip(boxes, width, height), np.asarray(weights, np.float32).reshape(-1)


class OnnxDetector:
    """A user-supplied ONNX detector (see the module docstring for its input and output)."""

    def __init__(self, path: str | Path, size: tuple[int, int]):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"params.yaml 'objects.onnx': detector file {path} not found")
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as error:
            raise ValueError(
                f"params.yaml 'objects.onnx': {path} is not a readable ONNX model "
                f"({str(error).strip().splitlines()[-1]})"
            ) from error
        self.path = path
        self.size = size

    def __call__(self, gray: np.ndarray) -> Detections:
        height, width = gray.shape
        rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        blob = cv2.dnn.blobFromImage(rgb, 1 / 255.0, self.size, swapRB=False, crop=False)
        self.net.setInput(blob)
        out = np.asarray(self.net.forward(), np.float32)
        if out.size == 0:
            return B.EMPTY.copy(), np.zeros(0, np.float32)
        if out.shape[-1] < 5:
            raise ValueError(
                f"{self.path}: the detector's output has rows of {out.shape[-1]} values; "
                "expected [x1, y1, x2, y2, score, ...]"
            )
        rows = out.reshape(-1, out.shape[-1])
        scale = np.array([width / self.size[0], height / self.size[1]] * 2, np.float32)
        return B.clip(rows[:, :4] * scale, width, height), rows[:, 4].copy()
