"""The two latent levels of HF2-VAD's CVAE (Liu et al. ICCV 2021, Sec. 3.2 and Appendix A): "we
utilize the last two bottleneck levels to estimate the distributions and sample data from them".

As in the released code (LiUzHiAn/hf2vad, models/vunet.py: `ZConverter`, `VUnetBottleneck`),
which follows the Variational U-Net (Esser et al. 2018):

- `PosteriorLatents` (q(z | x_{1:t}, y_{1:t}), from F_phi's features): the deepest level's
  mean comes from F_phi's last block; its latent, merged with F_phi's first block of that level,
  is up-sampled and, with the next level's features, gives the second level's mean. The second
  latent is thus conditioned on the first (a hierarchical posterior).
- `PriorLatents` (p(z | y_{1:t}), from E_theta's features) runs the same two levels on the flow
  features. At each level the prior is autoregressive over the 4 interleaved sub-grids of the
  latent map (space-to-depth groups): group k's parameters are computed from the flow features
  and the posterior's latents of groups < k (teacher forcing). The latent that continues down
  the generator is the posterior's: sampled in training, its mean at test time (Sec. 3.2,
  Appendix B). The autoregressive layers are shared by both levels, as in the released code.
  The generator's output at the shallower latent level is where the decoder D_psi starts.

Means are the residual stream itself (as released); when `learn_variance` is set, a 1x1
convolution of the same features gives each log-variance, otherwise the variances are 1 (the
released code's choice).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vad.methods.hf2vad.gaussian import DiagonalGaussian, gaussian
from vad.methods.hf2vad.vunet_blocks import (
    ResBlock,
    Upsample,
    WeightNormConv2d,
    depth_to_space,
    space_to_depth,
)

GROUPS = 4  # sub-grids of a 2x2 space-to-depth: the autoregressive factors of the prior
Features = list[tuple[Tensor, Tensor]]  # per level: (first block output, second block output)


class PosteriorLatents(nn.Module):
    """q(z | x_{1:t}, y_{1:t}) at the two deepest levels, from F_phi's features."""

    def __init__(self, channels: int, dropout: float, learn_variance: bool) -> None:
        super().__init__()
        self.stem = WeightNormConv2d(channels, channels, 1)
        self.deep_block = ResBlock(channels, with_skip=True, dropout=dropout)
        self.merge = WeightNormConv2d(2 * channels, channels, 1)
        self.merge_block = ResBlock(channels, with_skip=True, dropout=dropout)
        self.up = Upsample(channels, channels)
        self.shallow_block = ResBlock(channels, with_skip=True, dropout=dropout)
        self.log_var_heads = (
            nn.ModuleList(WeightNormConv2d(channels, channels, 1) for _ in range(2))
            if learn_variance
            else None
        )

    def _gaussian(self, index: int, h: Tensor) -> DiagonalGaussian:
        log_var = None if self.log_var_heads is None else self.log_var_heads[index](h)
        return gaussian(h, log_var)

    def forward(
        self, features: Features, sample: bool, generator: torch.Generator | None
    ) -> tuple[list[DiagonalGaussian], list[Tensor]]:
        """(posteriors, latents), deepest level first; latents are samples or the means."""
        (deep_first, deep_last), (_, shallow_last) = features[-1], features[-2]
        posteriors, latents = [], []

        h = self.deep_block(self.stem(deep_last), deep_last, generator)
        posteriors.append(self._gaussian(0, h))
        latents.append(posteriors[-1].sample(generator) if sample else posteriors[-1].mean)

        merged = self.merge(torch.cat([deep_first, latents[-1]], dim=1))
        h = self.up(self.merge_block(h, merged, generator))
        h = self.shallow_block(h, shallow_last, generator)
        posteriors.append(self._gaussian(1, h))
        latents.append(posteriors[-1].sample(generator) if sample else posteriors[-1].mean)
        return posteriors, latents


class AutoregressivePrior(nn.Module):
    """Prior parameters of one latent map in 4 groups (sub-grids), group k conditioned on the
    given latents of groups < k."""

    def __init__(self, channels: int, dropout: float, learn_variance: bool) -> None:
        super().__init__()
        self.first = ResBlock(channels, with_skip=False, dropout=dropout)
        self.to_groups = WeightNormConv2d(GROUPS * channels, channels, 1)
        self.steps = nn.ModuleList(
            ResBlock(channels, with_skip=True, dropout=dropout) for _ in range(GROUPS - 1)
        )
        self.log_var_head = WeightNormConv2d(channels, channels, 1) if learn_variance else None

    def forward(
        self, h: Tensor, latent: Tensor, generator: torch.Generator | None
    ) -> DiagonalGaussian:
        given = space_to_depth(latent).chunk(GROUPS, dim=1)
        state = self.to_groups(space_to_depth(self.first(h, generator=generator)))
        means = [state]
        for step, previous in zip(self.steps, given[:-1], strict=True):
            state = step(state, previous, generator)
            means.append(state)
        mean = depth_to_space(torch.cat(means, dim=1))
        if self.log_var_head is None:
            return gaussian(mean)
        log_var = depth_to_space(torch.cat([self.log_var_head(m) for m in means], dim=1))
        return gaussian(mean, log_var)


class PriorLatents(nn.Module):
    """p(z | y_{1:t}) at the two deepest levels from E_theta's features, and the generator
    trunk that merges the (posterior) latents with the flow features (Fig. 9 bottleneck)."""

    def __init__(self, channels: int, dropout: float, learn_variance: bool) -> None:
        super().__init__()
        self.stem = WeightNormConv2d(channels, channels, 1)
        self.in_blocks = nn.ModuleList(
            ResBlock(channels, with_skip=True, dropout=dropout) for _ in range(2)
        )
        self.merges = nn.ModuleList(WeightNormConv2d(2 * channels, channels, 1) for _ in range(2))
        self.out_blocks = nn.ModuleList(
            ResBlock(channels, with_skip=True, dropout=dropout) for _ in range(2)
        )
        self.up = Upsample(channels, channels)
        self.autoregressive = AutoregressivePrior(channels, dropout, learn_variance)

    def forward(
        self, features: Features, latents: list[Tensor], generator: torch.Generator | None
    ) -> tuple[Tensor, list[DiagonalGaussian]]:
        """(generator features at the shallower latent level, priors deepest first)."""
        priors = []
        h = self.stem(features[-1][1])
        for index, ((first, last), latent) in enumerate(
            zip((features[-1], features[-2]), latents, strict=True)
        ):
            h = self.in_blocks[index](h, last, generator)
            priors.append(self.autoregressive(h, latent, generator))
            merged = self.merges[index](torch.cat([first, latent], dim=1))
            h = self.out_blocks[index](h, merged, generator)
            if index == 0:
                h = self.up(h)
        return h, priors
