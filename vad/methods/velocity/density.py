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

A group of several attributes (`speed+size`: how fast for an object of this size) is one joint
feature space; its columns are divided by the training objects' standard deviations first
(`joint_scale`), so that pixels per frame and box pixels weigh alike. A single attribute keeps
its own units, as the paper.

`density: gmm` replaces the kNN distance by the negative log-likelihood under a Gaussian
mixture of `components` components (scikit-learn, random_state 0), as the authors' released
code scores velocity (2 components on Ped2, 5 elsewhere); its calibration is held out in the
same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

DENSITIES = ("knn", "gmm")


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


@dataclass
class Scorer:
    """Raw score of query rows against one attribute's training rows: kNN mean distance or
    negative Gaussian-mixture log-likelihood (higher = less like the training objects)."""

    density: str
    k: int
    components: int

    def fit(self, train: np.ndarray) -> NearestNeighbors | GaussianMixture:
        if self.density == "knn":
            return fit_index(train, self.k)
        if len(train) < self.components:
            raise ValueError(
                f"a Gaussian mixture of {self.components} components needs at least that many "
                f"training objects, got {len(train)}"
            )
        return GaussianMixture(n_components=self.components, random_state=0).fit(train)

    def scores(self, fitted: NearestNeighbors | GaussianMixture, query: np.ndarray) -> np.ndarray:
        if len(query) == 0:
            return np.zeros(0)
        if isinstance(fitted, GaussianMixture):
            return -fitted.score_samples(query)
        return knn_distances(fitted, query)[0]


def held_out_scores(
    features: np.ndarray, videos: np.ndarray, scorer: Scorer, folds: int
) -> np.ndarray:
    """Each training object's score against the objects of the other videos. Videos are
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
        scores[held] = scorer.scores(scorer.fit(features[~held]), features[held])
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


def joint_scale(train: np.ndarray, joint: bool) -> np.ndarray:
    """Per column: 1 / the training standard deviation for a joint group (1 for a constant
    column), else 1."""
    if not joint:
        return np.ones(train.shape[1], np.float32)
    std = train.std(axis=0)
    return np.where(std > 1e-9, 1.0 / np.maximum(std, 1e-9), 1.0).astype(np.float32)


@dataclass
class ObjectScores:
    score: np.ndarray  # (N,) sum of calibrated attribute scores
    calibrated: np.ndarray  # (N, attributes)


@dataclass
class AttributeDensity:
    """The fitted model: training features of each attribute group, their scales
    (`joint_scale`), the scorer and the calibration. Each group's index (or mixture) is built
    from its scaled training features on first use."""

    attributes: Sequence[str]  # attribute groups
    train: dict[str, np.ndarray]  # group -> (M, width) training features, unscaled
    scale: dict[str, np.ndarray]  # group -> (width,) column scales
    scorer: Scorer
    calibration: Calibration
    _fitted: dict[str, object] = field(default_factory=dict, repr=False)

    def fitted(self, name: str) -> NearestNeighbors | GaussianMixture:
        if name not in self._fitted:
            self._fitted[name] = self.scorer.fit(self.train[name] * self.scale[name])
        return self._fitted[name]  # type: ignore[return-value]

    def score(self, features: dict[str, np.ndarray]) -> ObjectScores:
        """Scores of N objects given their features per attribute group."""
        n = len(features[self.attributes[0]])
        raw = [
            self.scorer.scores(self.fitted(name), features[name] * self.scale[name])
            for name in self.attributes
        ]
        calibrated = self.calibration(np.stack(raw, axis=1) if n else np.zeros((0, len(raw))))
        return ObjectScores(score=calibrated.sum(axis=1), calibrated=calibrated)


def fit_density(
    features: dict[str, np.ndarray],
    videos: np.ndarray,
    attributes: Sequence[str],
    scorer: Scorer,
    percentile: float,
    folds: int,
) -> tuple[AttributeDensity, np.ndarray]:
    """The model from the training objects' features (per attribute group, a joint group's
    named "a+b") and their videos; also the training objects' held-out calibrated scores (N,)
    for training frame statistics."""
    scale = {name: joint_scale(features[name], "+" in name) for name in attributes}
    held = np.stack(
        [
            held_out_scores(features[name] * scale[name], videos, scorer, folds)
            for name in attributes
        ],
        axis=1,
    )
    calibration = Calibration.fit(held, percentile)
    model = AttributeDensity(
        attributes=list(attributes),
        train={name: features[name] for name in attributes},
        scale=scale,
        scorer=scorer,
        calibration=calibration,
    )
    return model, calibration(held).sum(axis=1)
