"""HF2-VAD's training objectives (Liu et al. ICCV 2021): ML-MemAE-SC's eqs. 1-3 and the CVAE's
eqs. 6-8.

Reductions follow the released code (LiUzHiAn/hf2vad, losses/loss.py, ml_memAE_sc_train.py,
train.py), which the paper's loss weights were tuned with: squared errors are means over all
elements (nn.MSELoss), each memory's entropy is a mean over queries of a sum over slots, summed
over memories, and the KL is summed over a latent map's elements, averaged over the batch and
summed over the latent levels.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from vad.methods.hf2vad.cvae import CVAEOutput
from vad.methods.hf2vad.gaussian import kl_divergence
from vad.methods.hf2vad.memae import MemAEOutput
from vad.methods.hf2vad.memory import addressing_entropy


class MemAELoss(NamedTuple):
    total: Tensor  # eq. 3
    reconstruction: Tensor  # eq. 1, mean over elements
    entropy: Tensor  # eq. 2


class CVAELoss(NamedTuple):
    total: Tensor  # eq. 8
    kl: Tensor  # KL[q || p] of eq. 6
    frame: Tensor  # ||x_{t+1} - x^_{t+1}||^2 of eq. 6, mean over elements
    gradient: Tensor  # eq. 7


def squared_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over all elements (eqs. 1 and 6, as nn.MSELoss reduces them)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
        )
    return (prediction - target).pow(2).mean()


def memory_entropy(weights: list[Tensor]) -> Tensor:
    """Eq. 2: the entropies of every memory's addressing weights, summed over memories."""
    if not weights:
        raise ValueError("memory_entropy needs the addressing weights of at least one memory")
    return sum(addressing_entropy(w) for w in weights)


def memae_loss(
    output: MemAEOutput,
    target: Tensor,
    reconstruction_weight: float = 1.0,
    entropy_weight: float = 2e-4,
) -> MemAELoss:
    """Eq. 3: lambda_recon * L_recon + lambda_ent * L_ent (paper: 1.0 and 2e-4)."""
    reconstruction = squared_error(output.reconstruction, target)
    entropy = memory_entropy(output.weights)
    total = reconstruction_weight * reconstruction + entropy_weight * entropy
    return MemAELoss(total=total, reconstruction=reconstruction, entropy=entropy)


def gradient_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Eq. 7 (from Liu et al. CVPR 2018): || |dX| - |dX^| || along x plus along y, over the
    pixel pairs that exist (i-1 and j-1 inside the image); each direction a mean, as the
    released code reduces it. Tensors (..., H, W)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
        )
    along_x = (target.diff(dim=-1).abs() - prediction.diff(dim=-1).abs()).abs().mean()
    along_y = (target.diff(dim=-2).abs() - prediction.diff(dim=-2).abs()).abs().mean()
    return along_x + along_y


def latent_kl(output: CVAEOutput) -> Tensor:
    """KL[q(z | x_{1:t}, y_{1:t}) || p(z | y_{1:t})] (eqs. 5-6): per latent level summed over
    the map's elements, averaged over the batch; summed over levels."""
    total = 0.0
    for q, p in zip(output.posteriors, output.priors, strict=True):
        total = total + kl_divergence(q, p).flatten(1).sum(dim=1).mean()
    return total


def cvae_loss(
    output: CVAEOutput,
    target: Tensor,
    cvae_weight: float = 1.0,
    gradient_weight: float = 1.0,
) -> CVAELoss:
    """Eq. 8: lambda_CVAE * (KL + L2) + lambda_gd * L_gd (paper: 1.0 and 1.0)."""
    kl = latent_kl(output)
    frame = squared_error(output.prediction, target)
    gradient = gradient_loss(output.prediction, target)
    total = cvae_weight * (kl + frame) + gradient_weight * gradient
    return CVAELoss(total=total, kl=kl, frame=frame, gradient=gradient)
