"""The floor of every results table: frame-difference energy per patch.

For each frame t, the mean absolute gray-level difference to frame t-1 (frame 0 uses frame 1) is
averaged over each cell of a patch grid (28×28 cells at 420×280: a 15×10 grid, the same grid as
GMFC-VAE's test patches). "Training" records, per cell, the mean and standard deviation of that
energy over the training frames; a test cell's score is its energy z-scored with those
statistics, and the frame score is the maximum over cells. No learning beyond two moments per
cell: any learned model should beat it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vad.motion.frame_difference import absolute_differences, cell_means

STD_FLOOR = 1e-3  # cells that never move in training must not divide by ~0


def difference_energy(
    frames: np.ndarray, patch: int, previous: np.ndarray | None = None
) -> np.ndarray:
    """T×H×W(×1) uint8 gray frames -> T×(H/patch)×(W/patch) mean |frame difference| per cell.

    `previous`: the frame before them (H×W(×1)) when they are a later block of a video, read
    block by block; the energies are then those rows of the whole video's."""
    gray = frames[..., 0] if frames.ndim == 4 else frames
    if previous is not None and previous.ndim == 3:
        previous = previous[..., 0]
    if previous is None and gray.shape[0] < 2:
        raise ValueError(f"frame-difference energy needs at least 2 frames, got {gray.shape[0]}")
    return cell_means(absolute_differences(gray, previous).astype(np.float32), patch)


@dataclass
class BaselineModel:
    mean: np.ndarray  # (rows, cols) mean training energy per cell
    std: np.ndarray  # (rows, cols)

    @classmethod
    def fit(cls, energies: list[np.ndarray]) -> BaselineModel:
        stacked = np.concatenate(energies).astype(np.float64)
        return cls.from_moments(stacked.mean(axis=0), stacked.std(axis=0))

    @classmethod
    def from_moments(cls, mean: np.ndarray, std: np.ndarray) -> BaselineModel:
        """The model of per-cell training means and standard deviations (std floored)."""
        return cls(mean=mean, std=np.maximum(std, STD_FLOOR))

    def score_maps(self, energy: np.ndarray) -> np.ndarray:
        if energy.shape[1:] != self.mean.shape:
            raise ValueError(
                f"energy grid {energy.shape[1:]} does not match the trained grid {self.mean.shape}"
            )
        return ((energy - self.mean) / self.std).astype(np.float32)


def frame_scores(score_maps: np.ndarray) -> np.ndarray:
    """Frame score = maximum over the patch map (as GMFC-VAE's paper scores frames)."""
    return score_maps.reshape(score_maps.shape[0], -1).max(axis=1)
