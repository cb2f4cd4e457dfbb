"""The Glows' inputs (Cho, Kim, Lee, "Learning normality distribution"): for each path, the
channel-wise max- and average-pooling of its final feature map, concatenated; the appearance
input also holds the resized intensity of the frames the appearance path sees (the paper's
"additional sparse appearance information", its ablation's setting). Time is folded into
channels, so each Glow models a (channels, h, w) map:

    appearance (B, Ca, T/tau, h, w) -> (B, 2 T/tau + C T/tau, h, w)
    motion     (B, Cm, T, h, w)     -> (B, 2 T, h, w)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pooled(features: Tensor) -> Tensor:
    """(B, C, T, h, w) -> (B, 2 T, h, w): per frame, the max then the mean over channels."""
    batch, _, frames, height, width = features.shape
    stacked = torch.stack([features.amax(dim=1), features.mean(dim=1)], dim=2)  # B, T, 2, h, w
    return stacked.reshape(batch, 2 * frames, height, width)


def appearance_input(appearance: Tensor, clip: Tensor, tau: int) -> Tensor:
    """The appearance Glow's input from the path's final map and the clip (B, C, T, H, W)."""
    slow = clip[:, :, ::tau]  # the frames the appearance path sees
    batch, channels, frames, height, width = slow.shape
    size = appearance.shape[-2:]
    intensity = F.adaptive_avg_pool2d(slow.reshape(batch, channels * frames, height, width), size)
    return torch.cat([pooled(appearance), intensity], dim=1)


def motion_input(motion: Tensor) -> Tensor:
    """The motion Glow's input from the path's final map."""
    return pooled(motion)


def input_channels(clip_channels: int, clip_length: int, tau: int) -> tuple[int, int]:
    """Channels of the (appearance, motion) Glow inputs."""
    slow = clip_length // tau
    return 2 * slow + clip_channels * slow, 2 * clip_length
