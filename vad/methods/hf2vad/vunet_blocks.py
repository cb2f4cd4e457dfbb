"""Building blocks of HF2-VAD's CVAE (Liu et al. ICCV 2021, Appendix A, Fig. 9), which follows the
Variational U-Net of Esser et al. (CVPR 2018) as ported in the released code (LiUzHiAn/hf2vad,
models/basic_modules.py: NormConv2d, Downsample, Upsample, VUnetResnetBlock, Space/DepthToSpace).

- weight-normalised convolutions (Salimans & Kingma 2016): W = g * V / ||V|| per output channel;
- down-sampling by a stride-2 3x3 convolution, up-sampling by sub-pixel convolution (Shi et al.
  CVPR 2016: a 3x3 convolution to 4C channels, then depth-to-space) - Appendix A;
- residual blocks x + conv(dropout(elu([x, conv1x1(elu(a))]))) with an optional skip input a.

Dropout draws its masks from a torch.Generator passed at call time, so that training runs are
reproducible from their seeds alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def space_to_depth(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2); channel block k = 2*dy + dx holds the pixels at offset
    (dy, dx) of every 2x2 cell, so that the 4 channel groups are 4 interleaved sub-grids."""
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"space_to_depth needs an even height and width; got {h}x{w}")
    cells = x.reshape(b, c, h // 2, 2, w // 2, 2)
    return cells.permute(0, 3, 5, 1, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def depth_to_space(x: Tensor) -> Tensor:
    """The inverse of `space_to_depth`: (B, 4C, H, W) -> (B, C, 2H, 2W)."""
    b, c4, h, w = x.shape
    if c4 % 4:
        raise ValueError(f"depth_to_space needs a multiple of 4 channels; got {c4}")
    blocks = x.reshape(b, 2, 2, c4 // 4, h, w)
    return blocks.permute(0, 3, 4, 1, 5, 2).reshape(b, c4 // 4, 2 * h, 2 * w)


def generator_dropout(
    x: Tensor, p: float, training: bool, generator: torch.Generator | None
) -> Tensor:
    """Inverted dropout whose mask comes from `generator` (on x's device); identity when not
    training or p == 0."""
    if not training or p == 0.0:
        return x
    if generator is None:
        raise ValueError("dropout in training mode needs a torch.Generator (pass generator=...)")
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


class WeightNormConv2d(nn.Module):
    """Conv2d with weight normalisation, W = g * V / ||V|| (norm over each output filter)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = kernel_size // 2
        self.direction = nn.Parameter(
            torch.empty(out_channels, in_channels, kernel_size, kernel_size)
        )
        self.gain = nn.Parameter(torch.empty(out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """V as PyTorch initialises a Conv2d (Kaiming-uniform, a = sqrt(5)), g = ||V|| so that
        W = V at the start, bias ~ U(+-1/sqrt(fan_in)): the effective start of the released
        code, whose Kaiming-normal re-initialisation does not reach weight-normed layers."""
        nn.init.kaiming_uniform_(self.direction, a=math.sqrt(5), generator=generator)
        with torch.no_grad():
            self.gain.copy_(self.direction.flatten(1).norm(dim=1))
        bound = 1.0 / math.sqrt(self.direction[0].numel())
        nn.init.uniform_(self.bias, -bound, bound, generator=generator)

    def weight(self) -> Tensor:
        norm = self.direction.flatten(1).norm(dim=1).clamp_min(1e-12)
        return self.direction * (self.gain / norm).view(-1, 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight(), self.bias, stride=self.stride, padding=self.padding)


class Downsample(nn.Module):
    """Stride-2 3x3 weight-normalised convolution (Appendix A)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = WeightNormConv2d(in_channels, out_channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Sub-pixel convolution (Appendix A; Shi et al. 2016): 3x3 conv to 4C, depth-to-space."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = WeightNormConv2d(in_channels, 4 * out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return depth_to_space(self.conv(x))


class ResBlock(nn.Module):
    """x + conv3x3(dropout(elu(h))), h = x or [x, conv1x1(elu(a))] when a skip input a is used
    (the VUnet residual block of the released code, ELU activations)."""

    def __init__(self, channels: int, with_skip: bool, dropout: float) -> None:
        super().__init__()
        self.with_skip = with_skip
        self.dropout = dropout
        self.skip_in = WeightNormConv2d(channels, channels, 1) if with_skip else None
        self.conv = WeightNormConv2d(2 * channels if with_skip else channels, channels, 3)

    def forward(
        self, x: Tensor, skip: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        h = x
        if self.skip_in is not None:
            if skip is None:
                raise ValueError("this ResBlock was built with a skip input; pass skip=...")
            h = torch.cat([h, self.skip_in(F.elu(skip))], dim=1)
        h = generator_dropout(F.elu(h), self.dropout, self.training, generator)
        return x + self.conv(h)


class Encoder(nn.Module):
    """The encoders E_theta and F_phi (Fig. 9): a 1x1 convolution to channels[0], then per level
    (down-sampling first, except at level 0) two residual blocks; every block's output is kept
    (the posterior, prior and decoder skips read them)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.stem = WeightNormConv2d(in_channels, channels[0], 1)
        self.downs = nn.ModuleList(
            Downsample(channels[i - 1], channels[i]) for i in range(1, len(channels))
        )
        self.blocks = nn.ModuleList(
            nn.ModuleList(ResBlock(c, with_skip=False, dropout=dropout) for _ in range(2))
            for c in channels
        )

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> list[tuple[Tensor, Tensor]]:
        """Per level, finest first: (output of the first block, output of the second block)."""
        features = []
        h = self.stem(x)
        for level, (first, second) in enumerate(self.blocks):
            if level > 0:
                h = self.downs[level - 1](h)
            h1 = first(h, generator=generator)
            h = second(h1, generator=generator)
            features.append((h1, h))
        return features
