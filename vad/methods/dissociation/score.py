"""Dissociation scoring (Chang et al. 2022, Sec. 3.7, eqs. 13-14): frame t is the LIF of the
clip ending at t (clips.clip_ending_at); per pixel p

    e(p) = sum_c (x_LIF - (x^_FIF + x^_diff))^2      the prediction error of the LIF
    D(p) = eq. 10 at p's bottleneck location, upsampled to the frame (nearest)
    A(p) = e(p) * D(p)                               eq. 13's pixel-level fusion

and the frame score is the mean of A over the frame (higher: more anomalous). The paper's
eq. 13 is a regularity (its reciprocal) and eq. 14 min-max normalises it per test video: that is
the paper protocol of `evaluate.paper_protocols` (test statistics); this score is the strict one
(no statistics at all). Without deep K-means (`clusters` 0) A = e. With one stream (Table 2's
first rows): `spatial`, e is the spatial auto-encoder's reconstruction error of frame t itself;
`motion`, the error of the predicted difference x_t - x_{t-T+1}.

Score maps: A averaged on a grid of `map_cell` pixels of the model's frames. Training videos are
scored the same way, for the pipeline's training statistics. Per frame the score file also holds
`prediction_error` (mean e) and, with deep K-means, `cluster_distance` (mean D).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vad.frame_cache import BLOCK_FRAMES, frame_blocks, video_keys
from vad.methods.clip_batches import gather
from vad.methods.dissociation.clips import clip_ending_at
from vad.methods.dissociation.model import DissociationModel, load_model
from vad.progress import progress as progress_bar
from vad.scores import ScoreStream, VideoScores
from vad.training import resolve_device

SCORE_BATCH = 8  # clips per forward pass


def error_maps(model: DissociationModel, clip: Tensor) -> tuple[Tensor, Tensor | None]:
    """(B, H, W) prediction errors e and (B, H, W) cluster distances D (or None) of clips whose
    LIF is the frame scored."""
    if model.streams == ("spatial",):  # reconstruct the scored frame itself
        clip = clip[:, :, -1:].expand_as(clip)
    output = model.network(clip)
    fif, difference, lif = model.network.targets(clip)
    if model.streams == ("spatial",):
        errors = (fif - output.fif_reconstruction).square().sum(1)
    elif model.streams == ("motion",):
        errors = (difference - output.difference).square().sum(1)
    else:
        errors = (lif - output.lif_prediction).square().sum(1)
    if model.kmeans is None:
        return errors, None
    distances = model.kmeans(model.representation(output.appearance, output.motion))
    upsampled = F.interpolate(distances[:, None], size=errors.shape[-2:], mode="nearest")
    return errors, upsampled[:, 0]


def cell_means(maps: Tensor, cell: int) -> Tensor:
    """(B, H, W) -> (B, ceil(H / cell), ceil(W / cell)) cell means."""
    pooled = F.avg_pool2d(maps[:, None], cell, ceil_mode=True, count_include_pad=False)
    return pooled[:, 0]


def score_video(
    model: DissociationModel,
    frames: Path,
    key: str,
    cell: int,
    device: torch.device,
    block_frames: int = BLOCK_FRAMES,
) -> VideoScores:
    """Every frame of one video, read a block at a time (the last T - 1 frames of a block kept
    for the next block's first clips)."""
    length = model.preset.clip_length
    scores, errors, distances, maps = [], [], [], []
    tail = None
    for first, block in frame_blocks(frames, key, size=model.preset.size, block=block_frames):
        context = block if tail is None else np.concatenate([tail, block])
        offset = first - (0 if tail is None else len(tail))
        for start in range(0, len(block), SCORE_BATCH):
            wanted = range(first + start, first + min(start + SCORE_BATCH, len(block)))
            clips = [clip_ending_at(t, length) - offset for t in wanted]
            with torch.no_grad():
                error, distance = error_maps(model, gather(context, clips).to(device))
            fused = error if distance is None else error * distance
            scores.append(fused.mean((1, 2)).cpu().numpy())
            errors.append(error.mean((1, 2)).cpu().numpy())
            if distance is not None:
                distances.append(distance.mean((1, 2)).cpu().numpy())
            maps.append(cell_means(fused, cell).cpu().numpy())
        tail = context[-(length - 1) :]
    extras = {"prediction_error": np.concatenate(errors).astype(np.float32)}
    if distances:
        extras["cluster_distance"] = np.concatenate(distances).astype(np.float32)
    return VideoScores(
        frame_scores=np.concatenate(scores).astype(np.float32),
        score_maps=np.concatenate(maps).astype(np.float32),
        extras=extras,
    )


def score_stream(
    name: str,
    frames: Path,
    model_dir: Path,
    settings: dict,
    videos: Collection[str] | None = None,
) -> ScoreStream:
    """The score stage's stream: training videos, then test videos, each scored alone."""
    from vad.methods.dissociation.method import MODEL_FILE

    device = resolve_device(settings["device"])
    model = load_model(model_dir / MODEL_FILE, device)
    cell = settings["map_cell"]
    attrs = {
        "preset": model.preset.name,
        "streams": list(model.streams),
        "attention": model.attention,
        "clusters": 0 if model.kmeans is None else len(model.kmeans.centres),
        "map_cell": cell,
        "size": list(model.preset.size),
    }
    keys = [key for key in video_keys(frames) if videos is None or key in videos]

    def scored() -> Iterator[tuple[str, str, VideoScores]]:
        for key in progress_bar(keys, desc="dissociation scores", unit="video"):
            split, video = key.split("/", 1)
            yield split, video, score_video(model, frames, key, cell, device)

    return ScoreStream(name, scored(), attrs)
