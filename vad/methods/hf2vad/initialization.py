"""Weight initialisation of HF2-VAD's networks from a seed alone (no global random state).

As the released code (LiUzHiAn/hf2vad, utils/initialization_utils.py `weights_init_kaiming`,
applied to ML-MemAE-SC and to the CVAE): Conv2d weights Kaiming-normal (a = 0.1, fan-in),
BatchNorm scales N(1, 0.02) and shifts 0. Layers that function leaves alone keep PyTorch's
default distributions, re-drawn here from the seeded generator: ConvTranspose2d weights
Kaiming-uniform (a = sqrt(5)), every convolution bias U(+-1/sqrt(fan_in)). Memories and
weight-normalised convolutions initialise themselves (their `reset_parameters(generator)`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vad.methods.hf2vad.memory import Memory
from vad.methods.hf2vad.vunet_blocks import WeightNormConv2d


def _default_bias(layer: nn.Conv2d | nn.ConvTranspose2d, generator: torch.Generator) -> None:
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.weight[0].numel())
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


@torch.no_grad()
def initialize(model: nn.Module, seed: int) -> None:
    """Re-draw every parameter of `model` from torch.Generator().manual_seed(seed), visiting the
    modules in registration order (the same seed gives the same weights)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, a=0.1, mode="fan_in", generator=generator)
            _default_bias(module, generator)
        elif isinstance(module, nn.ConvTranspose2d):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            _default_bias(module, generator)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (Memory, WeightNormConv2d)):
            module.reset_parameters(generator)
