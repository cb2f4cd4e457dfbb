"""Density of object attributes: k-nearest-neighbour distance to the training objects, per
attribute, calibrated by training statistics and summed (Reiss & Hoshen, arXiv 2212.00789,
Sec. 3-4 and their released score_calibration.py / evaluate.py).

For attribute a with training features X_a, an object's score is the mean Euclidean distance
to its k nearest training objects, s_a = (1/k) sum_{j<=k} ||x_a - nn_j(x_a)||. Scores of
different attributes live on different scales, so each is calibrated with the training
objects' own scores, computed leave-one-video-out (a training object is never its own
neighbour): c_a = (s_a - min_a) / (q_a - min_a), min_a their minimum and q_a their
`percentile` (99.9) percentile. The object's score is sum_a c_a; the attribute with the largest
c_a is what makes it anomalous.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.neighbors import NearestNeighbors


def fit_index(train: np.ndarray, k: int) -> NearestNeighbors:
    """An exact k-nearest-neighbour index of the training rows (scikit-learn)."""
    if len(train) < k:
        raise ValueError(
            f"k-nearest neighbours with k={k} needs at least {k} training objects, got {len(train)}"
        )
    return NearestNeighbors(n_neighbors=k).fit(train)


def knn_distances(index: NearestNeighbors, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean distance of each query row to its k nearest training rows, and the index of the
    nearest one."""
    if len(query) == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    distances, neighbours = index.kneighbors(query)
    return distances.mean(axis=1), neighbours[:, 0]


def held_out_scores(features: np.ndarray, videos: np.ndarray, k: int, folds: int) -> np.ndarray:
    """Each training object's kNN score against the objects of the other videos. Videos are
    split into `folds` groups (0: one group per video, leave-one-video-out)."""
    unique = np.unique(videos)
    groups = len(unique) if folds == 0 else min(folds, len(unique))
    if groups < 2:
        raise ValueError(
            "calibration needs training objects in at least 2 videos (leave-one-video-out), "
            f"got {len(unique)}"
        )
    fold_of = {video: i % groups for i, video in enumerate(unique)}
    fold = np.array([fold_of[v] for v in videos])
    scores = np.zeros(len(features))
    for g in range(groups):
        held = fold == g
        scores[held], _ = knn_distances(fit_index(features[~held], k), features[held])
    return scores


@dataclass
class Calibration:
    """c = (s - low) / (high - low) per attribute (high > low)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, train_scores: np.ndarray, percentile: float) -> Calibration:
        """From held-out training scores (N, attributes): minimum and `percentile` percentile."""
        low = train_scores.min(axis=0)
        high = np.percentile(train_scores, percentile, axis=0)
        return cls(low=low, high=np.maximum(high, low + 1e-9))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return (scores - self.low) / (self.high - self.low)


@dataclass
class ObjectScores:
    score: np.ndarray  # (N,) sum of calibrated attribute scores
    calibrated: np.ndarray  # (N, attributes)
    neighbour: np.ndarray  # (N, attributes) index of the nearest training object


@dataclass
class AttributeDensity:
    """The fitted model: training features of each attribute, k and the calibration."""

    attributes: Sequence[str]
    train: dict[str, np.ndarray]  # attribute -> (M, width) training features
    k: int
    calibration: Calibration
    _indexes: dict[str, NearestNeighbors] = field(default_factory=dict, repr=False)

    def index(self, name: str) -> NearestNeighbors:
        if name not in self._indexes:
            self._indexes[name] = fit_index(self.train[name], self.k)
        return self._indexes[name]

    def score(self, features: dict[str, np.ndarray]) -> ObjectScores:
        """Scores of N objects given their features per attribute."""
        raw, nearest = [], []
        for name in self.attributes:
            distance, neighbour = knn_distances(self.index(name), features[name])
            raw.append(distance)
            nearest.append(neighbour)
        n = len(next(iter(features.values()))) if features else 0
        raw_scores = np.stack(raw, axis=1) if raw else np.zeros((n, 0))
        calibrated = self.calibration(raw_scores)
        return ObjectScores(
            score=calibrated.sum(axis=1),
            calibrated=calibrated,
            neighbour=np.stack(nearest, axis=1) if nearest else np.zeros((n, 0), np.int64),
        )


def fit_density(
    features: dict[str, np.ndarray],
    videos: np.ndarray,
    attributes: Sequence[str],
    k: int,
    percentile: float,
    folds: int,
) -> tuple[AttributeDensity, np.ndarray]:
    """The model from the training objects' features (per attribute) and their videos; also
    the training objects' held-out calibrated scores (N,) for training frame statistics."""
    held = np.stack(
        [held_out_scores(features[name], videos, k, folds) for name in attributes], axis=1
    )
    calibration = Calibration.fit(held, percentile)
    model = AttributeDensity(
        attributes=list(attributes),
        train={name: features[name] for name in attributes},
        k=k,
        calibration=calibration,
    )
    return model, calibration(held).sum(axis=1)
