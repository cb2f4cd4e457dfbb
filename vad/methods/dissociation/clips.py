"""Clips of T consecutive frames for the dissociation model (Chang et al. 2022, Sec. 3.1:
frames x_1..x_T; the spatial auto-encoder reconstructs x_1, the FIF; the motion auto-encoder
sees x_1..x_{T-1} and predicts x_T - x_1, x_T being the LIF).

Training: clips start at 0, stride, 2 stride, ... up to the last full clip; a video shorter than
T frames has one clip whose missing frames repeat its last frame (`clamped_clip`). Batches:
vad.methods.clip_batches.
Scoring: frame t is scored as the LIF of the clip ending at t (frames t-T+1 .. t), so every
frame has a score as soon as it arrives; at a video's start (t < T - 1) the missing earlier
frames repeat frame 0 (`clip_ending_at`), i.e. the first frame is scored from a static clip.

    clip = gather(frames, [clip_ending_at(t, 5)])   # (1, C, 5, H, W) in [0, 1]
"""

from __future__ import annotations

import numpy as np


def training_starts(num_frames: int, length: int, stride: int) -> list[int]:
    """Start frames of a video's training clips."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if length < 2 or stride < 1:
        raise ValueError(f"clip length must be >= 2 and stride >= 1, got {length} and {stride}")
    return list(range(0, max(num_frames - length, 0) + 1, stride))


def clip_ending_at(frame: int, length: int) -> np.ndarray:
    """Frame indices of the clip whose LIF is `frame` (clamped to frame 0 at a video's start)."""
    return np.maximum(np.arange(frame - length + 1, frame + 1), 0)
