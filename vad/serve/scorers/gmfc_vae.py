"""GMFC-VAE on a stream, one stream model at a time (`gmfc_vae_rgb`, `gmfc_vae_dynflow`), with
the pipeline's functions: `score_video` for the energy maps of a frame's patch grid,
`moving_grid` for the static-patch rule, and the dynamic flow of vad.serve.motion.

When a frame is scored: the appearance stream scores frame t when it arrives, except that with
`static_patches: mode` a frame's moving patches come from its difference to the previous frame,
and frame 0's from its difference to frame 1 (so frame 0 waits for frame 1). The motion stream
scores frame t once frame t + window has arrived (its dynamic flow looks `window` flows ahead);
the last frames of a stream are scored by `finish`, as the pipeline scores them.

Speed: with `static_patches: mode` a patch without a moving pixel scores the prior's mode
energy whatever the model says, so only the moving patches go through the model (the same
`energies` function the pipeline uses on every patch); the maps are the pipeline's.
"""

from __future__ import annotations

from pathlib import Path
from time import perf_counter

import numpy as np
import torch

from vad.frame_cache import convert_frames, resize_frames
from vad.methods.base import Method, ScoredFrame, StreamScorer
from vad.methods.gmfc_vae.method import MODEL_FILE
from vad.methods.gmfc_vae.patches import scoring_grid
from vad.methods.gmfc_vae.score import energies, mode_energy, moving_grid, score_video
from vad.methods.gmfc_vae.train import load_model
from vad.params.dynamic_flow import dynamic_flow_settings
from vad.serve.motion import DynamicFlowWindow, run_flow_estimator


class GmfcStreamScorer(StreamScorer):
    """Energy maps of one GMFC-VAE stream; `motion` is None for the appearance stream."""

    def __init__(
        self, model: torch.nn.Module, settings: dict, motion: DynamicFlowWindow | None = None
    ):
        self.model, self.settings, self.motion = model, settings, motion
        self.size = tuple(settings["size"])
        self.static_mode = settings["static_patches"] == "mode"
        self.floor = mode_energy(model)
        self.own_timings = {"model": 0.0, "frames": 0.0}
        self.latency = motion.latency if motion is not None else int(self.static_mode)
        self.count = 0
        self.previous_gray: np.ndarray | None = None
        self.moving: dict[int, np.ndarray] = {}  # frame index -> (rows, cols) bool, until scored
        self.inputs: dict[int, np.ndarray] = {}  # frame index -> model input, until scored
        self.next = 0  # the next frame to return

    @property
    def timings(self) -> dict[str, float]:
        motion = self.motion.timings if self.motion is not None else {}
        return {**self.own_timings, **motion}

    def push(self, frame: np.ndarray) -> list[ScoredFrame]:
        index, self.count = self.count, self.count + 1
        if self.static_mode:
            self._note_motion(frame, index)
        if self.motion is None:
            self.inputs[index] = convert_frames(frame[None], self.size, "rgb")
        else:
            for ready, dynamic in self.motion.push(frame):
                self.inputs[ready] = resize_frames(dynamic[None], self.size)
        return self._ready()

    def finish(self) -> list[ScoredFrame]:
        if self.motion is not None:
            for ready, dynamic in self.motion.finish():  # the last frames share one map
                self.inputs[ready] = resize_frames(dynamic[None], self.size)
        return self._ready()

    def _note_motion(self, frame: np.ndarray, index: int) -> None:
        """The moving patches of the previous frame pair (frame 0: of frames 0 and 1)."""
        start = perf_counter()
        gray = convert_frames(frame[None], self.size, "gray")[..., 0]
        previous, self.previous_gray = self.previous_gray, gray
        if previous is not None:
            s = self.settings
            moving = moving_grid(
                np.concatenate([previous, gray]),
                s["patch"],
                s["motion_threshold"],
                s["min_moving_pixels"],
            )
            if index == 1:
                self.moving[0] = moving[0]
            self.moving[index] = moving[1]
        self.own_timings["frames"] += perf_counter() - start

    def _energy_map(self, frames: np.ndarray, moving: np.ndarray | None) -> np.ndarray:
        """The (rows, cols) energy map of one frame (1, H, W, 3); with `moving`, static
        patches take the mode energy and only the moving ones are scored."""
        start = perf_counter()
        s = self.settings
        if moving is None:
            maps = score_video(self.model, frames, s["patch"], s["batch_size"], s["device"])[0]
        else:
            grid = scoring_grid(frames, s["patch"])[0]
            maps = np.full(moving.shape, self.floor, dtype=np.float64)
            if moving.any():
                patches = np.ascontiguousarray(grid[moving])
                maps[moving] = energies(self.model, patches, s["batch_size"], s["device"])
        self.own_timings["model"] += perf_counter() - start
        return maps

    def _ready(self) -> list[ScoredFrame]:
        scored = []
        while self.next in self.inputs and (not self.static_mode or self.next in self.moving):
            moving = self.moving.pop(self.next) if self.static_mode else None
            maps = self._energy_map(self.inputs.pop(self.next), moving)
            scored.append(ScoredFrame(self.next, float(maps.max()), maps))
            self.next += 1
        return scored


def gmfc_vae_scorer(method: Method, model_dir: Path, params: dict) -> GmfcStreamScorer:
    """`Method.stream_scorer` of a GMFC-VAE stream: its model, score settings and, for the
    motion stream, the flow and dynamic-flow settings of the run."""
    settings = method.settings(params)["score"]
    torch.set_num_threads(settings["threads"])
    model = load_model(Path(model_dir) / MODEL_FILE, settings["device"])
    if settings["stream"] == "rgb":
        return GmfcStreamScorer(model, settings)
    motion = DynamicFlowWindow(*run_flow_estimator(params), dynamic_flow_settings(params)[0])
    return GmfcStreamScorer(model, settings, motion)
