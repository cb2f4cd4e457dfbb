"""ML-MemAE-SC: Multi-Level Memory-augmented Autoencoder with Skip Connections, HF2-VAD's flow
reconstruction network (Liu et al. ICCV 2021, Sec. 3.1, Fig. 3 (c), Fig. 4 (f), Fig. 8).

Four levels (Appendix A: 32x32x32, 16x16x64, 8x8x128, 4x4x256 for a 32x32 input). Encoder: per
level two convolution blocks (3x3 conv, batch-norm, ReLU), levels joined by stride-2 3x3
convolutions. Decoder, from the bottleneck up: the bottleneck goes through a memory; then per
level a stride-2 3x3 deconvolution, the encoder's feature map of that level concatenated (the
skip connection), two convolution blocks and that level's memory (Sec. 3.1: "we first copy the
feature map from the encoder and then concatenate it with the upsampled feature maps of the lower
level. The concatenation then sequentially passes through two convolution blocks, a memory
module"). Skip connections come only with memories, and never at the outermost level (Fig. 3 (c):
it would let the reconstruction bypass every memory). A 1x1 convolution gives the flows back,
with no output activation (flows are signed).

Memories (`memory_levels`, counted from the input: 0 = 32 px, ..., 3 = bottleneck): the paper
uses 3 (levels 1, 2, 3) for Ped2 and Avenue, 2 for ShanghaiTech, 2,000 slots each. A query is,
as in the released code (LiUzHiAn/hf2vad, models/ml_memAE_sc.py), a sample's whole flattened
feature map of that level (`addressing="map"`, slots of C*H*W values), or each spatial position
as in MemAE (`addressing="position"`, slots of C values).

The released code reconstructs one flow (2 channels) at a time and applies the network to each
of the t = 4 flows of a cube separately (models/mem_cvae.py); `num_flows` flows stacked along
channels are one input here, and `reconstruct_cube` folds a cube's flows into the batch.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from vad.methods.hf2vad.initialization import initialize
from vad.methods.hf2vad.memory import Memory, Similarity

Addressing = Literal["map", "position"]


class MemAEOutput(NamedTuple):
    reconstruction: Tensor  # same shape as the input
    weights: list[Tensor]  # per memory, bottleneck first: (queries, num_slots) addressing weights


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Sec. 3.1's convolution block: 3x3 convolution, batch-normalisation, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def double_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two convolution blocks (each level of encoder and decoder, Sec. 3.1)."""
    return nn.Sequential(
        conv_block(in_channels, out_channels), conv_block(out_channels, out_channels)
    )


class MLMemAESC(nn.Module):
    """Flow auto-encoder with memories at `memory_levels`, each paired with a skip connection."""

    def __init__(
        self,
        flow_channels: int = 2,
        num_flows: int = 1,
        input_size: int = 32,
        channels: tuple[int, ...] = (32, 64, 128, 256),
        memory_levels: tuple[int, ...] = (1, 2, 3),
        num_slots: int = 2000,
        shrink_threshold: float = 1.0 / 2000,
        similarity: Similarity = "dot",
        addressing: Addressing = "map",
        seed: int = 0,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        memory_levels = tuple(sorted({int(level) for level in memory_levels}))
        depth = len(channels)
        if flow_channels < 1 or num_flows < 1:
            raise ValueError("MLMemAESC needs flow_channels, num_flows >= 1")
        if depth < 2 or min(channels) < 1:
            raise ValueError(f"MLMemAESC channels needs >= 2 positive levels; got {channels}")
        if input_size < 1 or input_size % 2 ** (depth - 1):
            raise ValueError(
                f"MLMemAESC input_size {input_size} must be divisible by 2**(levels - 1) = "
                f"{2 ** (depth - 1)}"
            )
        if not memory_levels or memory_levels[0] < 1 or memory_levels[-1] > depth - 1:
            raise ValueError(
                f"MLMemAESC memory_levels must be non-empty, within 1..{depth - 1} (level 0 "
                f"would need the outermost skip connection, Fig. 3 (c)); got {memory_levels}"
            )
        if addressing not in ("map", "position"):
            raise ValueError(
                f"MLMemAESC addressing must be 'map' or 'position'; got {addressing!r}"
            )
        self.flow_channels = flow_channels
        self.num_flows = num_flows
        self.input_size = input_size
        self.channels = channels
        self.memory_levels = memory_levels
        self.num_slots = num_slots
        self.shrink_threshold = float(shrink_threshold)
        self.similarity = similarity
        self.addressing = addressing
        self.seed = seed
        # Skip connections are paired with the decoder's memories; the bottleneck has none.
        self.skip_levels = tuple(level for level in memory_levels if level < depth - 1)

        in_channels = flow_channels * num_flows
        self.encoder = nn.ModuleList([double_block(in_channels, channels[0])])
        for level in range(1, depth):
            self.encoder.append(
                nn.Sequential(
                    nn.Conv2d(channels[level - 1], channels[level], 3, stride=2, padding=1),
                    double_block(channels[level], channels[level]),
                )
            )
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(
                channels[i + 1], channels[i], 3, stride=2, padding=1, output_padding=1
            )
            for i in range(depth - 1)
        )
        self.fuse = nn.ModuleList(
            double_block(channels[i] * (2 if i in self.skip_levels else 1), channels[i])
            for i in range(depth - 1)
        )
        self.memories = nn.ModuleDict(
            {
                str(level): Memory(
                    num_slots,
                    self._slot_dim(level),
                    shrink_threshold,
                    similarity,
                )
                for level in memory_levels
            }
        )
        self.head = nn.Conv2d(channels[0], in_channels, 1)
        initialize(self, seed)

    def _slot_dim(self, level: int) -> int:
        side = self.input_size // 2**level
        return self.channels[level] * (side * side if self.addressing == "map" else 1)

    @property
    def config(self) -> dict:
        """The constructor arguments (to store with the weights)."""
        return {
            "flow_channels": self.flow_channels,
            "num_flows": self.num_flows,
            "input_size": self.input_size,
            "channels": list(self.channels),
            "memory_levels": list(self.memory_levels),
            "num_slots": self.num_slots,
            "shrink_threshold": self.shrink_threshold,
            "similarity": self.similarity,
            "addressing": self.addressing,
            "seed": self.seed,
        }

    def _remember(self, level: int, h: Tensor, weights: list[Tensor]) -> Tensor:
        """Replace h (B, C, H, W) by its memory read-out; keep the addressing weights."""
        memory = self.memories[str(level)]
        b, c, height, width = h.shape
        if self.addressing == "map":
            read = memory(h.reshape(b, c * height * width))
            out = read.read.reshape(b, c, height, width)
        else:
            read = memory(h.permute(0, 2, 3, 1).reshape(b * height * width, c))
            out = read.read.reshape(b, height, width, c).permute(0, 3, 1, 2)
        weights.append(read.weights)
        return out

    def forward(self, flows: Tensor) -> MemAEOutput:
        """flows (B, num_flows * flow_channels, S, S) -> reconstruction and addressing weights."""
        expected = (self.flow_channels * self.num_flows, self.input_size, self.input_size)
        if flows.dim() != 4 or tuple(flows.shape[1:]) != expected:
            raise ValueError(
                f"MLMemAESC expects flows of shape (B, {expected[0]}, {expected[1]}, "
                f"{expected[2]}); got {tuple(flows.shape)}"
            )
        features = []
        h = flows
        for stage in self.encoder:
            h = stage(h)
            features.append(h)
        weights: list[Tensor] = []
        bottleneck = len(self.channels) - 1
        if bottleneck in self.memory_levels:
            h = self._remember(bottleneck, h, weights)
        for level in reversed(range(bottleneck)):
            h = self.ups[level](h)
            if level in self.skip_levels:
                h = torch.cat([features[level], h], dim=1)
            h = self.fuse[level](h)
            if level in self.memory_levels:
                h = self._remember(level, h, weights)
        return MemAEOutput(reconstruction=self.head(h), weights=weights)

    def reconstruct_cube(self, flows: Tensor) -> MemAEOutput:
        """A cube's t flows (B, t * flow_channels, S, S), t a multiple of num_flows, each group
        of num_flows flows reconstructed on its own (as the released code does flow by flow):
        the reconstruction has the cube's shape, weights rows are (group, sample)-ordered."""
        group = self.flow_channels * self.num_flows
        b, c, height, width = flows.shape
        if c % group:
            raise ValueError(
                f"MLMemAESC.reconstruct_cube: {c} flow channels are not a multiple of "
                f"num_flows * flow_channels = {group}"
            )
        groups = c // group
        folded = flows.reshape(b, groups, group, height, width).transpose(0, 1)
        out = self(folded.reshape(groups * b, group, height, width))
        recon = out.reconstruction.reshape(groups, b, group, height, width).transpose(0, 1)
        return MemAEOutput(reconstruction=recon.reshape(b, c, height, width), weights=out.weights)
