"""`evaluate` fed one video at a time, so memory does not grow with the number of videos.

A score set's maps and the ground-truth masks of a whole dataset need not fit in memory (about
17 GB for ShanghaiTech): per video, the caller reads its scores, map and mask, hands them to
`StreamedEvaluation.add`, and drops them. What is kept is what the metrics need: the video's
post-processed frame scores (one float per frame, for the frame-level metrics, which rank all
frames of all videos together) and, for the pixel level, each frame's critical value
(`PixelRocAccumulator`). `result()` equals `evaluate` over the post-processed scores and maps
of the same videos.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vad.eval.metrics import (
    PIXEL_COVERAGE,
    PixelRocAccumulator,
    RocCurve,
    frame_metrics,
    pixel_metrics,
)
from vad.eval.postprocess import Protocol


class StreamedEvaluation:
    """One score set under one protocol, evaluated video by video.

    `pixels` says whether pixel-level metrics are computed (the caller decides, as `evaluate`
    does from whether maps and masks are given at all): each labelled video added with both a
    map and a mask then counts.
    """

    def __init__(
        self,
        protocol: Protocol,
        labels: Mapping[str, np.ndarray],
        *,
        pixels: bool,
        coverage: float = PIXEL_COVERAGE,
        interpolation: str = "nearest",
    ):
        self.protocol = protocol
        self.labels = labels
        self.pixels = pixels
        self.scores: dict[str, np.ndarray] = {}  # post-processed frame scores per video
        self._pixel_roc = PixelRocAccumulator(coverage=coverage, interpolation=interpolation)

    def add(
        self,
        name: str,
        scores: np.ndarray,
        score_map: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Post-process one video's scores (and map) and take in what the metrics need; returns
        the post-processed scores and map, for figures."""
        if name in self.scores:
            raise ValueError(f"video {name!r} was added twice")
        processed, processed_map = self.protocol.apply_video(name, scores, score_map)
        if name in self.labels and np.shape(self.labels[name]) != processed.shape:
            raise ValueError(
                f"video {name!r}: {processed.size} scores but {np.size(self.labels[name])} labels"
            )
        self.scores[name] = processed
        counted = self.pixels and name in self.labels and mask is not None
        if counted and processed_map is not None:
            self._pixel_roc.add(name, processed_map, mask, self.labels[name])
        return processed, processed_map

    def result(self) -> tuple[dict, dict[str, RocCurve]]:
        """`evaluate`'s metrics dict and curves over every video added."""
        metrics, frame_curve = frame_metrics(self.scores, self.labels)
        curves = {"frame": frame_curve}
        if self.pixels:
            result = self._pixel_roc.result()
            metrics.update(pixel_metrics(result))
            curves["pixel"] = result.curve
        return metrics, curves
