"""Late fusion of any number of named score sets, e.g. GMFC-VAE's eq. 18,
E = alpha·E_app + beta·E_motion, or one method with another.

Raw scores of different models live on unrelated scales (GMFC-VAE's energies are negative
log-densities in two different latent spaces), so with `normalize: zscore` every part is first
standardised with the mean and standard deviation of its own scores on training videos (normal
data only; no test statistic is used; cells a part never scores, its `static_value`, are left
out of its statistics). Then:
- when every part has score maps of one shape, the fusion is per map cell (the statistics are
  those of the training map cells) and the frame score is the maximum of the fused map, as for
  each part;
- otherwise (different grids, or a part without maps) the frame scores are fused (statistics of
  the training frame scores) and the fused set has no maps.

params.yaml, section `fuse`: `models` maps each fused name to its parts and their weights; a
weight is a number or the name of a number in the section (GMFC-VAE's `alpha` and `beta`).

The parts are read one video at a time (`vad.scores.open_scores`) and the fused set is produced
one video at a time (`fused_stream`), statistics included (`vad.scores.train_statistics`), so
memory holds one video's scores of each part, whatever the length of the dataset.
"""

from __future__ import annotations

import math

import numpy as np

from vad.config import ConfigError, Section, check_all
from vad.scores import ScoreSet, ScoreSource, ScoreStream, VideoScores, train_statistics

NORMALIZATIONS = ("none", "zscore")


def fused_models(section: Section, known: list[str]) -> dict[str, dict[str, float]]:
    """`fuse.models` as {fused name: {part: weight}}, validated (errors name the key): every part
    a known method, every weight a number >= 0 or the name of one in the section, and at least
    one weight of each model nonzero (all zero would fuse a constant, an AUC of 0.5)."""
    models = section.mapping("models")
    result = {}
    for name, parts in models.items():
        where = f"params.yaml: 'fuse.models.{name}'"
        if name in known:
            raise ConfigError(f"{where}: a fused model cannot take the name of a method")
        if not isinstance(parts, dict) or not parts:
            raise ConfigError(f"{where} must map parts to weights, got {parts!r}")
        weights, keys = {}, {}
        for part, weight in parts.items():
            if part not in known:
                raise ConfigError(
                    f"{where}: unknown part {part!r}; known methods: {', '.join(known)}"
                )
            if isinstance(weight, str):
                keys[part] = f"fuse.{weight}"
                weight = section.float(weight)
            elif isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ConfigError(
                    f"{where}.{part}: weight must be a number or a key, got {weight!r}"
                )
            else:
                keys[part] = f"fuse.models.{name}.{part}"
            if not math.isfinite(weight) or weight < 0:
                raise ConfigError(
                    f"params.yaml: '{keys[part]}' must be a finite number >= 0 (the weight of "
                    f"{part} in fused model {name}), got {weight}"
                )
            weights[part] = float(weight)
        if not any(weights.values()):
            named = ", ".join(f"'{keys[part]}'" for part in weights)
            raise ConfigError(
                f"params.yaml: {named}: every weight of fused model {name} is 0, so its score "
                "would be constant (AUC 0.5); give at least one part a weight > 0"
            )
        result[str(name)] = weights
    return result


def fuse_settings(params: dict, known: list[str]) -> tuple[dict[str, dict[str, float]], str]:
    """The `fuse` section, validated: (`fused_models`, `normalize`). Besides `models` and
    `normalize`, the section may hold only the named weights some model uses (a key no model
    names, such as a mistyped `Alpha`, would change nothing)."""
    section = Section(params, "fuse")
    used = {
        weight
        for parts in section.mapping("models").values()
        if isinstance(parts, dict)
        for weight in parts.values()
        if isinstance(weight, str)
    }
    _, models, normalize = check_all(
        lambda: section.check_keys(["models", "normalize", *sorted(used)]),
        lambda: fused_models(section, known),
        lambda: section.str("normalize", list(NORMALIZATIONS)),
    )
    return models, normalize


def map_statistics(scores: ScoreSource) -> tuple[float, float]:
    """Mean and std of the scored training map cells of one score set: cells holding the set's
    `static_value` (never scored, one constant) are left out, else a mostly static scene would
    make the statistics those of the constant."""
    if not scores.names("train"):
        raise ValueError(f"{scores.model}: no training scores to normalize with")
    return train_statistics(scores, maps=True)


def part_statistics(
    parts: dict[str, ScoreSource], normalize: str
) -> tuple[bool, dict[str, tuple[float, float]]]:
    """Whether the parts fuse on maps, and each part's (mean, std) for `normalize`."""
    on_maps = _same_maps(parts)
    if normalize == "zscore":
        stats = {
            part: map_statistics(scores) if on_maps else train_statistics(scores)
            for part, scores in parts.items()
        }
    else:
        stats = dict.fromkeys(parts, (0.0, 1.0))
    return on_maps, stats


def weighted_sum(
    values: list[np.ndarray], weights: list[float], stats: list[tuple[float, float]]
) -> np.ndarray:
    """sum_i weights[i] (values[i] - mean_i) / std_i: eq. 18 over normalised parts."""
    total = None
    for value, weight, (mean, std) in zip(values, weights, stats, strict=True):
        term = weight * (value - mean) / std
        total = term if total is None else total + term
    return total


def _same_maps(parts: dict[str, ScoreSource]) -> bool:
    shapes = {
        scores.map_shape(split, video)
        for scores in parts.values()
        for split in ("test", "train")
        for video in scores.names(split)
    }
    return len(shapes) == 1 and None not in shapes


def fused_stream(
    name: str,
    parts: dict[str, ScoreSource],
    weights: dict[str, float],
    normalize: str = "zscore",
) -> ScoreStream:
    """The weighted sum of `parts` (see the module docstring), as the score set `name`, one
    video at a time: training videos (those of every part), then test videos, by name. The
    parts and their statistics are checked here, each video's shapes as it comes."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"fuse normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if set(parts) != set(weights) or not parts:
        raise ValueError(f"{name}: parts {sorted(parts)} and weights {sorted(weights)} differ")
    order = list(weights)
    tests = [set(parts[part].names("test")) for part in order]
    if any(videos != tests[0] for videos in tests):
        raise ValueError(
            f"{name}: the parts {order} score different test videos: "
            f"{sorted(set.union(*tests) - set.intersection(*tests))}"
        )
    on_maps, stats = part_statistics(parts, normalize)
    what = "score_maps" if on_maps else "frame_scores"

    def combine(split: str, video: str) -> VideoScores:
        values = [parts[part].array(split, video, what) for part in order]
        if len({value.shape for value in values}) != 1:
            shapes = dict(zip(order, (value.shape for value in values), strict=True))
            raise ValueError(f"{name}, video {video}: the parts' scores differ in shape {shapes}")
        total = weighted_sum(
            values, [weights[part] for part in order], [stats[part] for part in order]
        )
        indices = parts[order[0]].array(split, video, "frame_indices")
        if on_maps:
            return VideoScores(total.reshape(len(total), -1).max(axis=1), total, indices)
        return VideoScores(total, None, indices)

    def same_training_frames(video: str) -> bool:
        """Frame fusion needs the same training frames in every part."""
        first = _indices(parts[order[0]], video)
        return all(np.array_equal(_indices(parts[part], video), first) for part in order[1:])

    def videos():
        train = set.intersection(*(set(parts[part].names("train")) for part in order))
        for video in sorted(train):
            if on_maps or same_training_frames(video):
                yield "train", video, combine("train", video)
        for video in sorted(tests[0]):
            yield "test", video, combine("test", video)

    attrs = {
        "parts": order,
        "weights": [weights[part] for part in order],
        "normalize": normalize,
        "level": "map" if on_maps else "frame",
    }
    return ScoreStream(name, videos(), attrs)


def fuse(
    name: str,
    parts: dict[str, ScoreSource],
    weights: dict[str, float],
    normalize: str = "zscore",
) -> ScoreSet:
    """`fused_stream`, every video in memory."""
    return fused_stream(name, parts, weights, normalize).collect()


def _indices(scores: ScoreSource, video: str) -> np.ndarray:
    indices = scores.array("train", video, "frame_indices")
    if indices is not None:
        return indices
    return np.arange(len(scores.array("train", video, "frame_scores")))
