"""The dynamic flow of a stream, computed as the pipeline computes it, with a window of flows.

The pipeline gives frame i the dynamic flow of the `window` flows that start at flow i (frames
i .. i + window), so frame i's map is known once frame i + window has arrived; the frames after
the last full window share it (`window_layout`), and a stream with fewer flows than `window`
has one window of all of them. Flows are rounded to float16 as flow.h5 stores them.
"""

from __future__ import annotations

from collections import deque
from time import perf_counter

import numpy as np

from vad.motion.dynamic_flow import (
    quantize_dynamic_flow,
    resolve_output_scale,
    window_dynamic_flows,
)
from vad.motion.dynflow_runner import DynamicFlowSettings
from vad.motion.flow import FlowEstimator, prepare_frames
from vad.motion.flow_runner import as_stored


class DynamicFlowWindow:
    """Push stored frames, get back (frame index, (H, W, 3) uint8 dynamic flow) when known."""

    def __init__(
        self,
        estimator: FlowEstimator,
        size: tuple[int, int],
        settings: DynamicFlowSettings,
        timings: dict[str, float],
    ):
        self.estimator, self.size, self.settings = estimator, size, settings
        self.scale = resolve_output_scale(settings.method, settings.output_scale)
        self.flows: deque[np.ndarray] = deque(maxlen=settings.window)
        self.previous: np.ndarray | None = None
        self.count = 0  # frames pushed
        self.next = 0  # the next frame whose map is due
        self.last: np.ndarray | None = None  # the map of the last full window
        self.timings = timings
        timings.setdefault("flow", 0.0)
        timings.setdefault("dynamic_flow", 0.0)

    @property
    def latency(self) -> int:
        return self.settings.window

    def push(self, frame: np.ndarray) -> list[tuple[int, np.ndarray]]:
        start = perf_counter()
        gray = prepare_frames(frame[None], self.size, where=f"frame {self.count}")[0]
        previous, self.previous = self.previous, gray
        self.count += 1
        if previous is None:
            return []
        flow = as_stored(self.estimator(previous, gray)).astype(np.float32)
        self.flows.append(flow)
        self.timings["flow"] += perf_counter() - start
        if len(self.flows) < self.settings.window:
            return []
        self.last = self._pool(list(self.flows))
        self.next += 1
        return [(self.next - 1, self.last)]

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The maps of the frames still due: the last full window's (or, for a stream shorter
        than a window, the one window of all its flows)."""
        if self.last is None:
            if not self.flows:
                return []
            self.last = self._pool(list(self.flows))
        due = [(index, self.last) for index in range(self.next, self.count)]
        self.next = self.count
        return due

    def _pool(self, flows: list[np.ndarray]) -> np.ndarray:
        start = perf_counter()
        s = self.settings
        windows, _ = window_dynamic_flows(
            np.stack(flows),
            window=s.window,
            method=s.method,
            C=s.C,
            a=s.encode_scale,
            b=s.encode_offset,
            name=f"stream frames {self.next}..{self.next + len(flows)}",
        )
        result = quantize_dynamic_flow(windows[0], self.scale)
        self.timings["dynamic_flow"] += perf_counter() - start
        return result
