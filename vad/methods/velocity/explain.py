"""What makes an object anomalous, in words: the attribute with the largest calibrated score
and, within it, the feature furthest from the training objects' median in training standard
deviations, stated against the training distribution ("mean speed 3.1x the training median,
above 99.9% of training objects")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vad.methods.velocity.features import group_columns

SPEED_NAMES = ("mean speed", "90th-percentile speed")


@dataclass
class TrainingStats:
    """Per feature of one attribute: the training objects' sorted values, median and std."""

    values: np.ndarray  # (M, width), each column sorted
    median: np.ndarray  # (width,)
    std: np.ndarray  # (width,)

    @classmethod
    def of(cls, train: np.ndarray) -> TrainingStats:
        return cls(np.sort(train, axis=0), np.median(train, axis=0), train.std(axis=0))

    def select(self, columns: list[int]) -> TrainingStats:
        """The statistics of some of the columns."""
        return TrainingStats(self.values[:, columns], self.median[columns], self.std[columns])

    def fraction_below(self, feature: int, value: float) -> float:
        """Fraction of training objects whose feature is below `value`."""
        column = self.values[:, feature]
        return float(np.searchsorted(column, value, side="left") / len(column))


def deviating_feature(value: np.ndarray, stats: TrainingStats) -> int:
    """Index of the feature furthest from the training median, in training std units."""
    return int(np.argmax(np.abs(value - stats.median) / np.maximum(stats.std, 1e-9)))


def describe(attribute: str, feature: int, value: float, stats: TrainingStats, bins: int) -> str:
    """One line, e.g. "speed: mean speed 3.1x the training median (above 99.9% of training
    objects)"."""
    median = float(stats.median[feature])
    below = stats.fraction_below(feature, value)
    rank = f"above {100 * below:.1f}%" if below >= 0.5 else f"below {100 * (1 - below):.1f}%"
    times = f"{value / median:.1f}x the training median" if median > 1e-6 else f"{value:.2f}"
    where = f"({rank} of training objects)"
    if attribute == "direction":
        width = 360 / bins
        low = feature * width
        return f"direction: motion toward {low:.0f}-{low + width:.0f} deg {times} {where}"
    if attribute == "speed":
        return f"speed: {SPEED_NAMES[feature]} {times} {where}"
    if attribute == "size":
        return f"size: box {('width', 'height')[feature]} {times} {where}"
    axis = ("horizontal", "vertical")[feature]
    return f"position: {axis} position {value:.2f} of the frame {where}"


def explain_group(group: str, value: np.ndarray, stats: TrainingStats, bins: int) -> str:
    """The line for an object's group features `value` (its training statistics `stats`): the
    group's most deviating feature, described as a feature of the attribute it belongs to."""
    feature = deviating_feature(value, stats)
    columns = group_columns(group, bins)
    attribute, own, _ = columns[feature]
    members = [i for i, (name, _, _) in enumerate(columns) if name == attribute]
    return describe(attribute, own, float(value[feature]), stats.select(members), bins)
