"""Late fusion of several streaming scorers, as the `fuse` stage fuses score sets
(vad.fusion): each part normalised by its training statistics, weighted and summed, per map cell
when the parts fuse on maps (the frame score is then the fused map's maximum), else per frame.

A frame is returned once every part has scored it, so the latency is the largest of the parts'.
The parts are pushed each frame concurrently, one thread each (their flow, rank pooling and
model calls release the GIL), so two streams use two cores; each part's scores are the same
as when run alone.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from vad.fusion import weighted_sum
from vad.methods.base import ScoredFrame, StreamScorer


class FusedStreamScorer(StreamScorer):
    def __init__(
        self,
        parts: dict[str, StreamScorer],
        weights: dict[str, float],
        stats: dict[str, tuple[float, float]],
        on_maps: bool,
    ):
        if set(parts) != set(weights) or set(parts) != set(stats):
            raise ValueError(
                f"fused scorer: parts {sorted(parts)}, weights {sorted(weights)} and "
                f"statistics {sorted(stats)} differ"
            )
        self.parts, self.on_maps = parts, on_maps
        self.order = list(parts)
        self.weights = [weights[part] for part in self.order]
        self.stats = [stats[part] for part in self.order]
        self.latency = max(scorer.latency for scorer in parts.values())
        self.pending: dict[str, dict[int, ScoredFrame]] = {part: {} for part in self.order}
        self.next = 0
        self.pool = ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="fused-part")
        self.running: dict[str, Future] = {}

    @property
    def timings(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for scorer in self.parts.values():
            for key, seconds in scorer.timings.items():
                total[key] = total.get(key, 0.0) + seconds
        return total

    def push(self, frame: np.ndarray) -> list[ScoredFrame]:
        self.running = {part: self.pool.submit(self.parts[part].push, frame) for part in self.order}
        for part in self.order:
            self._collect(part, self.running[part].result())
        self.running = {}
        return self._ready()

    def finish(self) -> list[ScoredFrame]:
        for part, work in self.running.items():  # pushes a Ctrl-C left running
            self._collect(part, work.result())
        self.running = {}
        for part in self.order:
            self._collect(part, self.parts[part].finish())
        self.pool.shutdown()
        return self._ready()

    def _collect(self, part: str, scored: list[ScoredFrame]) -> None:
        for frame in scored:
            self.pending[part][frame.index] = frame

    def _ready(self) -> list[ScoredFrame]:
        fused = []
        while all(self.next in self.pending[part] for part in self.order):
            frames = [self.pending[part].pop(self.next) for part in self.order]
            if self.on_maps:
                maps = [f.score_map.astype(np.float32) for f in frames]  # as score files hold them
                total = weighted_sum(maps, self.weights, self.stats)
                fused.append(ScoredFrame(self.next, float(total.max()), total))
            else:
                scores = [np.float32(f.score) for f in frames]
                total = weighted_sum(scores, self.weights, self.stats)
                fused.append(ScoredFrame(self.next, float(total), None))
            self.next += 1
        return fused
