"""The score-file contract every method writes (data/scores/<method>.h5, data/fused/<name>.h5):
per video, frame scores and optional score maps.

Layout: group `<split>/<name>` with `frame_scores` (T,) float32 and `score_maps` (T, rows, cols)
float32, where the map's grid covers the whole frame; a method may add per-frame datasets of its
own (`extras`, e.g. `explanation`, (T,) strings shown on the overlay figures). Training
videos may be scored too (all or a subset of their frames, listed in `frame_indices`): their
statistics normalize test scores.
File attrs: `settings`, JSON of {"model": name, **attrs} (a fused set lists its `parts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from vad.cache import checked_dataset, iter_videos, open_cache, read_dataset, video_key, write_h5

STANDARD = ("frame_scores", "score_maps", "frame_indices")


@dataclass
class VideoScores:
    frame_scores: np.ndarray
    score_maps: np.ndarray | None = None
    frame_indices: np.ndarray | None = None  # which frames were scored (None = all)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # per-frame, method-specific


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
                for key, values in video.extras.items():
                    if key in STANDARD:
                        raise ValueError(f"score extra {key!r} of {scores.model} clashes")
                    checked_dataset(group, key, _storable(np.asarray(values)))


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
                extras={key: _extra(group[key]) for key in group if key not in STANDARD},
            )
            (result.train if split == "train" else result.test)[name] = video
    return result


def _storable(values: np.ndarray) -> np.ndarray:
    """Text as fixed-length UTF-8 bytes: HDF5 cannot checksum variable-length strings."""
    if values.dtype.kind not in "UO":
        return values
    encoded = [str(value).encode() for value in values.reshape(-1)]
    width = max([1, *map(len, encoded)])
    return np.array(encoded, dtype=f"S{width}").reshape(values.shape)


def _extra(dataset: h5py.Dataset) -> np.ndarray:
    """A per-frame extra as written; text (stored as UTF-8 bytes) back as str objects."""
    values = read_dataset(dataset)
    if values.dtype.kind != "S":
        return values
    decoded = [value.decode() for value in values.reshape(-1)]
    return np.array(decoded, dtype=object).reshape(values.shape)


def read_score_attrs(path: str | Path) -> dict:
    """The attrs of a score file ({"model": ..., **attrs}) without reading its scores."""
    with open_cache(path) as f:
        return json.loads(f.attrs.get("settings", "{}"))
