"""HF2-VAD scoring (Liu et al. ICCV 2021, Sec. 3.3 and 4.2): every object's eq. 9 score, the
frame's the maximum over its objects, maps holding each object's score over its box.

Test videos: their cubes are read from stc.h5 and put through the network INFERENCE_BATCH at a
time (vad.methods.hf2vad.errors); a video's maps are painted a block of frames at a time as they
are written (`MapBlocks`). Training videos: frame scores only, from the errors of their cubes
computed after training (kept with the model), for the statistics that normalise scores
elsewhere (fusion, alert thresholds).

A frame without objects, and every map cell outside the boxes, gets eq. 9's floor (both errors
0, `errors.floor`): the score file names it `static_value`, so that normalisation statistics
leave those frames and cells out (vad.scores).

Per frame, besides the score: `flow_score` and `frame_score`, the normalised errors
(S_r - mu_r) / sigma_r and (S_p - mu_p) / sigma_p of the frame's top object (of a perfect
object, 0 errors, without objects), and `explanation`, the two in words.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from vad.cache import iter_videos, open_cache, read_dataset, video_key
from vad.methods.hf2vad.errors import (
    ErrorStatistics,
    Weights,
    anomaly_scores,
    floor,
    flow_scores,
    frame_scores,
    video_errors,
)
from vad.methods.hf2vad.model import HybridNetwork
from vad.methods.hf2vad.presets import HF2VADPreset
from vad.methods.hf2vad.train import read_training_errors
from vad.methods.object_maps import map_shape, object_map
from vad.progress import progress as progress_bar
from vad.scores import MAP_BLOCK_FRAMES, MapBlocks, Scored, ScoreStream, VideoScores


def stream_weights(preset: HF2VADPreset, parts: str) -> Weights:
    """(w_r, w_p) of eq. 9 for params.yaml's `score_parts`: `full` the preset's (Sec. 4.2),
    `flow` the flow reconstruction error alone, `frame` the frame prediction error alone."""
    if parts == "full":
        return Weights(preset.scoring.flow_weight, preset.scoring.frame_weight)
    if parts == "flow":
        return Weights(1.0, 0.0)
    if parts == "frame":
        return Weights(0.0, 1.0)
    raise ValueError(f"score_parts must be full, flow or frame, got {parts!r}")


@dataclass
class ObjectScores:
    """One video's objects: their frame, eq. 9 score and normalised errors."""

    frame: np.ndarray  # (N,) int
    score: np.ndarray  # (N,) float64, eq. 9
    flow: np.ndarray  # (N,) (S_r - mu_r) / sigma_r
    prediction: np.ndarray  # (N,) (S_p - mu_p) / sigma_p

    @classmethod
    def of(
        cls,
        frame: np.ndarray,
        flow_error: np.ndarray,
        frame_error: np.ndarray,
        stats: ErrorStatistics,
        weights: Weights,
    ) -> ObjectScores:
        return cls(
            np.asarray(frame, np.int64),
            anomaly_scores(flow_error, frame_error, stats, weights),
            flow_scores(flow_error, stats),
            frame_scores(frame_error, stats),
        )


def top_objects(frame: np.ndarray, score: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames,) the index of each frame's highest-scoring object, -1 without objects."""
    top = np.full(num_frames, -1, np.int64)
    order = np.lexsort((score, frame))  # by frame, then score: each frame's last is its top
    last = np.r_[frame[order][1:] != frame[order][:-1], True]
    top[frame[order][last]] = order[last]
    return top


def frame_results(
    objects: ObjectScores, num_frames: int, stats: ErrorStatistics, weights: Weights
) -> VideoScores:
    """Frame scores (max over objects, the floor without) and the per-frame extras."""
    top = top_objects(objects.frame, objects.score, num_frames)
    found = top >= 0
    scores = np.full(num_frames, floor(stats, weights))
    flow = np.full(num_frames, float(flow_scores(np.zeros(1), stats)[0]))
    prediction = np.full(num_frames, float(frame_scores(np.zeros(1), stats)[0]))
    scores[found] = objects.score[top[found]]
    flow[found] = objects.flow[top[found]]
    prediction[found] = objects.prediction[top[found]]
    explanation = np.full(num_frames, "", dtype=object)
    explanation[found] = [
        f"flow reconstruction {r:+.1f} sd, frame prediction {p:+.1f} sd"
        for r, p in zip(flow[found], prediction[found], strict=True)
    ]
    return VideoScores(
        frame_scores=scores.astype(np.float32),
        extras={
            "flow_score": flow.astype(np.float32),
            "frame_score": prediction.astype(np.float32),
            "explanation": explanation,
        },
    )


def score_maps(
    objects: ObjectScores,
    boxes: np.ndarray,
    num_frames: int,
    size: tuple[int, int],
    cell: int,
    floor_value: float,
) -> MapBlocks:
    """Each frame's map (`object_map`), MAP_BLOCK_FRAMES frames at a time."""
    order = np.argsort(objects.frame, kind="stable")
    bounds = np.searchsorted(objects.frame[order], np.arange(num_frames + 1))

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, num_frames, MAP_BLOCK_FRAMES):
            frames = range(start, min(start + MAP_BLOCK_FRAMES, num_frames))
            yield np.stack([
                object_map(boxes[rows], objects.score[rows], size, cell, floor_value)
                for rows in (order[bounds[t] : bounds[t + 1]] for t in frames)
            ])  # fmt: skip

    return MapBlocks((num_frames, *map_shape(size, cell)), blocks)


def training_video(
    errors_path: Path, name: str, stats: ErrorStatistics, weights: Weights
) -> VideoScores:
    """The frame scores and extras of a training video from its cubes' errors (computed after
    training, kept with the model)."""
    errors = read_training_errors(errors_path, name)
    objects = ObjectScores.of(
        errors["frame"], errors["flow_error"], errors["frame_error"], stats, weights
    )
    return frame_results(objects, errors["num_frames"], stats, weights)


def test_video(
    network: HybridNetwork,
    group: h5py.Group,
    stats: ErrorStatistics,
    weights: Weights,
    cell: int,
    device: torch.device,
) -> VideoScores:
    """The scores of one video of stc.h5 from its cubes: frame scores, extras and maps."""
    flow_error, frame_error = video_errors(network, group, device)
    objects = ObjectScores.of(read_dataset(group["frame"]), flow_error, frame_error, stats, weights)
    count, width, height = (int(group.attrs[k]) for k in ("num_frames", "width", "height"))
    result = frame_results(objects, count, stats, weights)
    boxes = read_dataset(group["box"])
    result.score_maps = score_maps(
        objects, boxes, count, (width, height), cell, floor(stats, weights)
    )
    return result


def score_stream(
    name: str,
    network: HybridNetwork,
    stats: ErrorStatistics,
    weights: Weights,
    stc_path: Path,
    errors_path: Path,
    cell: int,
    device: torch.device,
    attrs: dict,
    videos: Collection[str] | None = None,
    progress: bool = True,
) -> ScoreStream:
    """The score set `name` of every video of stc.h5 (training videos first, frame scores
    only), or of the keys `videos` only, one video at a time."""
    attrs = {**attrs, "statistics": stats.to_json(), "static_value": floor(stats, weights)}

    def scored() -> Iterator[Scored]:
        with open_cache(stc_path) as stc:
            chosen = [(s, n, g) for s, n, g in iter_videos(stc)
                      if videos is None or video_key(s, n) in videos]  # fmt: skip
            for split, video, group in progress_bar(
                chosen, desc=f"score {name}", unit="video", disable=not progress
            ):
                if split == "train":
                    yield split, video, training_video(errors_path, video, stats, weights)
                else:
                    yield split, video, test_video(network, group, stats, weights, cell, device)

    return ScoreStream(name, scored(), attrs)
