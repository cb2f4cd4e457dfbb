"""Late fusion of the two GMFC-VAE streams (paper eq. 18): E = alpha·E_app + beta·E_motion.

The raw sample energies of the two streams live on different scales (they are negative
log-densities in two unrelated 64-D latent spaces), so with `normalize: zscore` each stream's
patch energies are first standardised with the mean and standard deviation of that stream's
energies on training frames (normal data only; no test statistic is used). Fusion is done per
patch, and the frame score is the maximum of the fused map, as for each stream.
"""

from __future__ import annotations

import numpy as np

from vad.scores import ScoreSet, VideoScores

NORMALIZATIONS = ("none", "zscore")


def patch_statistics(scores: ScoreSet) -> tuple[float, float]:
    """Mean and std of all training patch energies of one stream."""
    if not scores.train:
        raise ValueError(f"{scores.model}: no training scores to normalize with")
    values = np.concatenate([v.score_maps.ravel() for v in scores.train.values()])
    return float(values.mean()), float(max(values.std(), 1e-12))


def fuse(
    appearance: ScoreSet, motion: ScoreSet, alpha: float, beta: float, normalize: str = "zscore"
) -> ScoreSet:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"fuse normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if set(appearance.test) != set(motion.test):
        raise ValueError(
            "appearance and motion scores cover different test videos: "
            f"{sorted(set(appearance.test) ^ set(motion.test))}"
        )
    if normalize == "zscore":
        (mean_a, std_a), (mean_m, std_m) = patch_statistics(appearance), patch_statistics(motion)
    else:
        mean_a, std_a, mean_m, std_m = 0.0, 1.0, 0.0, 1.0

    def combine(a: VideoScores, m: VideoScores, name: str) -> VideoScores:
        if a.score_maps.shape != m.score_maps.shape:
            raise ValueError(
                f"video {name}: appearance maps {a.score_maps.shape} and motion "
                f"maps {m.score_maps.shape} differ"
            )
        fused = alpha * (a.score_maps - mean_a) / std_a + beta * (m.score_maps - mean_m) / std_m
        return VideoScores(fused.reshape(len(fused), -1).max(axis=1), fused, a.frame_indices)

    result = ScoreSet(
        model="gmfc_vae", attrs={"alpha": alpha, "beta": beta, "normalize": normalize}
    )
    for name in sorted(appearance.test):
        result.test[name] = combine(appearance.test[name], motion.test[name], name)
    for name in sorted(set(appearance.train) & set(motion.train)):
        result.train[name] = combine(appearance.train[name], motion.train[name], name)
    return result
