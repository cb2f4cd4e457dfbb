"""The score-file contract every method writes (data/scores/<method>.h5, data/fused/<name>.h5):
per video, frame scores and optional score maps.

Layout: group `<split>/<name>` with `frame_scores` (T,) float32 and `score_maps` (T, rows, cols)
float32, where the map's grid covers the whole frame. Training videos may be scored too (all or
a subset of their frames, listed in `frame_indices`): their statistics normalize test scores.
File attrs: `settings`, JSON of {"model": name, **attrs} (a fused set lists its `parts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vad.cache import checked_dataset, iter_videos, open_cache, read_dataset, video_key, write_h5


@dataclass
class VideoScores:
    frame_scores: np.ndarray
    score_maps: np.ndarray | None = None
    frame_indices: np.ndarray | None = None  # which frames were scored (None = all)


@dataclass
class ScoreSet:
    """Scores of one model: test videos by name, training videos by name, and provenance."""

    model: str
    test: dict[str, VideoScores] = field(default_factory=dict)
    train: dict[str, VideoScores] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def train_statistics(self) -> tuple[float, float]:
        """Mean and standard deviation of the training frame scores (for z-score normalization)."""
        if not self.train:
            raise ValueError(f"scores of {self.model!r} hold no training videos")
        values = np.concatenate([v.frame_scores for v in self.train.values()]).astype(np.float64)
        return float(values.mean()), float(max(values.std(), 1e-12))


def write_scores(path: str | Path, scores: ScoreSet) -> None:
    with write_h5(path, {"model": scores.model, **scores.attrs}) as f:
        for split, videos in (("train", scores.train), ("test", scores.test)):
            for name, video in videos.items():
                group = f.create_group(video_key(split, name))
                checked_dataset(group, "frame_scores", video.frame_scores.astype(np.float32))
                if video.score_maps is not None:
                    checked_dataset(
                        group, "score_maps", video.score_maps.astype(np.float32), compression="lzf"
                    )
                if video.frame_indices is not None:
                    checked_dataset(group, "frame_indices", video.frame_indices)


def read_scores(path: str | Path, model: str | None = None) -> ScoreSet:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: score file not found (run the model's score stage)")
    with open_cache(path) as f:
        attrs = json.loads(f.attrs.get("settings", "{}"))
        stored_model = attrs.pop("model", None)
        result = ScoreSet(model=model or stored_model or path.stem, attrs=attrs)
        for split, name, group in iter_videos(f):
            video = VideoScores(
                frame_scores=read_dataset(group["frame_scores"]),
                score_maps=read_dataset(group["score_maps"]) if "score_maps" in group else None,
                frame_indices=(
                    read_dataset(group["frame_indices"]) if "frame_indices" in group else None
                ),
            )
            (result.train if split == "train" else result.test)[name] = video
    return result


def read_score_attrs(path: str | Path) -> dict:
    """The attrs of a score file ({"model": ..., **attrs}) without reading its scores."""
    with open_cache(path) as f:
        return json.loads(f.attrs.get("settings", "{}"))
