"""Object-velocity density on a stream, with the pipeline's functions: the `objects` stage's
boxes (vad.serve.objects, the run's `objects` settings), the `flow` stage's flow
(vad.serve.motion, the run's `flow` method, options and size, stored as float16), the velocity
method's per-object features and its fitted density, calibration and score maps
(vad.methods.velocity.method.score_objects).

When a frame is scored: frame t's boxes need frame t + 1 (the difference mask looks one frame
ahead) and its features the flows of its window, up to the flow from t + h to t + h + 1
(h = window // 2), so frame t is scored when frame t + h + 1 arrives; the last h + 1 frames
are scored by `finish`, with the windows the pipeline gives the end of a video
(features.window_flows). A stream of one frame has no flow and is not scored (the pipeline
cannot score such a video either). Frames without objects score FLOOR, with a FLOOR map.

Each scored frame carries the explanation of its top object (vad.serve.explained): which
attribute makes it anomalous, and its box, for the score files and the overlay.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from time import perf_counter

import numpy as np

from vad.frame_cache import convert_frames
from vad.methods.base import Method, StreamScorer
from vad.methods.velocity.density import AttributeDensity
from vad.methods.velocity.explain import TrainingStats
from vad.methods.velocity.features import FlowWindow, box_features, window_flows
from vad.methods.velocity.method import MODEL_FILE, kept_objects, load_model, score_objects
from vad.params.objects import objects_settings
from vad.serve.explained import ExplainedFrame, Explanation
from vad.serve.motion import FlowStream, run_flow_estimator
from vad.serve.objects import ObjectStream


class VelocityStreamScorer(StreamScorer):
    def __init__(
        self,
        model: AttributeDensity,
        stats: dict[str, TrainingStats],
        bins: int,
        window: int,
        border_objects: str,
        cell: int,
        objects: ObjectStream,
        flows: FlowStream,
    ):
        self.model, self.stats, self.bins, self.window = model, stats, bins, window
        self.border_objects, self.cell = border_objects, cell
        self.objects, self.flows = objects, flows
        self.latency = 1 + window // 2
        self.maps = FlowWindow(bins)  # flow j (frame j to j + 1), while a window needs it
        self.pending: deque[tuple[int, np.ndarray]] = deque()  # boxes known, not yet scored
        self.num_flows = 0
        self.count = 0
        self.size = (0, 0)  # (width, height) of the stored frames, from the first
        self.own_timings = {"frames": 0.0, "model": 0.0}

    @property
    def timings(self) -> dict[str, float]:
        return {**self.flows.timings, **self.objects.timings, **self.own_timings}

    def push(self, frame: np.ndarray) -> list[ExplainedFrame]:
        index, self.count = self.count, self.count + 1
        if index == 0:
            self.size = (frame.shape[1], frame.shape[0])
        flow = self.flows.push(frame)
        if flow is not None:
            start = perf_counter()
            self.maps.put(index - 1, flow)
            self.own_timings["model"] += perf_counter() - start
            self.num_flows = index
        start = perf_counter()
        gray = convert_frames(frame[None], None, "gray")[0, ..., 0]
        self.own_timings["frames"] += perf_counter() - start
        self.pending.extend(self.objects.push(gray))
        return self._score_ready(final=False)

    def finish(self) -> list[ExplainedFrame]:
        """The last frames, with the windows of a video's end."""
        self.pending.extend(self.objects.finish())
        return self._score_ready(final=True)

    def _score_ready(self, final: bool) -> list[ExplainedFrame]:
        """Score the pending frames whose window's flows have all arrived (all, at the end).
        Before the end, the video has at least num_flows + 1 frames, which gives a ready
        frame the window it gets in the whole video."""
        scored = []
        half = self.window // 2
        while self.pending and self.count >= 2:
            index, boxes = self.pending[0]
            if not final and index + half > self.num_flows - 1:
                break
            frames = self.count if final else self.num_flows + 1
            scored.append(self._score(index, boxes, window_flows(index, frames, self.window)))
            self.pending.popleft()
            # the next frame's window starts at index + 1 - half; the last frame's is the newest
            self.maps.forget_before(min(index + 1 - half, self.num_flows - 1))
        return scored

    def _score(self, index: int, boxes: np.ndarray, flows: list[int]) -> ExplainedFrame:
        start = perf_counter()
        size = self.size
        boxes = boxes[kept_objects(boxes, size, self.border_objects)]
        features = (
            box_features(self.maps.window(flows), boxes, size, self.bins)
            if len(boxes)
            else np.zeros((0, self.bins + 6), np.float32)
        )
        result, score_map = score_objects(
            self.model, self.stats, self.bins, features, boxes, size, self.cell
        )
        explanation = None
        if result.top >= 0:
            box = boxes[result.top] / np.array([size[0], size[1]] * 2, np.float32)
            explanation = Explanation(result.explanation, tuple(float(v) for v in box))
        self.own_timings["model"] += perf_counter() - start
        # rounded to float32 as the score files store frame scores
        return ExplainedFrame(index, float(np.float32(result.score)), score_map, explanation)


def velocity_scorer(method: Method, model_dir: Path, params: dict) -> VelocityStreamScorer:
    """`Method.stream_scorer` of the velocity method: its fitted model, its feature and map
    settings, and the run's `objects` and `flow` settings."""
    settings = method.settings(params)
    model, stats, bins, _ = load_model(Path(model_dir) / MODEL_FILE)
    return VelocityStreamScorer(
        model,
        stats,
        bins,
        settings["prepare"]["window"],
        settings["prepare"]["border_objects"],
        settings["score"]["map_cell"],
        ObjectStream(objects_settings(params)["settings"]),
        FlowStream(*run_flow_estimator(params)),
    )
