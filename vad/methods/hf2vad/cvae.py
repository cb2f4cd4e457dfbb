"""HF2-VAD's flow-guided CVAE for future frame prediction (Liu et al. ICCV 2021, Sec. 3.2,
eqs. 4-8, Fig. 2 and Fig. 9).

It models p(x_{t+1} | x_{1:t}, y_{1:t}) with a latent z (eq. 5):

- E_theta (`flow_encoder`) encodes the (reconstructed) flows y_{1:t}; the prior p(z | y_{1:t})
  comes from its features;
- F_phi (`posterior_encoder`) encodes the frames x_{1:t} concatenated with the flows; the
  posterior q(z | x_{1:t}, y_{1:t}) comes from its features;
- D_psi (`decoder`) generates x_{t+1} from z concatenated with E_theta(y_{1:t}), with skip
  connections from F_phi at the levels above the latents (the Variational U-Net design).

Four levels of 32, 16, 8 and 4 px with 64, 128, 128, 128 channels (Appendix A); latents at the
two deepest levels (cvae_latents.py). In training z is sampled from the posterior; at test time
z is the posterior mean (Sec. 3.2 "Deterministic vs. stochastic", Appendix B). The output is a
sigmoid, frames being in [0, 1] (the released decoder always ends with a sigmoid).

Layer choices follow the released code (LiUzHiAn/hf2vad, models/vunet.py, models/basic_modules.py);
this implementation is written from its description, not copied.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from vad.methods.hf2vad.cvae_latents import Features, PosteriorLatents, PriorLatents
from vad.methods.hf2vad.gaussian import DiagonalGaussian
from vad.methods.hf2vad.initialization import initialize
from vad.methods.hf2vad.vunet_blocks import Encoder, ResBlock, Upsample, WeightNormConv2d

Mode = Literal["train", "test"]


class CVAEOutput(NamedTuple):
    prediction: Tensor  # (B, image_channels, H, W): x^_{t+1} in (0, 1)
    posteriors: list[DiagonalGaussian]  # q(z | x_{1:t}, y_{1:t}), deepest level first
    priors: list[DiagonalGaussian]  # p(z | y_{1:t}), same levels


class Decoder(nn.Module):
    """D_psi above the latent levels: per level, sub-pixel up-sampling, then two residual blocks
    fed F_phi's features of that level (skip connections), then a 1x1 convolution + sigmoid."""

    def __init__(self, channels: tuple[int, ...], out_channels: int, dropout: float) -> None:
        super().__init__()
        levels = range(len(channels) - 2)  # the levels above the two latent levels
        self.ups = nn.ModuleList(Upsample(channels[i + 1], channels[i]) for i in levels)
        self.blocks = nn.ModuleList(
            nn.ModuleList(ResBlock(channels[i], with_skip=True, dropout=dropout) for _ in range(2))
            for i in levels
        )
        self.head = WeightNormConv2d(channels[0], out_channels, 1)

    def forward(self, h: Tensor, skips: Features, generator: torch.Generator | None) -> Tensor:
        for level in reversed(range(len(self.ups))):
            h = self.ups[level](h)
            first_skip, last_skip = skips[level]
            first_block, second_block = self.blocks[level]
            h = first_block(h, last_skip, generator)
            h = second_block(h, first_skip, generator)
        return torch.sigmoid(self.head(h))


class FlowGuidedCVAE(nn.Module):
    """E_theta, F_phi, the two latent levels and D_psi (Fig. 2, Fig. 9)."""

    def __init__(
        self,
        image_channels: int = 3,
        history: int = 4,
        flow_channels: int = 2,
        num_flows: int = 4,
        input_size: int = 32,
        channels: tuple[int, ...] = (64, 128, 128, 128),
        dropout: float = 0.1,
        learn_variance: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if min(image_channels, history, flow_channels, num_flows) < 1:
            raise ValueError(
                "FlowGuidedCVAE needs image_channels, history, flow_channels, num_flows >= 1"
            )
        if len(channels) < 3 or min(channels) < 1:
            raise ValueError(f"FlowGuidedCVAE channels needs >= 3 positive levels; got {channels}")
        if channels[-1] != channels[-2]:
            raise ValueError(
                f"FlowGuidedCVAE: the two latent levels share their layers, so the last two "
                f"channel counts must match; got {channels}"
            )
        if input_size % 2 ** len(channels):
            raise ValueError(
                f"FlowGuidedCVAE input_size {input_size} must be divisible by "
                f"2**len(channels) = {2 ** len(channels)} (the deepest latent map is split "
                f"into 2x2 sub-grids)"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"FlowGuidedCVAE dropout must be in [0, 1); got {dropout}")
        self.image_channels = image_channels
        self.history = history
        self.flow_channels = flow_channels
        self.num_flows = num_flows
        self.input_size = input_size
        self.channels = channels
        self.dropout = float(dropout)
        self.learn_variance = bool(learn_variance)
        self.seed = seed

        flow_in = flow_channels * num_flows
        self.flow_encoder = Encoder(flow_in, channels, dropout)  # E_theta
        self.posterior_encoder = Encoder(image_channels * history + flow_in, channels, dropout)
        self.posterior = PosteriorLatents(channels[-1], dropout, learn_variance)
        self.prior = PriorLatents(channels[-1], dropout, learn_variance)
        self.decoder = Decoder(channels, image_channels, dropout)  # D_psi
        initialize(self, seed)

    @property
    def config(self) -> dict:
        """The constructor arguments (to store with the weights)."""
        return {
            "image_channels": self.image_channels,
            "history": self.history,
            "flow_channels": self.flow_channels,
            "num_flows": self.num_flows,
            "input_size": self.input_size,
            "channels": list(self.channels),
            "dropout": self.dropout,
            "learn_variance": self.learn_variance,
            "seed": self.seed,
        }

    def _check_inputs(self, frames: Tensor, flows: Tensor) -> None:
        size = (self.input_size, self.input_size)
        expected = {
            "frames": (self.image_channels * self.history, frames),
            "flows": (self.flow_channels * self.num_flows, flows),
        }
        for name, (channels, tensor) in expected.items():
            if tensor.dim() != 4 or tensor.shape[1] != channels or tuple(tensor.shape[2:]) != size:
                raise ValueError(
                    f"FlowGuidedCVAE expects {name} of shape (B, {channels}, {size[0]}, "
                    f"{size[1]}); got {tuple(tensor.shape)}"
                )
        if frames.shape[0] != flows.shape[0]:
            raise ValueError(
                f"frames and flows differ in batch size: {frames.shape[0]} and {flows.shape[0]}"
            )

    def forward(
        self,
        frames: Tensor,
        flows: Tensor,
        mode: Mode = "train",
        generator: torch.Generator | None = None,
    ) -> CVAEOutput:
        """frames x_{1:t} (B, t * image_channels, H, W) in [0, 1], flows y_{1:t}
        (B, num_flows * flow_channels, H, W) -> x^_{t+1} and both latent distributions.

        mode "train" samples z from the posterior, "test" uses its mean. `generator` (on the
        model's device) draws the latent noise and the dropout masks; it is needed in mode
        "train" and whenever dropout is active (module in training mode, dropout > 0).
        """
        if mode not in ("train", "test"):
            raise ValueError(f"FlowGuidedCVAE mode must be 'train' or 'test'; got {mode!r}")
        self._check_inputs(frames, flows)
        posterior_features = self.posterior_encoder(torch.cat([frames, flows], dim=1), generator)
        posteriors, latents = self.posterior(posterior_features, mode == "train", generator)
        h, priors = self.prior(self.flow_encoder(flows, generator), latents, generator)
        prediction = self.decoder(h, posterior_features, generator)
        return CVAEOutput(prediction=prediction, posteriors=posteriors, priors=priors)
