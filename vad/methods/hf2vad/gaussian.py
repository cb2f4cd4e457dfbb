"""Diagonal Gaussians of the CVAE's latents (Liu et al. ICCV 2021, Sec. 3.2): the prior
p(z | y_{1:t}), the posterior q(z | x_{1:t}, y_{1:t}), reparameterised sampling, and the closed
form of KL[q || p] in eqs. 5-6.

Log-variances are clamped to [LOG_VAR_MIN, LOG_VAR_MAX] when a Gaussian is made, so that
exp(log_var) can neither overflow nor vanish in float32. The released code (LiUzHiAn/hf2vad,
models/vunet.py `_latent_sample`, losses/loss.py `latent_kl`) fixes every variance to 1; that is
the case log_var = 0 here, where the KL reduces to its 0.5 * (mu_q - mu_p)^2.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

LOG_VAR_MIN = -10.0
LOG_VAR_MAX = 10.0


class DiagonalGaussian(NamedTuple):
    mean: Tensor
    log_var: Tensor

    def sample(self, generator: torch.Generator | None) -> Tensor:
        """z = mean + exp(log_var / 2) * eps, eps ~ N(0, I) drawn from `generator`."""
        if generator is None:
            raise ValueError("sampling a latent needs a torch.Generator (pass generator=...)")
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + torch.exp(0.5 * self.log_var) * eps


def gaussian(mean: Tensor, log_var: Tensor | None = None) -> DiagonalGaussian:
    """A diagonal Gaussian with its log-variance clamped; unit variance when log_var is None."""
    if log_var is None:
        log_var = torch.zeros_like(mean)
    elif log_var.shape != mean.shape:
        raise ValueError(f"mean {tuple(mean.shape)} and log_var {tuple(log_var.shape)} differ")
    return DiagonalGaussian(mean, log_var.clamp(LOG_VAR_MIN, LOG_VAR_MAX))


def kl_divergence(q: DiagonalGaussian, p: DiagonalGaussian) -> Tensor:
    """Element-wise KL[q || p] of two diagonal Gaussians:
    0.5 * (log s_p^2 - log s_q^2 + (s_q^2 + (m_q - m_p)^2) / s_p^2 - 1)."""
    return 0.5 * (
        p.log_var
        - q.log_var
        + torch.exp(q.log_var - p.log_var)
        + (q.mean - p.mean).pow(2) * torch.exp(-p.log_var)
        - 1.0
    )
