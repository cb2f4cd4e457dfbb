"""The annotated MP4 of `vad score`: each input frame with its score map as a heat-map overlay,
the running score curve along the bottom with the alert threshold line, and the frame's score;
for methods that explain their scores (velocity), the top object's box and, below the score,
what makes it anomalous.

The heat map shows each map cell from the map cells' training mean (transparent) to the alert
threshold (full colour): a cell at or above the threshold alone would raise an alert. The video
is written to a temporary file and renamed when closed, also after Ctrl-C, so `<name>.mp4`
always opens; every input frame is written once (frames without a score say so).
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from vad.cache import atomic_output
from vad.methods.base import ScoredFrame
from vad.serve.explained import Explanation, explanation_of

STRIP = 86  # pixels below the frame: two lines of text, then the score curve
CURVE_TOP = 32  # first row of the curve's plot area in the strip
FONT_SCALE = 0.4
FOURCC = "mp4v"
ALERT_BGR = (40, 40, 230)
CURVE_BGR = (240, 240, 240)


class AnnotatedVideo:
    """`with AnnotatedVideo(path, fps, stats) as video: video.write(frame_rgb, scored)`."""

    def __init__(self, path: Path, fps: float, stats: dict):
        self.path, self.fps, self.stats = Path(path), fps, stats
        self.threshold = stats["threshold"]
        self.low = stats.get("map_mean", stats["train_mean"])
        self.size: tuple[int, int] | None = None  # (width, height) of the first frame
        self.curve: deque[float] = deque()
        self.frames = 0

    def __enter__(self) -> AnnotatedVideo:
        self._output = atomic_output(self.path)
        self._tmp = self._output.__enter__()
        self._video_tmp = self._tmp.with_name(self._tmp.name + ".mp4")  # the writer needs .mp4
        self._writer: cv2.VideoWriter | None = None
        return self

    def write(self, frame_rgb: np.ndarray, scored: ScoredFrame | None) -> None:
        if self.size is None:
            self.size = (frame_rgb.shape[1], frame_rgb.shape[0])
            self.curve = deque(maxlen=self.size[0])
            self._writer = cv2.VideoWriter(
                str(self._video_tmp),
                cv2.VideoWriter_fourcc(*FOURCC),
                self.fps,
                (self.size[0], self.size[1] + STRIP),
            )
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: OpenCV cannot write an {FOURCC} MP4 here")
        if (frame_rgb.shape[1], frame_rgb.shape[0]) != self.size:
            frame_rgb = cv2.resize(frame_rgb, self.size, interpolation=cv2.INTER_AREA)
        image = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
        if scored is not None and scored.score_map is not None:
            image = self._overlay(image, scored.score_map)
        explanation = explanation_of(scored)
        if explanation is not None:
            self._outline(image, explanation, scored.score > self.threshold)
        if scored is not None:
            self.curve.append(scored.score)
        self._writer.write(np.concatenate([image, self._strip(scored)]))
        self.frames += 1

    def _overlay(self, image: np.ndarray, score_map: np.ndarray) -> np.ndarray:
        span = self.threshold - self.low if self.threshold > self.low else 1.0
        heat = np.clip((score_map.astype(np.float32) - self.low) / span, 0.0, 1.0)
        heat = cv2.resize(heat, self.size, interpolation=cv2.INTER_NEAREST)
        colour = cv2.applyColorMap(np.uint8(heat * 255), cv2.COLORMAP_JET)
        alpha = (0.6 * heat)[..., None]
        return np.uint8(image * (1 - alpha) + colour * alpha)

    def _outline(self, image: np.ndarray, explanation: Explanation, alert: bool) -> None:
        """The explained object's box (given as fractions of the frame) drawn on `image`."""
        x1, y1, x2, y2 = explanation.box
        width, height = self.size
        corners = (int(x1 * width), int(y1 * height)), (int(x2 * width) - 1, int(y2 * height) - 1)
        cv2.rectangle(image, *corners, ALERT_BGR if alert else CURVE_BGR, 1)

    def _strip(self, scored: ScoredFrame | None) -> np.ndarray:
        width = self.size[0]
        strip = np.zeros((STRIP, width, 3), np.uint8)
        values = np.array(self.curve, dtype=np.float64)
        top = max(self.threshold, *values) if len(values) else self.threshold
        bottom = min(self.low, *values) if len(values) else self.low
        span = (top - bottom) * 1.15 or 1.0

        def y(value: float) -> int:
            height = STRIP - 4 - CURVE_TOP
            return int(round(STRIP - 4 - (value - bottom) / span * height))

        cv2.line(strip, (0, y(self.threshold)), (width - 1, y(self.threshold)), ALERT_BGR, 1)
        if len(values) > 1:
            points = np.stack([np.arange(len(values)), [y(v) for v in values]], axis=1)
            cv2.polylines(strip, [points.astype(np.int32)], False, CURVE_BGR, 1)
        if scored is None:
            text, colour = "not scored", CURVE_BGR
        else:
            alert = scored.score > self.threshold
            text = f"frame {scored.index}  score {scored.score:.4g}" + ("  ALERT" if alert else "")
            colour = ALERT_BGR if alert else CURVE_BGR
        put_text(strip, text, 14, colour)
        explanation = explanation_of(scored)
        if explanation is not None:
            put_text(strip, explanation.text, 28, colour)
        return strip

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._writer is not None:
                self._writer.release()
                os.replace(self._video_tmp, self._tmp)
        finally:
            if self._video_tmp.exists():
                self._video_tmp.unlink()
            if self._writer is None and exc_type is None:  # no frame came: write no video
                empty = ValueError(f"{self.path}: no frame to write")
                self._output.__exit__(ValueError, empty, None)
            else:
                self._output.__exit__(exc_type, exc, tb)


def put_text(image: np.ndarray, text: str, baseline: int, colour: tuple[int, int, int]) -> None:
    """One line of text from the left edge, cut (ending in "...") to the image's width."""
    font, room = cv2.FONT_HERSHEY_SIMPLEX, image.shape[1] - 8

    def width(line: str) -> int:
        return cv2.getTextSize(line, font, FONT_SCALE, 1)[0][0]

    line, kept = text, len(text)
    while kept > 0 and width(line) > room:
        kept -= 1
        line = text[:kept] + "..."
    shown = line if kept else ""
    cv2.putText(image, shown, (4, baseline), font, FONT_SCALE, colour, 1, cv2.LINE_AA)
