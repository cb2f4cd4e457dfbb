"""The auto-encoders' losses of Chang et al. 2022 on (B, C, H, W) frames.

- Spatial (eq. 3): the mean squared error between the FIF and its reconstruction.
- Motion (eq. 6): the mean squared error between the target difference LIF - FIF and the
  generated one, plus the gradient loss: for d in x, y, the mean over positions of
  | |g_d(target)| - |g_d(output)| |, g_d the forward difference of neighbouring pixels along d.
  The paper writes norms (sums); we take means, so the terms do not grow with the frame size.
  `gradient_weight` scales the gradient term (1 in the paper's eq. 6).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


def _mean_squared_error(target: Tensor, output: Tensor) -> Tensor:
    return (target - output).pow(2).mean()


def spatial_loss(fif: Tensor, reconstruction: Tensor) -> Tensor:
    """Eq. 3: mean squared error."""
    return _mean_squared_error(fif, reconstruction)


def _abs_gradient(frames: Tensor, dim: int) -> Tensor:
    length = frames.shape[dim]
    return (frames.narrow(dim, 1, length - 1) - frames.narrow(dim, 0, length - 1)).abs()


def gradient_loss(target: Tensor, output: Tensor) -> Tensor:
    """Eq. 6's gradient term: mean | |g_x(target)| - |g_x(output)| | plus the same along y
    (a mean over positions, not the sum)."""
    along_x = (_abs_gradient(target, -1) - _abs_gradient(output, -1)).abs().mean()
    along_y = (_abs_gradient(target, -2) - _abs_gradient(output, -2)).abs().mean()
    return along_x + along_y


class MotionLoss(NamedTuple):
    total: Tensor
    l2: Tensor
    gradient: Tensor


def motion_loss(target: Tensor, output: Tensor, gradient_weight: float = 1.0) -> MotionLoss:
    """Eq. 6: mean squared error + `gradient_weight` x gradient loss between the target and
    generated differences (the terms themselves unweighted in `l2` and `gradient`)."""
    l2 = _mean_squared_error(target, output)
    gradient = gradient_loss(target, output)
    return MotionLoss(l2 + gradient_weight * gradient, l2, gradient)
