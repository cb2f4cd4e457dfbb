"""ITAE's reconstruction loss (Cho, Kim, Lee, eq. 3-4, and the MS-SSIM term added for UCSD).

Clips are (B, C, T, H, W) in [0, 1]; the gradient and MS-SSIM terms treat each frame as an
image. The loss is L2 + L_grad + ms_ssim_weight * (1 - MS-SSIM), the weight 1 for UCSD and 0
otherwise ("multi-scale SSIM ... is added to the reconstruction loss" for UCSD only).

- L2 (eq. 3): the mean squared error over all pixels.
- L_grad (Liu et al. 2018, "future frame prediction"): forward differences along width and
  height, mean over positions of | |dx I| - |dx I^| | plus the same mean along height.
- MS-SSIM (Wang, Simoncelli, Bovik 2003): 11 x 11 Gaussian window (sigma 1.5) applied without
  padding, data range 1 (K1 0.01, K2 0.03), 2 x 2 average pooling between scales, weights
  0.0448, 0.2856, 0.3001, 0.2363, 0.1333; contrast-structure terms at every scale but the last,
  luminance x contrast-structure at the last, each a spatial mean per frame and channel, floored
  at 1e-6 so that negative values give neither NaN nor infinite gradients when raised to the
  fractional weights; the product is averaged over frames and channels. Scales: the requested
  number (5) reduced to the largest M whose coarsest scale, min(H, W) // 2^(M-1), still fits
  the window (>= 11 pixels), with the first M weights renormalised to sum to 1; frames smaller
  than the window are refused.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
DATA_RANGE = 1.0
_C1 = (0.01 * DATA_RANGE) ** 2
_C2 = (0.03 * DATA_RANGE) ** 2
_FLOOR = 1e-6


def l2_loss(clip: Tensor, reconstruction: Tensor) -> Tensor:
    """Eq. 3: mean squared error over all pixels."""
    return (clip - reconstruction).pow(2).mean()


def _abs_difference(frames: Tensor, dim: int) -> Tensor:
    length = frames.shape[dim]
    return (frames.narrow(dim, 1, length - 1) - frames.narrow(dim, 0, length - 1)).abs()


def gradient_loss(clip: Tensor, reconstruction: Tensor) -> Tensor:
    """Liu et al.'s gradient loss: mean | |dx I| - |dx I^| | + mean | |dy I| - |dy I^| |."""
    width = (_abs_difference(clip, -1) - _abs_difference(reconstruction, -1)).abs().mean()
    height = (_abs_difference(clip, -2) - _abs_difference(reconstruction, -2)).abs().mean()
    return width + height


def ms_ssim_scales(height: int, width: int, scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """The number of scales used for frames of height x width (module docstring's rule)."""
    side = min(height, width)
    if side < WINDOW_SIZE:
        raise ValueError(f"frames of {height} x {width} are smaller than the SSIM window")
    fitting = 1
    while fitting < scales and side // 2**fitting >= WINDOW_SIZE:
        fitting += 1
    return fitting


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> Tensor:
    offsets = torch.arange(WINDOW_SIZE, dtype=dtype, device=device) - (WINDOW_SIZE - 1) / 2
    window = torch.exp(-(offsets**2) / (2 * WINDOW_SIGMA**2))
    return window / window.sum()


def _blur(images: Tensor, window: Tensor) -> Tensor:
    channels = images.shape[1]
    horizontal = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.conv2d(images, horizontal, groups=channels), vertical, groups=channels)


def _ssim_terms(x: Tensor, y: Tensor, window: Tensor) -> tuple[Tensor, Tensor]:
    """Spatial means of luminance x contrast-structure and of contrast-structure, (N, C)."""
    mean_x, mean_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mean_x**2
    var_y = _blur(y * y, window) - mean_y**2
    covariance = _blur(x * y, window) - mean_x * mean_y
    luminance = (2 * mean_x * mean_y + _C1) / (mean_x**2 + mean_y**2 + _C1)
    contrast_structure = (2 * covariance + _C2) / (var_x + var_y + _C2)
    return (luminance * contrast_structure).mean((-2, -1)), contrast_structure.mean((-2, -1))


def _frames(clip: Tensor) -> Tensor:
    batch, channels, length, height, width = clip.shape
    return clip.transpose(1, 2).reshape(batch * length, channels, height, width)


def ms_ssim(clip: Tensor, reconstruction: Tensor, scales: int = len(MS_SSIM_WEIGHTS)) -> Tensor:
    """Mean MS-SSIM over the frames (and channels) of two (B, C, T, H, W) clips."""
    x, y = _frames(clip), _frames(reconstruction)
    used = ms_ssim_scales(x.shape[-2], x.shape[-1], scales)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:used], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    window = _gaussian_window(x.dtype, x.device)
    similarity = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
    for scale in range(used):
        if scale > 0:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        ssim, contrast_structure = _ssim_terms(x, y, window)
        term = ssim if scale == used - 1 else contrast_structure
        similarity = similarity * term.clamp(min=_FLOOR).pow(weights[scale])
    return similarity.mean()


class ReconstructionLoss(NamedTuple):
    total: Tensor
    l2: Tensor
    gradient: Tensor
    ms_ssim: Tensor | None  # the similarity (not 1 - it); None when its weight is 0


def reconstruction_loss(
    clip: Tensor, reconstruction: Tensor, ms_ssim_weight: float = 0.0
) -> ReconstructionLoss:
    """L2 + L_grad (eq. 4) + ms_ssim_weight * (1 - MS-SSIM); MS-SSIM is computed only when its
    weight is not 0."""
    l2 = l2_loss(clip, reconstruction)
    gradient = gradient_loss(clip, reconstruction)
    total = l2 + gradient
    similarity = None
    if ms_ssim_weight:
        similarity = ms_ssim(clip, reconstruction)
        total = total + ms_ssim_weight * (1 - similarity)
    return ReconstructionLoss(total, l2, gradient, similarity)
