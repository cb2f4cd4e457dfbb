"""Per-frame scores of one video from its clips (Cho, Kim, Lee, eqs. 7-8 and "Test method"):

- the reconstruction error map of eq. 7, E = -log10(1 - |I - Î|) per pixel (averaged over
  colour channels; |I - Î| clamped below 1 so that E stays finite);
- R, a frame's reconstruction score: the mean of E over the frame, or with `patch` > 0 (UCSD)
  the largest mean over the frame's non-overlapping patch x patch cells;
- NLL_a and NLL_m, the two Glows' negative log-likelihoods of the clip's pooled features;
each per frame the mean over every clip the frame appears in (clips.FrameAverage), and the maps
averaged the same way on a grid of `cell` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vad.methods.clip_batches import clamped_clip
from vad.methods.itae.clips import FrameAverage, VideoClips
from vad.methods.itae.features import appearance_input, motion_input
from vad.methods.itae.model import ITAEModel

ERROR_CLAMP = 1.0 - 1e-6  # |I - Î| at most this: E at most 6
SCORE_BATCH = 4  # clips per forward pass when scoring (training and test videos)


def error_maps(clip: Tensor, reconstruction: Tensor) -> Tensor:
    """Eq. 7 per pixel: (B, C, T, H, W) clips -> (B, T, H, W)."""
    difference = (clip - reconstruction).abs().clamp(max=ERROR_CLAMP)
    return (-torch.log10(1.0 - difference)).mean(dim=1)


def frame_errors(errors: Tensor, patch: int) -> Tensor:
    """(B, T, H, W) error maps -> (B, T) frame scores R: the mean, or the largest patch mean."""
    if patch <= 0:
        return errors.mean(dim=(2, 3))
    batch, frames, height, width = errors.shape
    if patch > min(height, width):
        raise ValueError(f"patch {patch} is larger than the {width}x{height} frames")
    cells = F.avg_pool2d(errors.reshape(batch * frames, 1, height, width), patch)
    return cells.reshape(batch, frames, -1).amax(dim=2)


def cell_maps(errors: Tensor, cell: int) -> Tensor:
    """(B, T, H, W) -> (B, T, ceil(H / cell), ceil(W / cell)) cell means (the map grid covers
    the frame; edge cells average the pixels they hold)."""
    batch, frames, height, width = errors.shape
    flat = errors.reshape(batch * frames, 1, height, width)
    pooled = F.avg_pool2d(flat, cell, ceil_mode=True, count_include_pad=False)
    return pooled.reshape(batch, frames, *pooled.shape[-2:])


@dataclass
class VideoResult:
    reconstruction: np.ndarray  # (T,) R per frame
    nll_appearance: np.ndarray  # (T,)
    nll_motion: np.ndarray  # (T,)
    maps: np.ndarray | None  # (T, rows, cols) mean E per cell, or None


@torch.no_grad()
def score_clips(
    model: ITAEModel,
    clips: VideoClips,
    batch_size: int,
    device: torch.device,
    cell: int | None = None,
) -> VideoResult:
    """Every clip of the video through the model; per-frame means over the clips."""
    preset = model.preset
    count = clips.num_frames
    recon, nll_a, nll_m = FrameAverage(count), FrameAverage(count), FrameAverage(count)
    maps = None
    for first in range(0, len(clips.starts), batch_size):
        starts = clips.starts[first : first + batch_size]
        clip = clips.batch(starts).to(device)
        output = model.network(clip)
        errors = error_maps(clip, output.reconstruction)
        r = frame_errors(errors, preset.patch).cpu().numpy()
        a = model.glow_appearance.nll(appearance_input(output.appearance, clip, preset.tau))
        m = model.glow_motion.nll(motion_input(output.motion))
        cells = cell_maps(errors, cell).cpu().numpy() if cell else None
        if cells is not None and maps is None:
            maps = FrameAverage(count, cells.shape[2:])
        for i, start in enumerate(starts):
            frames = clamped_clip(start, preset.clip_length, count)
            recon.add(frames, r[i])
            nll_a.add(frames, np.full(len(frames), float(a[i])))
            nll_m.add(frames, np.full(len(frames), float(m[i])))
            if maps is not None:
                maps.add(frames, cells[i])
    return VideoResult(
        recon.mean(), nll_a.mean(), nll_m.mean(), maps.mean() if maps is not None else None
    )


def likelihood_score(nll_a: np.ndarray, nll_m: np.ndarray, statistics: dict) -> np.ndarray:
    """Eq. 8: the NLLs weighted by the ranges of the training clips' NLLs (lambda_1, lambda_2;
    DEVIATIONS.md says how we read "max(x^a) - min(x^a)")."""
    lam_a, lam_m = statistics["range_appearance"], statistics["range_motion"]
    return ((lam_a * nll_a + lam_m * nll_m) / max(lam_a + lam_m, 1e-12)).astype(np.float32)


def standardised(
    reconstruction: np.ndarray, likelihood: np.ndarray, statistics: dict
) -> tuple[np.ndarray, np.ndarray]:
    """z(R), z(L): standardised by the training frames' mean and std."""
    z_r = (reconstruction - statistics["mean_r"]) / max(statistics["std_r"], 1e-12)
    z_l = (likelihood - statistics["mean_l"]) / max(statistics["std_l"], 1e-12)
    return z_r, z_l


def combined_score(
    reconstruction: np.ndarray, likelihood: np.ndarray, statistics: dict, parts: str, lam: float
) -> np.ndarray:
    """Eq. 9 with training statistics: z(R) + lambda_L z(L) (`standardised`; the paper's
    per-video min-max is the paper protocol's job); `parts` reconstruction / likelihood: one
    term alone."""
    z_r, z_l = standardised(reconstruction, likelihood, statistics)
    if parts == "reconstruction":
        return z_r.astype(np.float32)
    if parts == "likelihood":
        return z_l.astype(np.float32)
    return (z_r + lam * z_l).astype(np.float32)
