"""`evaluate` fed one video at a time, and each video's map and mask a block of frames at a time,
so memory grows with neither the number nor the length of the videos.

A score set's maps and the ground-truth masks of a whole dataset need not fit in memory (about
17 GB for ShanghaiTech), nor need one video's (about 400 MB of masks for a long ShanghaiTech
clip): per video, the caller opens it with its frame scores (`StreamedEvaluation.video`, one
float per frame, read whole) and a score map that is read a range of rows at a time (an HDF5
dataset, or an array), then hands it the mask of one block of frames after the other
(`StreamedVideo.add_block`), which reads that block of the map with the halo of frames its
smoothing needs, post-processes it exactly as the whole map would be (`Protocol.map_rows`) and
takes it into the pixel-level ROC. What is kept is what the metrics need: the video's
post-processed frame scores (for the frame-level metrics, which rank all frames of all videos
together) and, for the pixel level, each frame's critical value (`PixelRocAccumulator`).
`result()` equals `evaluate` over the post-processed scores and maps of the same videos,
whatever the blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

import numpy as np

from vad.eval.metrics import (
    PIXEL_COVERAGE,
    PixelRocAccumulator,
    PixelVideo,
    RocCurve,
    frame_metrics,
    pixel_metrics,
)
from vad.eval.postprocess import Affine, Protocol, TimeRows, check_map_shape


class StreamedVideo:
    """A video open in a `StreamedEvaluation`: its post-processed frame scores (`scores`), and
    its score map post-processed and taken in a block of frames at a time, in order."""

    def __init__(
        self,
        name: str,
        scores: np.ndarray,
        protocol: Protocol,
        affine: Affine,
        score_map: TimeRows | None,
        pixels: PixelVideo | None,
    ):
        self.name = name
        self.scores = scores
        self.protocol = protocol
        self.affine = affine
        self.score_map = score_map
        self.pixels = pixels  # None unless the video counts at pixel level
        self.n_frames = 0  # of the map taken so far: the next block starts at this frame

    def add_block(self, first: int, end: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Frames first .. end - 1 of the post-processed score map (returned, for figures),
        each block starting where the last one ended; taken into the pixel-level ROC with
        their (end - first, H, W) mask when the video counts there."""
        if self.score_map is None:
            raise ValueError(f"video {self.name!r} was opened without a score map")
        if first != self.n_frames or not first < end <= len(self.scores):
            raise ValueError(
                f"video {self.name!r}: blocks must follow each other up to frame "
                f"{len(self.scores)}: the next starts at frame {self.n_frames}, "
                f"got frames {first} .. {end - 1}"
            )
        rows = self.protocol.map_rows(self.name, self.score_map, self.affine, first, end)
        if self.pixels is not None:
            if mask is None:
                raise ValueError(
                    f"video {self.name!r} counts at pixel level: frames {first} .. {end - 1} "
                    "need their mask"
                )
            self.pixels.add_block(rows, mask)
        self.n_frames = end
        return rows


class StreamedEvaluation:
    """One score set under one protocol, evaluated video by video, each video's map and mask a
    block of frames at a time: memory holds one block, not one video.

    `pixels` says whether pixel-level metrics are computed (the caller decides, as `evaluate`
    does from whether maps and masks are given at all): each labelled video opened with both a
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
        """One whole video at once, as one block: its scores, (T, h, w) map and (T, H, W)
        mask; returns the post-processed scores and map, for figures."""
        score_map = None if score_map is None else np.asarray(score_map)
        mask_shape = None if mask is None else np.shape(mask)
        processed_map = None
        with self.video(name, scores, score_map, mask_shape) as video:
            if score_map is not None:
                processed_map = video.add_block(0, len(video.scores), mask)
        return video.scores, processed_map

    @contextmanager
    def video(
        self,
        name: str,
        scores: np.ndarray,
        score_map: TimeRows | None = None,
        mask_shape: tuple[int, ...] | None = None,
    ) -> Iterator[StreamedVideo]:
        """Open one video: its (T,) frame scores are post-processed at once
        (`StreamedVideo.scores`); its (T, h, w) score map, an array or anything read a range of
        rows at a time like one (an HDF5 dataset), comes a block of frames at a time
        (`StreamedVideo.add_block`), with the mask of the block when the video has masks, of
        shape `mask_shape` (T, H, W). The video counts when the `with` block ends without an
        error."""
        if name in self.scores:
            raise ValueError(f"video {name!r} was added twice")
        processed, affine = self.protocol.frame_scores(name, scores)
        if name in self.labels and np.shape(self.labels[name]) != processed.shape:
            raise ValueError(
                f"video {name!r}: {processed.size} scores but {np.size(self.labels[name])} labels"
            )
        if score_map is not None:
            check_map_shape(name, score_map.shape, processed.size)
        counted = self.pixels and name in self.labels and mask_shape is not None
        with ExitStack() as stack:
            pixels = None
            if counted and score_map is not None:
                pixels = stack.enter_context(
                    self._pixel_roc.video(name, self.labels[name], mask_shape)
                )
            yield StreamedVideo(name, processed, self.protocol, affine, score_map, pixels)
        self.scores[name] = processed

    def result(self) -> tuple[dict, dict[str, RocCurve]]:
        """`evaluate`'s metrics dict and curves over every video added."""
        metrics, frame_curve = frame_metrics(self.scores, self.labels)
        curves = {"frame": frame_curve}
        if self.pixels:
            result = self._pixel_roc.result()
            metrics.update(pixel_metrics(result))
            curves["pixel"] = result.curve
        return metrics, curves
