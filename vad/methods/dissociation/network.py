"""The two streams of Chang et al. 2022 ("Video anomaly detection with spatio-temporal
dissociation", Sec. 3.2-3.4, Figs. 2 and 4): a spatial auto-encoder that reconstructs the first
frame of a clip (FIF) and a U-Net motion auto-encoder that, from all frames but the last (LIF),
generates the RGB difference LIF - FIF; FIF reconstruction + difference predicts the LIF.

A clip is (B, C, T, H, W) in [0, 1] with T = input_frames + 1 and H, W multiples of 8. Every
convolution is "same"-padded; only the blocks change sizes.

- Encoder block (ResNet [41]): 3x3 conv of stride 2 -> LeakyReLU -> 3x3 conv, plus a 1x1
  stride-2 conv shortcut, summed, LeakyReLU. No batchnorm inside a block.
- Decoder block: the same with the stride replaced by pixel shuffle [44]: 3x3 conv to 4 x out
  channels -> PixelShuffle(2) -> LeakyReLU -> 3x3 conv, shortcut 1x1 conv to 4 x out channels
  -> PixelShuffle(2), summed, LeakyReLU.
- Spatial auto-encoder (Sec. 3.2, Fig. 2): 3 encoder blocks (widths[0], widths[1], widths[2];
  H/2, H/4, H/8), each followed by BatchNorm2d ("attach the batchnorm layer after the block");
  3 decoder blocks (widths[1], widths[0], widths[0]; H/4, H/2, H), BatchNorm2d after the first
  two; a linear 3x3 output conv to C channels. Fig. 2's 64x64x128, 32x32x256, 64x64x128 at a
  256 x 256 input are the paper preset's second encoder block, bottleneck and first decoder block.
- Motion auto-encoder (Sec. 3.3, Fig. 4; U-Net [48]): input the input_frames frames stacked
  frame-major along channels (channel t C + c is frame t's channel c); the same 3 encoder blocks,
  each followed by a variance attention (Sec. 3.4) when `attention` is set; decoder block 1 takes
  the bottleneck z_m, blocks 2 and 3 the channel concatenation of the previous decoder output and
  the (attended) output of encoder block 2, then 1; a linear 3x3 output conv to C channels. No
  batchnorm anywhere.
- Variance attention (eqs. 7-9): f = 1x1 conv of z; v = population variance of f over the D
  channels at each location; att = softmax over the H x W locations of v divided by its
  maximum over the map (the division is ours: `VarianceAttention`).

Choices of ours that the paper does not state:
- the attention map is applied as z * att * (H W): the rescaling makes a uniform map the
  identity (the paper does not say how the map is applied); the variance is divided by its
  maximum over the map before eq. 9's softmax (without it the maps are one-hot at
  initialisation);
- the skip connections carry the encoder blocks' attended outputs (the attention is part of E_m);
- the last decoder block of both auto-encoders has widths[0] channels, and both output convs are
  3x3 and linear (no activation: the difference can be negative);
- every convolution has a bias; the LeakyReLU slope is 0.2.

Weights (the paper gives no initialisation) are drawn from a generator seeded by `seed`:
convolutions Kaiming-normal with the LeakyReLU gain (torch's fan-in), biases 0, BatchNorm scales
1 and shifts 0; the last convolution of every residual branch and both output convolutions are
zero (`zero_last_layers`), so untrained blocks are their shortcuts and the outputs start at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

BLOCKS = 3
DOWNSAMPLING = 2**BLOCKS  # each encoder block halves H and W
PIXEL_SHUFFLE = 2
VARIANCE_EPSILON = 1e-6  # v' = v / (max v + eps): a map of equal features stays uniform


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of both auto-encoders. `widths` are the channels after each of the 3 encoder blocks;
    `input_frames` the frames stacked into the motion encoder (the clip has one more, the LIF)."""

    image_channels: int  # 1 gray, 3 RGB
    input_frames: int
    widths: tuple[int, int, int]
    attention: bool  # variance attention after each motion encoder block
    negative_slope: float = 0.2  # LeakyReLU

    def __post_init__(self) -> None:
        if self.image_channels not in (1, 3):
            raise ValueError(
                f"image_channels must be 1 (gray) or 3 (RGB), not {self.image_channels}"
            )
        if self.input_frames < 1:
            raise ValueError(f"input_frames must be at least 1, not {self.input_frames}")
        if len(self.widths) != BLOCKS or any(width < 1 for width in self.widths):
            raise ValueError(f"widths must be {BLOCKS} positive channel counts, not {self.widths}")
        if not 0 <= self.negative_slope < 1:
            raise ValueError(f"negative_slope must be in [0, 1), not {self.negative_slope}")

    @property
    def clip_length(self) -> int:
        """T: the motion encoder's frames and the LIF."""
        return self.input_frames + 1

    @classmethod
    def paper(cls, image_channels: int, attention: bool = True) -> NetworkConfig:
        """Figs. 2 and 4: widths 64, 128, 256 (bottleneck 256 channels at 1/8 of the input),
        4 stacked frames."""
        return cls(image_channels, input_frames=4, widths=(64, 128, 256), attention=attention)

    @classmethod
    def cpu(cls, image_channels: int, attention: bool = True) -> NetworkConfig:
        """A small configuration for CPU training: widths 16, 32, 64, 4 stacked frames."""
        return cls(image_channels, input_frames=4, widths=(16, 32, 64), attention=attention)


class DissociationOutput(NamedTuple):
    fif_reconstruction: Tensor  # (B, C, H, W), eq. 2
    difference: Tensor  # the generated RGB difference LIF - FIF, (B, C, H, W), eq. 5
    lif_prediction: Tensor  # fif_reconstruction + difference
    appearance: Tensor  # z_a, (B, widths[2], H / 8, W / 8), eq. 1
    motion: Tensor  # z_m, (B, widths[2], H / 8, W / 8), eq. 4


class ClipTargets(NamedTuple):
    fif: Tensor  # the first frame, (B, C, H, W)
    difference: Tensor  # LIF - FIF
    lif: Tensor  # the last frame


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride, padding=1)


class EncoderBlock(nn.Module):
    """ResNet block halving H and W: conv3x3/2 -> LeakyReLU -> conv3x3, plus a 1x1/2 shortcut,
    summed, LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            _conv3x3(in_channels, out_channels, stride=2),
            nn.LeakyReLU(negative_slope),
            _conv3x3(out_channels, out_channels),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2)
        self.activation = nn.LeakyReLU(negative_slope)

    def forward(self, features: Tensor) -> Tensor:
        return self.activation(self.residual(features) + self.shortcut(features))


class DecoderBlock(nn.Module):
    """ResNet block doubling H and W by pixel shuffle: conv3x3 to 4 out channels -> PixelShuffle
    -> LeakyReLU -> conv3x3, plus a 1x1 conv + PixelShuffle shortcut, summed, LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float) -> None:
        super().__init__()
        expanded = out_channels * PIXEL_SHUFFLE**2
        self.residual = nn.Sequential(
            _conv3x3(in_channels, expanded),
            nn.PixelShuffle(PIXEL_SHUFFLE),
            nn.LeakyReLU(negative_slope),
            _conv3x3(out_channels, out_channels),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, expanded, 1), nn.PixelShuffle(PIXEL_SHUFFLE)
        )
        self.activation = nn.LeakyReLU(negative_slope)

    def forward(self, features: Tensor) -> Tensor:
        return self.activation(self.residual(features) + self.shortcut(features))


class VarianceAttention(nn.Module):
    """Sec. 3.4: f = W * z, a 1x1 conv (eq. 7); v(h, w) = (1/D) sum_d (f(h, w, d) - mean_d f)^2,
    the population variance over the D channels (eq. 8); att = exp(v') / sum_{h, w} exp(v'), a
    softmax over the H x W locations (eq. 9), of v' = v / (max_{h, w} v + eps), the variance
    relative to its largest value over the map. `forward` returns z * att * (H W).

    Ours, not the paper's: the paper does not say how the map is applied; the rescaling by H W
    makes a uniform map leave z unchanged. And eq. 9 of the raw variance depends on the
    features' scale: at initialisation the maps of blocks 2 and 3 were one-hot (one location
    multiplied by H W, the rest by ~0) and the motion output reached ~2000 for inputs in
    [0, 1] (dividing by the mean instead still left them near one-hot where one location holds
    most of the variance); v' in [0, 1] is scale-free and bounds the ratio of any two weights
    by e, so the most varying location gets at most e times the weight of a static one."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.embedding = nn.Conv2d(channels, channels, 1)

    def attention_map(self, features: Tensor) -> Tensor:
        """att, (B, 1, H, W); it sums to 1 over each map's locations."""
        embedded = self.embedding(features)
        variance = embedded.var(dim=1, unbiased=False)  # (B, H, W), eq. 8
        batch, height, width = variance.shape
        relative = variance.flatten(1)
        relative = relative / (relative.amax(dim=1, keepdim=True) + VARIANCE_EPSILON)
        return torch.softmax(relative, dim=1).view(batch, 1, height, width)

    def forward(self, features: Tensor) -> Tensor:
        locations = features.shape[-2] * features.shape[-1]
        return features * self.attention_map(features) * locations


def _check_frames(frames: Tensor, channels: int, what: str) -> None:
    if (
        frames.dim() != 4
        or frames.shape[1] != channels
        or frames.shape[2] % DOWNSAMPLING
        or frames.shape[3] % DOWNSAMPLING
    ):
        raise ValueError(
            f"{what} of shape {tuple(frames.shape)}: expected (B, {channels}, H, W) with H and W "
            f"multiples of {DOWNSAMPLING}"
        )


class SpatialAutoencoder(nn.Module):
    """E_a and D_a (eqs. 1-2, Fig. 2): a (B, C, H, W) frame to z_a, (B, widths[2], H/8, W/8),
    and back to a (B, C, H, W) reconstruction."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.image_channels = config.image_channels
        slope = config.negative_slope
        encoder: list[nn.Module] = []
        in_channels = config.image_channels
        for width in config.widths:
            encoder += [EncoderBlock(in_channels, width, slope), nn.BatchNorm2d(width)]
            in_channels = width
        self.encoder = nn.Sequential(*encoder)
        decoder_widths = (config.widths[1], config.widths[0], config.widths[0])
        decoder: list[nn.Module] = []
        for index, width in enumerate(decoder_widths):
            decoder.append(DecoderBlock(in_channels, width, slope))
            if index < len(decoder_widths) - 1:
                decoder.append(nn.BatchNorm2d(width))
            in_channels = width
        decoder.append(_conv3x3(in_channels, config.image_channels))
        self.decoder = nn.Sequential(*decoder)

    def encode(self, frame: Tensor) -> Tensor:
        _check_frames(frame, self.image_channels, "frame")
        return self.encoder(frame)

    def forward(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        """(z_a, reconstruction)."""
        appearance = self.encode(frame)
        return appearance, self.decoder(appearance)


class MotionAutoencoder(nn.Module):
    """E_m and D_m (eqs. 4-5, Fig. 4): a U-Net from the (B, input_frames C, H, W) stack to z_m,
    (B, widths[2], H/8, W/8), and the generated RGB difference (B, C, H, W)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.input_channels = config.input_frames * config.image_channels
        slope = config.negative_slope
        w0, w1, w2 = config.widths
        self.encoder = nn.ModuleList()
        self.attention = nn.ModuleList()
        in_channels = self.input_channels
        for width in config.widths:
            self.encoder.append(EncoderBlock(in_channels, width, slope))
            self.attention.append(VarianceAttention(width) if config.attention else nn.Identity())
            in_channels = width
        # block 1 from the bottleneck; blocks 2 and 3 also see encoder blocks 2 and 1 (skips)
        self.decoder = nn.ModuleList(
            [
                DecoderBlock(w2, w1, slope),
                DecoderBlock(w1 + w1, w0, slope),
                DecoderBlock(w0 + w0, w0, slope),
            ]
        )
        self.output = _conv3x3(w0, config.image_channels)

    def encode(self, stack: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(z_m, skips): skips are the outputs of encoder blocks 1 and 2 (H/2, H/4)."""
        _check_frames(stack, self.input_channels, "frame stack")
        outputs = []
        features = stack
        for block, attention in zip(self.encoder, self.attention, strict=True):
            features = attention(block(features))
            outputs.append(features)
        first, second, bottleneck = outputs
        return bottleneck, (first, second)

    def decode(self, motion: Tensor, skips: tuple[Tensor, Tensor]) -> Tensor:
        """The generated difference from z_m and the encoder's skips (as `encode` returns them)."""
        first, second = skips
        features = self.decoder[0](motion)
        features = self.decoder[1](torch.cat([features, second], dim=1))
        features = self.decoder[2](torch.cat([features, first], dim=1))
        return self.output(features)

    def forward(self, stack: Tensor) -> tuple[Tensor, Tensor]:
        """(z_m, difference)."""
        motion, skips = self.encode(stack)
        return motion, self.decode(motion, skips)

    def attention_maps(self, stack: Tensor) -> list[Tensor]:
        """Each encoder block's attention map, (B, 1, H/2^i, W/2^i); empty without attention."""
        _check_frames(stack, self.input_channels, "frame stack")
        maps = []
        features = stack
        for block, attention in zip(self.encoder, self.attention, strict=True):
            features = block(features)
            if isinstance(attention, VarianceAttention):
                maps.append(attention.attention_map(features))
            features = attention(features)
        return maps


class Dissociation(nn.Module):
    """Both auto-encoders (module docstring); the representation of the deep K-means (Sec. 3.5)
    is the channel concatenation of z_a and z_m."""

    def __init__(self, config: NetworkConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.spatial = SpatialAutoencoder(config)
        self.motion = MotionAutoencoder(config)
        initialize_weights(self, seed, config.negative_slope)

    @property
    def representation_channels(self) -> int:
        """Channels of [z_a, z_m]."""
        return 2 * self.config.widths[-1]

    @property
    def downsampling(self) -> int:
        """Frame side / representation side."""
        return DOWNSAMPLING

    def forward(self, clip: Tensor) -> DissociationOutput:
        self._check(clip)
        fif = clip[:, :, 0]
        batch, channels, _, height, width = clip.shape
        # all frames but the LIF, frame-major along channels: channel t C + c is frame t's c
        stack = clip[:, :, :-1].transpose(1, 2).reshape(batch, -1, height, width)
        appearance, fif_reconstruction = self.spatial(fif)
        motion, difference = self.motion(stack)
        return DissociationOutput(
            fif_reconstruction, difference, fif_reconstruction + difference, appearance, motion
        )

    def targets(self, clip: Tensor) -> ClipTargets:
        """(FIF, LIF - FIF, LIF): the targets of eqs. 3 and 6 and of the LIF prediction."""
        self._check(clip)
        fif, lif = clip[:, :, 0], clip[:, :, -1]
        return ClipTargets(fif, lif - fif, lif)

    def _check(self, clip: Tensor) -> None:
        config = self.config
        if (
            clip.dim() != 5
            or clip.shape[1] != config.image_channels
            or clip.shape[2] != config.clip_length
            or clip.shape[3] % DOWNSAMPLING
            or clip.shape[4] % DOWNSAMPLING
        ):
            raise ValueError(
                f"clip of shape {tuple(clip.shape)}: expected (B, {config.image_channels}, "
                f"{config.clip_length}, H, W) with H and W multiples of {DOWNSAMPLING}"
            )


@torch.no_grad()
def initialize_weights(model: nn.Module, seed: int, negative_slope: float) -> None:
    """Every convolution Kaiming-normal (LeakyReLU gain, fan-in) from a generator seeded by
    `seed`, biases 0; BatchNorm scales 1, shifts 0; then the last convolution of every residual
    branch and the output convolutions zero (`zero_last_layers`)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(
                module.weight, a=negative_slope, nonlinearity="leaky_relu", generator=generator
            )
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    zero_last_layers(model)


@torch.no_grad()
def zero_last_layers(model: nn.Module) -> None:
    """Zero the last convolution of every block's residual branch, so that a block starts as its
    shortcut (Goyal et al. 2017's zero-initialised residuals), and the auto-encoders' output
    convolutions, so that training starts from a black reconstruction and no difference.
    With Kaiming weights throughout, the sums of the blocks doubled the variance at every block
    and the untrained outputs were about 3 in magnitude for frames in [0, 1] (losses of 10-30,
    slow to come down at Adam's 1e-4)."""
    for module in model.modules():
        if isinstance(module, (EncoderBlock, DecoderBlock)):
            nn.init.zeros_(module.residual[-1].weight)
        elif isinstance(module, SpatialAutoencoder):
            nn.init.zeros_(module.decoder[-1].weight)
        elif isinstance(module, MotionAutoencoder):
            nn.init.zeros_(module.output.weight)
