"""The optical flow and dynamic flow of a stream, computed as the pipeline computes them.

`FlowStream` gives each new frame's flow from the previous one, as flow.h5 stores it (gray at
`flow.size`, float16), with the estimator `run_flow_estimator` makes from the run's `flow`
params (OpenCV methods only). `DynamicFlowWindow` combines a window of those flows.

The pipeline gives frame i the dynamic flow of the `window` flows that start at flow i (frames
i .. i + window), so frame i's map is known once frame i + window has arrived; the frames after
the last full window share it (`window_layout`), and a stream with fewer flows than `window`
has one window of all of them. Flows are rounded to float16 as flow.h5 stores them.

With approximate rank pooling each flow is encoded once, when it arrives, and every window
combines the encoded flows with the pipeline's `combine_window_flows` and coefficients; the
pipeline also subtracts the video's mean encoded flow first, which changes nothing but rounding
(the coefficients sum to zero). Exact RankSVM pools each window with `window_dynamic_flows`.

Rank pooling of a window runs on a background thread while the next frame's flow is computed
(both release the GIL), so a map is returned one push later than it is known: the latency is
window + 1 frames.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from time import perf_counter

import numpy as np

from vad.config import Section
from vad.motion.dynamic_flow import (
    combine_window_flows,
    encode_flows,
    quantize_dynamic_flow,
    resolve_output_scale,
    window_dynamic_flows,
)
from vad.motion.dynflow_runner import DynamicFlowSettings
from vad.motion.flow import METHODS, FlowEstimator, make_flow_estimator, prepare_frames
from vad.motion.flow_runner import as_stored
from vad.motion.rank_pool import approx_rank_pool_coefficients

POOL_STEP = 1 << 14  # columns per step of one window's combination (fewer NumPy calls)


class FlowStream:
    """Push stored frames; get the flow from the previous frame to this one ((h, w, 2) float16
    at `size`, as the flow stage stores it), None for the first frame."""

    def __init__(self, estimator: FlowEstimator, size: tuple[int, int] | None):
        self.estimator, self.size = estimator, size
        self.previous: np.ndarray | None = None
        self.count = 0  # frames pushed
        self.timings = {"flow": 0.0}

    def push(self, frame: np.ndarray) -> np.ndarray | None:
        start = perf_counter()
        gray = prepare_frames(frame[None], self.size, where=f"frame {self.count}")[0]
        previous, self.previous = self.previous, gray
        self.count += 1
        flow = None if previous is None else as_stored(self.estimator(previous, gray))
        self.timings["flow"] += perf_counter() - start
        return flow


def run_flow_estimator(params: dict) -> tuple[FlowEstimator, tuple[int, int]]:
    """The flow estimator of the run's `flow` method and options, and its `flow.size`; FlowNet2
    is refused (streaming computes flow with OpenCV)."""
    flow = Section(params, "flow")
    method = flow.str("method")
    if method not in METHODS:
        raise ValueError(
            f"streaming scoring computes flow with OpenCV ({', '.join(METHODS)}); "
            f"this run's flow.method is {method!r}"
        )
    return make_flow_estimator(method, flow.mapping(method)), flow.size("size")


class DynamicFlowWindow:
    """Push stored frames, get back (frame index, (H, W, 3) uint8 dynamic flow) when known."""

    def __init__(
        self,
        estimator: FlowEstimator,
        size: tuple[int, int],
        settings: DynamicFlowSettings,
    ):
        self.pairs, self.size, self.settings = FlowStream(estimator, size), size, settings
        self.scale = resolve_output_scale(settings.method, settings.output_scale)
        self.flows: deque[np.ndarray] = deque(maxlen=settings.window)
        self.next = 0  # the next frame whose map is due
        self.last: np.ndarray | None = None  # the map of the last full window
        self.pooling: deque[Future] = deque()  # maps being pooled, in frame order
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rank-pool")
        self.encoding = 0.0  # seconds encoding flows (counted as flow)
        self.pooling_seconds = 0.0  # seconds pooling windows (on the pool's thread)

    @property
    def timings(self) -> dict[str, float]:
        return {
            "flow": self.pairs.timings["flow"] + self.encoding,
            "dynamic_flow": self.pooling_seconds,
        }

    @property
    def count(self) -> int:
        """Frames pushed."""
        return self.pairs.count

    @property
    def latency(self) -> int:
        return self.settings.window + 1

    def push(self, frame: np.ndarray) -> list[tuple[int, np.ndarray]]:
        stored = self.pairs.push(frame)
        if stored is None:
            return []
        start = perf_counter()
        flow = stored.astype(np.float32)
        if self.settings.method == "approx":
            s = self.settings
            self.flows.append(encode_flows(flow.reshape(-1), s.encode_scale, s.encode_offset))
        else:
            self.flows.append(flow)
        self.encoding += perf_counter() - start
        if len(self.flows) < self.settings.window:
            return []
        self.pooling.append(self.pool.submit(self._pool, list(self.flows)))
        return self._collect(keep=1)

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The maps of the frames still due: the last full window's (or, for a stream shorter
        than a window, the one window of all its flows)."""
        due = self._collect(keep=0)
        self.pool.shutdown()
        if self.last is None:
            if not self.flows:
                return due
            self.last = self._pool(list(self.flows))
        due += [(index, self.last) for index in range(self.next, self.count)]
        self.next = self.count
        return due

    def _collect(self, keep: int) -> list[tuple[int, np.ndarray]]:
        """The pooled maps, oldest first, leaving the newest `keep` still running."""
        due = []
        while len(self.pooling) > keep:
            self.last = self.pooling[0].result()  # (dropped only once done: Ctrl-C may come)
            self.pooling.popleft()
            due.append((self.next, self.last))
            self.next += 1
        return due

    def _pool(self, flows: list[np.ndarray]) -> np.ndarray:
        start = perf_counter()
        s = self.settings
        if s.method == "approx":  # `flows` are encoded, flattened
            coefficients = approx_rank_pool_coefficients(len(flows))[None]
            combined = combine_window_flows(
                lambda columns: np.stack([flow[columns] for flow in flows]),
                flows[0].shape[0],
                coefficients,
                step=POOL_STEP,
            )
            window = combined.reshape(*self.size[::-1], 2)
        else:
            windows, _ = window_dynamic_flows(
                np.stack(flows),
                window=s.window,
                method=s.method,
                C=s.C,
                a=s.encode_scale,
                b=s.encode_offset,
                name=f"stream frames from {self.next}",
            )
            window = windows[0]
        result = quantize_dynamic_flow(window, self.scale)
        self.pooling_seconds += perf_counter() - start
        return result
