"""The frame-difference baseline on a stream: the pipeline's `difference_energy` on the last two
frames.

Frame t is scored as soon as it arrives (its difference is to frame t-1); frame 0, whose
difference is to frame 1 as in the pipeline, waits for frame 1. A stream of a single frame
cannot be scored (the pipeline refuses such a video too).
"""

from __future__ import annotations

from pathlib import Path
from time import perf_counter

import numpy as np

from vad.frame_cache import convert_frames
from vad.methods.base import Method, ScoredFrame, StreamScorer
from vad.methods.baseline.energy import BaselineModel, difference_energy, frame_scores
from vad.methods.baseline.method import read_model


class BaselineStreamScorer(StreamScorer):
    latency = 1  # frame 0 only; every later frame is scored when it arrives

    def __init__(self, model: BaselineModel, size: tuple[int, int], patch: int):
        self.model, self.size, self.patch = model, size, patch
        self.previous: np.ndarray | None = None
        self.count = 0
        self.timings = {"model": 0.0}

    def push(self, frame: np.ndarray) -> list[ScoredFrame]:
        start = perf_counter()
        gray = convert_frames(frame[None], self.size, "gray")
        index, self.count = self.count, self.count + 1
        previous, self.previous = self.previous, gray
        if previous is None:
            return []
        maps = self.model.score_maps(
            difference_energy(np.concatenate([previous, gray]), self.patch)
        )
        scores = frame_scores(maps)
        rows = [0, 1] if index == 1 else [1]
        scored = [ScoredFrame(index - 1 + row, float(scores[row]), maps[row]) for row in rows]
        self.timings["model"] += perf_counter() - start
        return scored

    def finish(self) -> list[ScoredFrame]:
        return []


def baseline_scorer(method: Method, model_dir: Path, params: dict) -> BaselineStreamScorer:
    """`Method.stream_scorer` of the baseline: its grid settings and trained statistics."""
    grid = method.settings(params)["prepare"]
    return BaselineStreamScorer(read_model(model_dir), tuple(grid["size"]), grid["patch"])
