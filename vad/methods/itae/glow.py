"""Glow (Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS
2018), the density model of ITAE + Glow (Cho, Kim, Lee, "Learning normality distribution",
eqs. 1-2 and 5-6) on an auto-encoder's latent feature maps (B, C, H, W).

The inputs are continuous features, not images: no dequantisation noise, no pixel-range
constants; log-likelihoods are in nats per sample.

A flow step (Glow Sec. 3, Fig. 2a) is actnorm -> invertible 1x1 convolution -> affine coupling,
each with the log-determinant of Glow's Table 1. The multi-scale architecture (Glow Fig. 2b,
after RealNVP Sec. 3.6) runs L levels of: squeeze (2x2 space-to-depth), K flow steps, and, except
at the last level, split off half of the channels as a latent z_i. Its prior is a diagonal
Gaussian whose mean and log-std come from a zero-initialised 3x3 convolution of the kept half
(Glow's `split2d`). The last level's latent has a diagonal Gaussian prior with a learned mean and
log-std per channel, shared over positions (Glow's `learntop`), zero-initialised: N(0, I) at
construction. log p(x) = sum_i log p(z_i | condition) + log|det dz/dx| (the paper's eq. 2).

Choices where Glow leaves room or the released code differs:
- Log-stds of every Gaussian are clamped to [LOG_STD_MIN, LOG_STD_MAX] where densities are
  computed, so exp(-log_std) cannot overflow in float32.
- Coupling scale (`coupling_scale`): "sigmoid" is Glow's released code, scale = sigmoid(raw + 2);
  "exp" is the paper's Table 1, scale = exp(raw). With the zero-initialised last convolution a
  fresh "exp" coupling is the identity; a fresh "sigmoid" coupling scales by sigmoid(2) ~ 0.88.
- Zero-initialised convolutions multiply their output by exp(3 * logs) with a learned per-channel
  logs (zero at start), as Glow's `conv2d_zeros`; they pad with zeros (Glow also appends an
  edge-indicator channel, not done here).
- The coupling network's two hidden convolutions have biases and no actnorm; their weights and
  biases follow PyTorch's default distributions, drawn from the seeded generator.
- ActNorm initialises itself from the first batch it sees in training mode; in eval mode an
  uninitialised ActNorm is the identity.
- `forward` returns the latents themselves (not standardised by their priors), so `inverse` needs
  no prior; the priors enter only the log-likelihood.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CouplingScale = Literal["sigmoid", "exp"]
LOG_STD_MIN = -10.0
LOG_STD_MAX = 10.0
ACTNORM_EPS = 1e-6  # added to the per-channel std of the initialising batch (as Glow)
ZERO_CONV_LOGSCALE_FACTOR = 3.0  # Glow's conv2d_zeros: output * exp(3 * logs)
SIGMOID_SHIFT = 2.0  # Glow's coupling: scale = sigmoid(raw + 2)
LOG_2PI = math.log(2.0 * math.pi)


def squeeze(x: Tensor) -> Tensor:
    """2x2 space-to-depth, (B, C, H, W) -> (B, 4C, H/2, W/2) (RealNVP Sec. 3.6)."""
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"squeeze needs an even height and width, got shape {tuple(x.shape)}")
    x = x.reshape(b, c, h // 2, 2, w // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """Inverse of `squeeze`, (B, 4C, H, W) -> (B, C, 2H, 2W)."""
    b, c, h, w = x.shape
    if c % 4:
        raise ValueError(f"unsqueeze needs channels divisible by 4, got shape {tuple(x.shape)}")
    x = x.reshape(b, c // 4, 2, 2, h, w)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)


def check_glow_input(shape: tuple[int, ...] | torch.Size, levels: int) -> None:
    """Raise ValueError unless `shape` is (B, C, H, W) with H and W divisible by 2**levels
    (each level squeezes by 2)."""
    if len(shape) != 4:
        raise ValueError(f"Glow expects (B, C, H, W) inputs, got shape {tuple(shape)}")
    factor = 2**levels
    if shape[2] % factor or shape[3] % factor:
        raise ValueError(
            f"Glow with L={levels} levels needs H and W divisible by 2**L = {factor}, "
            f"got shape {tuple(shape)}"
        )


def gaussian_log_density(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Sum over all but the batch dimension of log N(z; mean, exp(log_std)^2), log_std clamped
    to [LOG_STD_MIN, LOG_STD_MAX]; shape (B,)."""
    log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    standardised = (z - mean) * torch.exp(-log_std)
    density = -0.5 * (LOG_2PI + standardised.pow(2)) - log_std
    return density.flatten(1).sum(1)


def _default_conv_init(conv: nn.Conv2d, generator: torch.Generator) -> None:
    """PyTorch's default Conv2d initialisation, U(+-1/sqrt(fan_in)) for weights and biases,
    drawn from `generator`."""
    bound = 1.0 / math.sqrt(conv.weight[0].numel())
    with torch.no_grad():
        conv.weight.uniform_(-bound, bound, generator=generator)
        if conv.bias is not None:
            conv.bias.uniform_(-bound, bound, generator=generator)


class ZeroConv2d(nn.Module):
    """3x3 convolution initialised to output zeros, times exp(3 * logs) per output channel
    (Glow's `conv2d_zeros`, used for the last layer of the coupling network and for priors)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * torch.exp(self.logs * ZERO_CONV_LOGSCALE_FACTOR)


class ActNorm(nn.Module):
    """Activation normalisation (Glow Sec. 3.1, Table 1): y = s * x + b per channel, with
    s = exp(log_scale); log|det| = H * W * sum(log|s|).

    On the first batch seen in training mode, s and b are set so that the output has zero mean
    and unit variance per channel over (B, H, W); afterwards they are ordinary parameters. The
    `initialized` buffer travels in the state_dict, so a loaded model is not re-initialised.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.log_scale.copy_(-torch.log(std + ACTNORM_EPS))
        self.bias.copy_(-mean * torch.exp(self.log_scale))
        self.initialized.fill_(True)

    def _log_det(self, x: Tensor) -> Tensor:
        return (x.shape[2] * x.shape[3] * self.log_scale.sum()).expand(x.shape[0])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self._initialize(x)
        return x * torch.exp(self.log_scale) + self.bias, self._log_det(x)

    def inverse(self, y: Tensor) -> Tensor:
        return (y - self.bias) * torch.exp(-self.log_scale)


class InvertibleConv1x1(nn.Module):
    """Invertible 1x1 convolution with the LU-decomposed weight of Glow Sec. 3.2:
    W = P L (U + diag(sign(s) * exp(log|s|))), P a fixed permutation, L unit lower triangular,
    U strictly upper triangular; log|det| = H * W * sum(log|s|) (Table 1).

    Initialised from a random orthogonal matrix (QR of a Gaussian matrix drawn from `generator`);
    P and sign(s) are fixed buffers. The inverse applies the inverse matrix of W.
    """

    def __init__(self, channels: int, generator: torch.Generator) -> None:
        super().__init__()
        gaussian = torch.randn(channels, channels, generator=generator, dtype=torch.float64)
        orthogonal, _ = torch.linalg.qr(gaussian)
        permutation, lower, upper = torch.linalg.lu(orthogonal)
        diagonal = torch.diagonal(upper)
        self.register_buffer("permutation", permutation.float())
        self.register_buffer("sign_s", torch.sign(diagonal).float())
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(diagonal.abs()).float())

    def weight(self) -> Tensor:
        """The (C, C) matrix W; only the strict triangles of `lower` and `upper` are used."""
        eye = torch.eye(self.log_s.shape[0], dtype=self.log_s.dtype, device=self.log_s.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.permutation @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        weight = self.weight()
        y = F.conv2d(x, weight.reshape(*weight.shape, 1, 1))
        log_det = (x.shape[2] * x.shape[3] * self.log_s.sum()).expand(x.shape[0])
        return y, log_det

    def inverse(self, y: Tensor) -> Tensor:
        inverse = torch.linalg.inv(self.weight())
        return F.conv2d(y, inverse.reshape(*inverse.shape, 1, 1))


class AffineCoupling(nn.Module):
    """Affine coupling layer (Glow Sec. 3.3, Table 1; RealNVP): x = (x_a, x_b) with x_a the first
    floor(C/2) channels; (shift, raw) = NN(x_a); y_b = scale * x_b + shift, y_a = x_a;
    log|det| = sum log(scale).

    NN is conv3x3 -> ReLU -> conv1x1 -> ReLU -> ZeroConv2d (3x3, zero-initialised), so a fresh
    coupling has shift 0 and raw 0. scale = sigmoid(raw + 2) for `scale="sigmoid"` (Glow's
    released code; a fresh layer multiplies x_b by sigmoid(2)), scale = exp(raw) for
    `scale="exp"` (Table 1; a fresh layer is exactly the identity).
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        generator: torch.Generator,
        scale: CouplingScale = "sigmoid",
    ) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"an affine coupling needs at least 2 channels, got {channels}")
        if scale not in ("sigmoid", "exp"):
            raise ValueError(f"coupling scale must be 'sigmoid' or 'exp', got {scale!r}")
        self.scale = scale
        self.conditioning_channels = channels // 2
        transformed = channels - self.conditioning_channels
        first = nn.Conv2d(self.conditioning_channels, hidden, kernel_size=3, padding=1)
        second = nn.Conv2d(hidden, hidden, kernel_size=1)
        _default_conv_init(first, generator)
        _default_conv_init(second, generator)
        self.net = nn.Sequential(
            first, nn.ReLU(), second, nn.ReLU(), ZeroConv2d(hidden, 2 * transformed)
        )

    def _shift_and_log_scale(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.net(x_a).chunk(2, dim=1)
        if self.scale == "sigmoid":
            return shift, F.logsigmoid(raw + SIGMOID_SHIFT)
        return shift, raw

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.conditioning_channels], x[:, self.conditioning_channels :]
        shift, log_scale = self._shift_and_log_scale(x_a)
        y_b = x_b * torch.exp(log_scale) + shift
        return torch.cat([x_a, y_b], dim=1), log_scale.flatten(1).sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        y_a, y_b = y[:, : self.conditioning_channels], y[:, self.conditioning_channels :]
        shift, log_scale = self._shift_and_log_scale(y_a)
        return torch.cat([y_a, (y_b - shift) * torch.exp(-log_scale)], dim=1)


class FlowStep(nn.Module):
    """One step of flow (Glow Fig. 2a): actnorm -> invertible 1x1 conv -> affine coupling."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        generator: torch.Generator,
        coupling_scale: CouplingScale = "sigmoid",
    ) -> None:
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.invconv = InvertibleConv1x1(channels, generator)
        self.coupling = AffineCoupling(channels, hidden, generator, coupling_scale)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x, log_det = self.actnorm(x)
        x, invconv_log_det = self.invconv(x)
        x, coupling_log_det = self.coupling(x)
        return x, log_det + invconv_log_det + coupling_log_det

    def inverse(self, y: Tensor) -> Tensor:
        return self.actnorm.inverse(self.invconv.inverse(self.coupling.inverse(y)))


class Glow(nn.Module):
    """Multi-scale Glow (Glow Sec. 3, Fig. 2b) of `levels` levels of `steps` flow steps on
    (B, in_channels, H, W) inputs, H and W divisible by 2**levels.

    `forward` gives the latents [z_1, ..., z_L] (the split-off halves of levels 1..L-1, then the
    last level's output) and log|det dz/dx| per sample; `log_prob` adds their prior
    log-densities (eq. 2). Every parameter is drawn from torch.Generator().manual_seed(seed).
    """

    def __init__(
        self,
        in_channels: int,
        steps: int,
        levels: int,
        hidden: int,
        seed: int = 0,
        coupling_scale: CouplingScale = "sigmoid",
    ) -> None:
        super().__init__()
        if steps < 1 or levels < 1:
            raise ValueError(f"Glow needs steps >= 1 and levels >= 1, got K={steps}, L={levels}")
        generator = torch.Generator().manual_seed(seed)
        self.levels = levels
        self.flows = nn.ModuleList()
        self.split_priors = nn.ModuleList()
        channels = in_channels
        for level in range(levels):
            channels *= 4
            self.flows.append(
                nn.ModuleList(
                    FlowStep(channels, hidden, generator, coupling_scale) for _ in range(steps)
                )
            )
            if level < levels - 1:
                kept = channels - channels // 2
                self.split_priors.append(ZeroConv2d(kept, 2 * (channels - kept)))
                channels = kept
        self.kept_channels = [prior.conv.in_channels for prior in self.split_priors]
        self.top_mean = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.top_log_std = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def _encode(self, x: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
        """Latents, log|det dz/dx| (B,) and log p_z(z) (B,)."""
        check_glow_input(x.shape, self.levels)
        log_det = x.new_zeros(x.shape[0])
        log_prior = x.new_zeros(x.shape[0])
        latents = []
        h = x
        for level, steps in enumerate(self.flows):
            h = squeeze(h)
            for step in steps:
                h, step_log_det = step(h)
                log_det = log_det + step_log_det
            if level < self.levels - 1:
                kept = self.kept_channels[level]
                h, split_off = h[:, :kept], h[:, kept:]
                mean, log_std = self.split_priors[level](h).chunk(2, dim=1)
                log_prior = log_prior + gaussian_log_density(split_off, mean, log_std)
                latents.append(split_off)
        latents.append(h)
        log_prior = log_prior + gaussian_log_density(h, self.top_mean, self.top_log_std)
        return latents, log_det, log_prior

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        latents, log_det, _ = self._encode(x)
        return latents, log_det

    def inverse(self, latents: list[Tensor]) -> Tensor:
        """x from the latents of `forward` (exact up to rounding)."""
        if len(latents) != self.levels:
            raise ValueError(f"Glow with L={self.levels} levels needs {self.levels} latents")
        h = latents[-1]
        for level in reversed(range(self.levels)):
            if level < self.levels - 1:
                h = torch.cat([h, latents[level]], dim=1)
            for step in reversed(self.flows[level]):
                h = step.inverse(h)
            h = unsqueeze(h)
        return h

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) in nats per sample (eq. 2): log p_z(z) + log|det dz/dx|; shape (B,)."""
        _, log_det, log_prior = self._encode(x)
        return log_prior + log_det

    def nll(self, x: Tensor) -> Tensor:
        """Negative log-likelihood in nats per sample, -log p(x) (eq. 5's NLL); shape (B,)."""
        return -self.log_prob(x)
