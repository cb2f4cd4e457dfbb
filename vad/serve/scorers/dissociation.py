"""Spatio-temporal dissociation on a stream: frame t is scored as soon as it arrives, as the LIF
of the clip of the last T frames (vad.methods.dissociation.score): the scorer keeps the last
T - 1 frames at the model's size. At the stream's start the missing earlier frames repeat frame
0, as the pipeline does at a video's start, so the scores equal score@dissociation's.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from time import perf_counter

import numpy as np
import torch

from vad.frame_cache import convert_frames
from vad.methods.base import Method, ScoredFrame, StreamScorer
from vad.methods.clip_batches import as_tensor
from vad.methods.dissociation.model import DissociationModel, load_model
from vad.methods.dissociation.score import cell_means, error_maps


class DissociationStreamScorer(StreamScorer):
    latency = 0

    def __init__(self, model: DissociationModel, cell: int, device: torch.device):
        self.model, self.cell, self.device = model, cell, device
        self.recent: deque[np.ndarray] = deque(maxlen=model.preset.clip_length)
        self.count = 0
        self.timings = {"frames": 0.0, "model": 0.0}

    def push(self, frame: np.ndarray) -> list[ScoredFrame]:
        start = perf_counter()
        resized = convert_frames(frame[None], self.model.preset.size)[0]
        if not self.recent:  # the first frame stands in for the frames before it
            self.recent.extend([resized] * (self.model.preset.clip_length - 1))
        self.recent.append(resized)
        clip = as_tensor(np.stack(self.recent)[None]).to(self.device)
        middle = perf_counter()
        with torch.no_grad():
            error, distance = error_maps(self.model, clip)
        fused = error if distance is None else error * distance
        index, self.count = self.count, self.count + 1
        scored = ScoredFrame(
            index, float(fused.mean()), cell_means(fused, self.cell)[0].cpu().numpy()
        )
        self.timings["frames"] += middle - start
        self.timings["model"] += perf_counter() - middle
        return [scored]

    def finish(self) -> list[ScoredFrame]:
        return []


def dissociation_scorer(
    method: Method, model_dir: Path, params: dict
) -> DissociationStreamScorer:
    """`Method.stream_scorer` of dissociation: the trained model and the score settings."""
    from vad.methods.dissociation.method import MODEL_FILE
    from vad.training import resolve_device

    settings = method.settings(params)["score"]
    torch.set_num_threads(settings["threads"])
    device = resolve_device(settings["device"])
    return DissociationStreamScorer(
        load_model(model_dir / MODEL_FILE, device), settings["map_cell"], device
    )
