"""Object-velocity density on a stream, with the pipeline's functions: the `objects` stage's
boxes (vad.serve.objects, the run's `objects` settings), the `flow` stage's flow
(vad.serve.motion, the run's `flow` method, options and size, stored as float16), the velocity
method's per-object features and its fitted density, calibration and score maps
(vad.methods.velocity.method.score_objects).

When a frame is scored: frame t's boxes need frame t + 1 (the difference mask looks one frame
ahead) and its features the flow from t to t + 1, so frame t is scored when frame t + 1
arrives; the last frame is scored by `finish`, with the flow into it, as the pipeline scores
the last frame of a video. A stream of one frame has no flow and is not scored (the pipeline
cannot score such a video either). Frames without objects score FLOOR, with a FLOOR map.

Each scored frame carries the explanation of its top object (vad.serve.explained): which
attribute makes it anomalous, and its box, for the score files and the overlay.
"""

from __future__ import annotations

from pathlib import Path
from time import perf_counter

import numpy as np

from vad.frame_cache import convert_frames
from vad.methods.base import Method, StreamScorer
from vad.methods.velocity.density import AttributeDensity
from vad.methods.velocity.explain import TrainingStats
from vad.methods.velocity.features import frame_features
from vad.methods.velocity.method import MODEL_FILE, kept_objects, load_model, score_objects
from vad.params.objects import objects_settings
from vad.serve.explained import ExplainedFrame, Explanation
from vad.serve.motion import FlowStream, run_flow_estimator
from vad.serve.objects import ObjectStream


class VelocityStreamScorer(StreamScorer):
    latency = 1

    def __init__(
        self,
        model: AttributeDensity,
        stats: dict[str, TrainingStats],
        bins: int,
        border_objects: str,
        cell: int,
        objects: ObjectStream,
        flows: FlowStream,
    ):
        self.model, self.stats, self.bins = model, stats, bins
        self.border_objects, self.cell = border_objects, cell
        self.objects, self.flows = objects, flows
        self.flow_from: dict[int, np.ndarray] = {}  # frame t -> flow t..t+1, until scored
        self.last_flow: np.ndarray | None = None  # the flow into the newest frame
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
            self.flow_from[index - 1] = self.last_flow = flow
        start = perf_counter()
        gray = convert_frames(frame[None], None, "gray")[0, ..., 0]
        self.own_timings["frames"] += perf_counter() - start
        ready = self.objects.push(gray)
        return [self._score(t, boxes, self.flow_from.pop(t)) for t, boxes in ready]

    def finish(self) -> list[ExplainedFrame]:
        """The last frame, with the flow into it (the pipeline's rule for a video's end)."""
        ready = self.objects.finish()
        return [self._score(t, boxes, self.last_flow) for t, boxes in ready]

    def _score(self, index: int, boxes: np.ndarray, flow: np.ndarray | None) -> ExplainedFrame:
        start = perf_counter()
        assert flow is not None  # every frame whose boxes are known has a flow
        size = self.size
        boxes = boxes[kept_objects(boxes, size, self.border_objects)]
        features = frame_features(flow, boxes, size, self.bins)
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
        settings["prepare"]["border_objects"],
        settings["score"]["map_cell"],
        ObjectStream(objects_settings(params)["settings"]),
        FlowStream(*run_flow_estimator(params)),
    )
