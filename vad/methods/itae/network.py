"""ITAE, the implicit two-path auto-encoder of Cho, Kim, Lee ("Unsupervised Video Anomaly
Detection via Flow-based Generative Modeling on Appearance and Motion Latent Features"):
an appearance (slow) and a motion (fast) 3D-convolutional encoder joined by SlowFast lateral
connections, and one decoder that reconstructs the clip from both final feature maps.

A clip is (B, C, T, H, W) in [0, 1]. The motion path sees all T frames, the appearance path the
frames 0, tau, 2 tau, ... (T / tau of them). Every convolution is "same"-padded, so only the
strides change sizes; each is followed by BatchNorm3d and ReLU, except the decoder's output
layer, whose sigmoid keeps reconstructions in [0, 1] like the inputs.

Lateral connections (SlowFast's time-strided convolution): after encoder layer i the motion
features pass through a Conv3d of kernel (5, 1, 1), temporal stride tau and temporal padding 2
(+ BatchNorm3d and ReLU, as SlowFast's fusion), which maps the motion path's T frames onto the
appearance path's T / tau; its output (`lateral_channels`, 2x the motion channels as SlowFast's
2 beta C) is concatenated channel-wise to the appearance features. After layers 1-3 the fused map
feeds the next appearance layer; after layer 4 the same fusion of the two final maps (appearance,
and motion brought to T / tau frames by the last lateral connection) is the decoder's input. The
encoder returns the two final maps unfused (Table 1's sizes); there are no encoder-decoder skip
connections, so the reconstruction depends on the clip only through those two maps.

Table 1 (input 3 x 16 x 256^2; kernel (temporal, spatial^2), stride (temporal, spatial^2);
output channel x time x spatial^2), as `ITAEConfig.paper` reads it:
  Conv1    app (1, 3^2) s(1, 2^2) -> 96 x 4 x 128^2    motion (5, 3^2) s(1, 2^2) -> 12 x 16 x 128^2
  Conv2    app (1, 3^2) s(1, 2^2) -> 128 x 4 x 64^2    motion (3, 3^2) s(1, 2^2) -> 16 x 16 x 64^2
  Conv3    app (3, 3^2) s(1, 2^2) -> 256 x 4 x 32^2    motion (3, 3^2) s(1, 2^2) -> 32 x 16 x 32^2
  Conv4    app (3, 3^2) s(1, 1^2) -> 256 x 4 x 32^2    motion (3, 3^2) s(1, 1^2) -> 32 x 16 x 32^2
  DeConv1  (3, 3^2) s(1, 1^2) -> 256 x 4 x 32^2
  DeConv2  (3, 3^2) s(2, 2^2) -> 128 x 8 x 64^2
  DeConv3  (3, 3^2) s(2, 2^2) -> 96 x 16 x 128^2
  DeConv4  (3, 3^2) s(1, 2^2) -> C x 16 x 256^2
Lateral channels 24, 32, 64, 64; appearance inputs C, 120, 160, 320; decoder input 256 + 64.

UCSD ("the original frame size (240x360) is inputted, the latent feature map is reduced to 1/4
times of inputs"): the same layers with Conv3's spatial stride 1 (encoder spatial strides
2, 2, 1, 1: latent 60 x 90) and the decoder's spatial strides mirrored to 1, 1, 2, 2 (DeConv1
s(1, 1^2), DeConv2 s(2, 1^2), DeConv3 s(2, 2^2), DeConv4 s(1, 2^2)): output 240 x 360.

Weights (the paper gives no initialisation) are drawn from a generator seeded by `seed`:
convolutions and transposed convolutions Kaiming-normal (ReLU gain, torch's fan-in of the weight
tensor), BatchNorm scales 1 and shifts 0, the output layer's bias 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

LATERAL_KERNEL = 5  # SlowFast's time-strided convolution: kernel (5, 1, 1)
LATERAL_CHANNEL_RATIO = 2  # lateral output channels per motion channel (SlowFast's 2 beta C)

# Table 1's kernels (temporal, spatial) per encoder layer; every decoder layer is (3, 3).
PAPER_APPEARANCE_KERNELS = ((1, 3), (1, 3), (3, 3), (3, 3))
PAPER_MOTION_KERNELS = ((5, 3), (3, 3), (3, 3), (3, 3))
DECODER_KERNEL = (3, 3)
# Table 1's spatial strides of the encoder layers and (temporal, spatial) strides of the
# decoder layers, and the UCSD variant's (module docstring).
ENCODER_STRIDES = (2, 2, 2, 1)
DECODER_STRIDES = ((1, 1), (2, 2), (2, 2), (1, 2))
UCSD_ENCODER_STRIDES = (2, 2, 1, 1)
UCSD_DECODER_STRIDES = ((1, 1), (2, 1), (2, 2), (1, 2))


@dataclass(frozen=True)
class EncoderLayer:
    """One layer of both encoder paths and the lateral connection after it. Kernels are
    (temporal, spatial) sizes; both paths share the spatial stride and have temporal stride 1."""

    appearance_channels: int
    motion_channels: int
    appearance_kernel: tuple[int, int]
    motion_kernel: tuple[int, int]
    spatial_stride: int
    lateral_channels: int


@dataclass(frozen=True)
class DecoderLayer:
    """One transposed convolution: output channels, kernel and stride as (temporal, spatial)."""

    channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]


def _slowfast_encoder(
    appearance_channels: tuple[int, ...],
    motion_channels: tuple[int, ...],
    spatial_strides: tuple[int, ...],
) -> tuple[EncoderLayer, ...]:
    return tuple(
        EncoderLayer(app, mot, app_kernel, mot_kernel, stride, LATERAL_CHANNEL_RATIO * mot)
        for app, mot, app_kernel, mot_kernel, stride in zip(
            appearance_channels,
            motion_channels,
            PAPER_APPEARANCE_KERNELS,
            PAPER_MOTION_KERNELS,
            spatial_strides,
            strict=True,
        )
    )


def _decoder(
    channels: tuple[int, ...], strides: tuple[tuple[int, int], ...]
) -> tuple[DecoderLayer, ...]:
    return tuple(
        DecoderLayer(out, DECODER_KERNEL, stride)
        for out, stride in zip(channels, strides, strict=True)
    )


@dataclass(frozen=True)
class ITAEConfig:
    """Everything ITAE's architecture needs. `frame_size` is the (H, W) frames are resized to
    for this configuration; the network itself accepts any H, W divisible by `spatial_stride`.
    The last decoder layer outputs the `channels` of the input (1 gray, 3 RGB)."""

    channels: int
    frame_size: tuple[int, int]
    encoder: tuple[EncoderLayer, ...]
    decoder: tuple[DecoderLayer, ...]
    clip_length: int = 16  # T
    tau: int = 4  # the appearance path sees every tau-th frame

    def __post_init__(self) -> None:
        if self.channels < 1 or not self.encoder or not self.decoder:
            raise ValueError("ITAEConfig needs channels >= 1, encoder and decoder layers")
        if self.clip_length % self.tau:
            raise ValueError(f"clip_length {self.clip_length} is not a multiple of tau {self.tau}")
        kernels = [
            k for layer in self.encoder for k in (layer.appearance_kernel, layer.motion_kernel)
        ]
        kernels += [layer.kernel for layer in self.decoder]
        if any(size % 2 == 0 for kernel in kernels for size in kernel):
            raise ValueError(f"kernel sizes must be odd for 'same' padding: {kernels}")
        if self.decoder[-1].channels != self.channels:
            raise ValueError(
                f"the last decoder layer outputs {self.decoder[-1].channels} channels, "
                f"the input has {self.channels}"
            )
        temporal_upsampling = math.prod(layer.stride[0] for layer in self.decoder)
        if temporal_upsampling != self.tau:
            raise ValueError(
                f"decoder temporal strides multiply to {temporal_upsampling}, not tau {self.tau}"
            )
        spatial_upsampling = math.prod(layer.stride[1] for layer in self.decoder)
        if spatial_upsampling != self.spatial_stride:
            raise ValueError(
                f"decoder spatial strides multiply to {spatial_upsampling}, "
                f"the encoder's to {self.spatial_stride}"
            )
        if any(size % self.spatial_stride for size in self.frame_size):
            raise ValueError(
                f"frame_size {self.frame_size} is not divisible by the spatial stride "
                f"{self.spatial_stride}"
            )

    @property
    def spatial_stride(self) -> int:
        """The encoder's total spatial downsampling (latent side = frame side / this)."""
        return math.prod(layer.spatial_stride for layer in self.encoder)

    @property
    def appearance_frames(self) -> int:
        return self.clip_length // self.tau

    @property
    def latent_size(self) -> tuple[int, int]:
        """The final maps' (h, w) for frames of `frame_size`."""
        return (
            self.frame_size[0] // self.spatial_stride,
            self.frame_size[1] // self.spatial_stride,
        )

    @classmethod
    def paper(cls, channels: int, ucsd: bool = False) -> ITAEConfig:
        """Table 1 at 256 x 256, or with `ucsd` the 240 x 360 variant whose latent is 1/4 of the
        input (module docstring)."""
        return cls(
            channels=channels,
            frame_size=(240, 360) if ucsd else (256, 256),
            encoder=_slowfast_encoder(
                (96, 128, 256, 256),
                (12, 16, 32, 32),
                UCSD_ENCODER_STRIDES if ucsd else ENCODER_STRIDES,
            ),
            decoder=_decoder(
                (256, 128, 96, channels), UCSD_DECODER_STRIDES if ucsd else DECODER_STRIDES
            ),
        )

    @classmethod
    def cpu(cls, channels: int, ucsd: bool = False) -> ITAEConfig:
        """A small configuration for CPU training: Table 1's kernels and strides with appearance
        channels 16/24/32/32, motion 4/4/8/8 (laterals 8/8/16/16), decoder 32/24/16/C, at
        128 x 128 (latent 16 x 16); with `ucsd`, the UCSD strides at 120 x 180, half the
        original frame (latent 30 x 45). 153k parameters. One Adam step on a batch of 2 clips
        took about 0.25 s (gray or RGB, 128 x 128) and 0.65-0.9 s (gray 120 x 180, MS-SSIM in
        the loss) on one thread of a loaded 2-core machine."""
        return cls(
            channels=channels,
            frame_size=(120, 180) if ucsd else (128, 128),
            encoder=_slowfast_encoder(
                (16, 24, 32, 32),
                (4, 4, 8, 8),
                UCSD_ENCODER_STRIDES if ucsd else ENCODER_STRIDES,
            ),
            decoder=_decoder(
                (32, 24, 16, channels), UCSD_DECODER_STRIDES if ucsd else DECODER_STRIDES
            ),
        )


class ITAEOutput(NamedTuple):
    reconstruction: Tensor  # (B, C, T, H, W) in [0, 1]
    appearance: Tensor  # the appearance path's final map, (B, Ca, T / tau, h, w)
    motion: Tensor  # the motion path's final map, (B, Cm, T, h, w)


def _conv_block(
    in_channels: int, out_channels: int, kernel: tuple[int, int, int], stride: tuple[int, int, int]
) -> nn.Sequential:
    padding = tuple(size // 2 for size in kernel)
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel, stride, padding, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(),
    )


def _deconv_block(in_channels: int, layer: DecoderLayer, output: bool) -> nn.Sequential:
    temporal_kernel, spatial_kernel = layer.kernel
    temporal_stride, spatial_stride = layer.stride
    deconv = nn.ConvTranspose3d(
        in_channels,
        layer.channels,
        (temporal_kernel, spatial_kernel, spatial_kernel),
        (temporal_stride, spatial_stride, spatial_stride),
        padding=(temporal_kernel // 2, spatial_kernel // 2, spatial_kernel // 2),
        output_padding=(temporal_stride - 1, spatial_stride - 1, spatial_stride - 1),
        bias=output,
    )
    if output:
        return nn.Sequential(deconv, nn.Sigmoid())
    return nn.Sequential(deconv, nn.BatchNorm3d(layer.channels), nn.ReLU())


class TwoPathEncoder(nn.Module):
    """The appearance and motion paths with a lateral connection after every layer; `forward`
    returns the two final maps, `fuse` concatenates lateral connection i's output to an
    appearance map."""

    def __init__(self, config: ITAEConfig) -> None:
        super().__init__()
        self.tau = config.tau
        self.appearance = nn.ModuleList()
        self.motion = nn.ModuleList()
        self.laterals = nn.ModuleList()
        appearance_in = motion_in = config.channels
        for layer in config.encoder:
            stride = (1, layer.spatial_stride, layer.spatial_stride)
            kt, ks = layer.appearance_kernel
            self.appearance.append(
                _conv_block(appearance_in, layer.appearance_channels, (kt, ks, ks), stride)
            )
            kt, ks = layer.motion_kernel
            self.motion.append(_conv_block(motion_in, layer.motion_channels, (kt, ks, ks), stride))
            self.laterals.append(
                _conv_block(
                    layer.motion_channels,
                    layer.lateral_channels,
                    (LATERAL_KERNEL, 1, 1),
                    (config.tau, 1, 1),
                )
            )
            appearance_in = layer.appearance_channels + layer.lateral_channels
            motion_in = layer.motion_channels

    @property
    def lateral_temporal_stride(self) -> int:
        """The lateral connections' temporal stride (all equal; tau by construction)."""
        strides = {lateral[0].stride[0] for lateral in self.laterals}
        (stride,) = strides
        return stride

    def fuse(self, index: int, appearance: Tensor, motion: Tensor) -> Tensor:
        return torch.cat([appearance, self.laterals[index](motion)], dim=1)

    def forward(self, clip: Tensor) -> tuple[Tensor, Tensor]:
        appearance, motion = clip[:, :, :: self.tau], clip
        last = len(self.appearance) - 1
        for index, (appearance_layer, motion_layer) in enumerate(
            zip(self.appearance, self.motion, strict=True)
        ):
            appearance, motion = appearance_layer(appearance), motion_layer(motion)
            if index < last:
                appearance = self.fuse(index, appearance, motion)
        return appearance, motion


class Decoder(nn.Module):
    """Transposed convolutions from the fused final map back to a (B, C, T, H, W) clip."""

    def __init__(self, config: ITAEConfig) -> None:
        super().__init__()
        last = config.encoder[-1]
        in_channels = last.appearance_channels + last.lateral_channels
        blocks = []
        for index, layer in enumerate(config.decoder):
            blocks.append(
                _deconv_block(in_channels, layer, output=index == len(config.decoder) - 1)
            )
            in_channels = layer.channels
        self.layers = nn.ModuleList(blocks)

    def forward(self, features: Tensor) -> Tensor:
        for layer in self.layers:
            features = layer(features)
        return features


class ITAE(nn.Module):
    """The two-path encoder and the decoder (module docstring)."""

    def __init__(self, config: ITAEConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.encoder = TwoPathEncoder(config)
        self.decoder = Decoder(config)
        _initialize(self, seed)

    @property
    def lateral_temporal_stride(self) -> int:
        return self.encoder.lateral_temporal_stride

    def decode(self, appearance: Tensor, motion: Tensor) -> Tensor:
        """Reconstruct a clip from the two final maps: the last lateral connection brings the
        motion map to the appearance path's T / tau frames for the channel-wise concatenation."""
        return self.decoder(self.encoder.fuse(len(self.encoder.laterals) - 1, appearance, motion))

    def forward(self, clip: Tensor) -> ITAEOutput:
        self._check(clip)
        appearance, motion = self.encoder(clip)
        return ITAEOutput(self.decode(appearance, motion), appearance, motion)

    def _check(self, clip: Tensor) -> None:
        config = self.config
        stride = config.spatial_stride
        if (
            clip.dim() != 5
            or clip.shape[1] != config.channels
            or clip.shape[2] != config.clip_length
            or clip.shape[3] % stride
            or clip.shape[4] % stride
        ):
            raise ValueError(
                f"clip of shape {tuple(clip.shape)}: expected (B, {config.channels}, "
                f"{config.clip_length}, H, W) with H and W divisible by {stride}"
            )


@torch.no_grad()
def _initialize(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm3d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
