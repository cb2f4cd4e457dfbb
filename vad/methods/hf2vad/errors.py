"""HF2-VAD's per-object errors and their fusion into an anomaly score (Liu et al. ICCV 2021,
Sec. 3.3, eq. 9).

Per object (one STC), with the model in eval mode and the CVAE's latent the posterior mean
(mode "test", Sec. 3.2):

    S_r = ||y^_{1:t} - y_{1:t}||_2^2     flow reconstruction error (ML-MemAE-SC, all t flows)
    S_p = ||x^_{t+1} - x_{t+1}||_2^2     frame prediction error (CVAE; frames in [0, 1])

summed over every element of the cube's flows and of the predicted frame, as the released code
computes them (eval.py, train.py `cal_training_stats`: MSELoss(reduction="none") summed over
channels, height and width). Eq. 9:

    S = w_r (S_r - mu_r) / sigma_r + w_p (S_p - mu_p) / sigma_p

with mu, sigma the mean and (population) standard deviation of each error over the training
cubes (`ErrorStatistics.of`). A frame's score is the maximum over its objects (Sec. 4.2); a
frame without objects gets `floor`, eq. 9 at S_r = S_p = 0 (the released eval.py's value), below
every object's score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import h5py
import numpy as np
import torch

from vad.cache import read_dataset
from vad.methods.hf2vad.model import HybridNetwork, cube_tensors

INFERENCE_BATCH = 256  # cubes per forward pass when computing errors (4 chunks of stc.h5)
STD_FLOOR = 1e-12  # a constant training error (degenerate data) would divide by zero


@dataclass(frozen=True)
class ErrorStatistics:
    """mu_r, sigma_r, mu_p, sigma_p of eq. 9: the training cubes' errors."""

    flow_mean: float
    flow_std: float
    frame_mean: float
    frame_std: float

    @classmethod
    def of(cls, flow_errors: np.ndarray, frame_errors: np.ndarray) -> ErrorStatistics:
        """Mean and standard deviation (numpy's, ddof 0, as released) of each error."""
        return cls(
            float(np.mean(flow_errors)),
            max(float(np.std(flow_errors)), STD_FLOOR),
            float(np.mean(frame_errors)),
            max(float(np.std(frame_errors)), STD_FLOOR),
        )

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Weights:
    """(w_r, w_p) of eq. 9."""

    flow: float
    frame: float


def flow_scores(flow_errors: np.ndarray, stats: ErrorStatistics) -> np.ndarray:
    """(S_r - mu_r) / sigma_r: eq. 9's normalised flow reconstruction error."""
    return (np.asarray(flow_errors, np.float64) - stats.flow_mean) / stats.flow_std


def frame_scores(frame_errors: np.ndarray, stats: ErrorStatistics) -> np.ndarray:
    """(S_p - mu_p) / sigma_p: eq. 9's normalised frame prediction error."""
    return (np.asarray(frame_errors, np.float64) - stats.frame_mean) / stats.frame_std


def anomaly_scores(
    flow_errors: np.ndarray, frame_errors: np.ndarray, stats: ErrorStatistics, weights: Weights
) -> np.ndarray:
    """Eq. 9 per object, float64."""
    return weights.flow * flow_scores(flow_errors, stats) + weights.frame * frame_scores(
        frame_errors, stats
    )


def floor(stats: ErrorStatistics, weights: Weights) -> float:
    """The score of a frame without objects: eq. 9 with both errors 0."""
    return float(anomaly_scores(np.zeros(1), np.zeros(1), stats, weights)[0])


@torch.no_grad()
def batch_errors(
    network: HybridNetwork, frames: np.ndarray, flows: np.ndarray, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """(S_r, S_p) of a batch of cubes as stored (frames uint8, flows float16), float64 (B,).
    The network must be in eval mode."""
    frame_tensor, flow_tensor = cube_tensors(frames, flows, device)
    out = network(frame_tensor, flow_tensor, mode="test")
    flow_error = (out.flows.reconstruction - flow_tensor).pow(2).flatten(1).double().sum(1)
    frame_error = (out.frame.prediction - out.target).pow(2).flatten(1).double().sum(1)
    return flow_error.cpu().numpy(), frame_error.cpu().numpy()


def video_errors(
    network: HybridNetwork, group: h5py.Group, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """(S_r, S_p) of every cube of one video (an stc.h5 group), float64 (N,) each, its cubes
    read and put through the network INFERENCE_BATCH at a time."""
    count = len(group["frame"])
    flow, frame = [np.zeros(0)], [np.zeros(0)]
    for start in range(0, count, INFERENCE_BATCH):
        rows = np.s_[start : start + INFERENCE_BATCH]
        cubes = read_dataset(group["frames"], rows), read_dataset(group["flows"], rows)
        flow_block, frame_block = batch_errors(network, *cubes, device)
        flow.append(flow_block)
        frame.append(frame_block)
    return np.concatenate(flow), np.concatenate(frame)
