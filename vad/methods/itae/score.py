"""ITAE + Glow scoring (Cho, Kim, Lee, eqs. 7-9): per test video, every clip (`test_stride`
frames apart, and one ending at the last frame) through the model; per frame R, NLL_a and NLL_m
averaged over its clips (clip_scores.py), L by eq. 8, and the frame score by eq. 9 with the
training frames' statistics (`score_parts`: full, reconstruction or likelihood). Score maps:
eq. 7's per-pixel error, averaged over the clips, on a grid of `map_cell` pixels of the model's
frames. Training videos: their frame scores from the training clips scored after training
(kept with the model).

Per frame the score file also holds `reconstruction` (R), `likelihood` (L) and `explanation`
(both in training standard deviations).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import torch

from vad.cache import iter_videos, open_cache, read_dataset, video_key
from vad.frame_cache import load_frames, video_keys
from vad.methods.itae.clip_scores import (
    SCORE_BATCH,
    combined_score,
    likelihood_score,
    score_clips,
    standardised,
)
from vad.methods.itae.clips import VideoClips
from vad.methods.itae.model import ITAEModel, load_model
from vad.progress import progress as progress_bar
from vad.scores import Scored, ScoreStream, VideoScores
from vad.training import resolve_device


def frame_scores(
    model: ITAEModel, r: np.ndarray, nll_a: np.ndarray, nll_m: np.ndarray, parts: str
) -> VideoScores:
    """Eq. 8 and eq. 9 of one video's per-frame values, with the extras."""
    statistics = model.statistics
    likelihood = likelihood_score(nll_a, nll_m, statistics)
    scores = combined_score(r, likelihood, statistics, parts, model.preset.lambda_l)
    z_r, z_l = standardised(r, likelihood, statistics)
    words = [
        f"reconstruction {a:+.1f} sd, likelihood {b:+.1f} sd"
        for a, b in zip(z_r, z_l, strict=True)
    ]
    explanation = np.array(words, dtype=object)
    return VideoScores(
        frame_scores=scores,
        extras={
            "reconstruction": r.astype(np.float32),
            "likelihood": likelihood.astype(np.float32),
            "explanation": explanation,
        },
    )


def score_stream(
    name: str,
    frames: Path,
    model_dir: Path,
    settings: dict,
    videos: Collection[str] | None = None,
) -> ScoreStream:
    """The score stage's stream: training videos (stored scores), then test videos."""
    from vad.methods.itae.method import MODEL_FILE, TRAIN_SCORES_FILE

    device = resolve_device(settings["device"])
    model = load_model(model_dir / MODEL_FILE, device)
    parts, cell = settings["score_parts"], settings["map_cell"]
    attrs = {
        "preset": model.preset.name,
        "score_parts": parts,
        "map_cell": cell,
        "size": list(model.preset.size),
        "statistics": model.statistics,
    }

    def chosen(split: str, video: str) -> bool:
        return videos is None or video_key(split, video) in videos

    def scored() -> Iterator[Scored]:
        with open_cache(model_dir / TRAIN_SCORES_FILE) as f:
            for split, video, group in iter_videos(f):
                if chosen(split, video):
                    values = [read_dataset(group[k]) for k in
                              ("reconstruction", "nll_appearance", "nll_motion")]  # fmt: skip
                    yield split, video, frame_scores(model, *values, parts)
        tests = [key for key in video_keys(frames, "test") if videos is None or key in videos]
        for key in progress_bar(tests, desc="itae scores", unit="video"):
            clip_frames = load_frames(frames, key, size=model.preset.size)
            clips = VideoClips(clip_frames, model.preset.clip_length, model.preset.test_stride)
            with torch.no_grad():
                result = score_clips(model, clips, SCORE_BATCH, device, cell)
            scores = frame_scores(
                model, result.reconstruction, result.nll_appearance, result.nll_motion, parts
            )
            scores.score_maps = result.maps
            yield "test", key.split("/", 1)[1], scores

    return ScoreStream(name, scored(), attrs)
