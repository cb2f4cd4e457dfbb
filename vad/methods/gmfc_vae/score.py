"""GMFC-VAE scoring (paper Sec. III-D/IV-C): sample energy (eq. 17) of every test patch of one
stream.

Each frame (at 420×280) is cut into the 15×10 grid of 28×28 patches; a patch's score is the
sample energy E(z) (eq. 17) of its encoder mean z; the frame score is the maximum over the map,
and the map itself is the pixel-level score (brought to frame size by the evaluation).
Training videos are scored too (every `train_stride`-th frame): their energies are the
statistics that normalize each stream before fusion.

Static patches: training only ever sees patches with a moving pixel (Sec. IV-C), so a static
background patch at test time is outside the training distribution and its energy says nothing
about anomalies, yet it can dominate the frame maximum. With `static_patches="mode"` a patch
without a moving pixel (the same frame-difference test that selects training patches) gets the
energy of the prior's most likely point, min_c E(mu_c): "as normal as can be". With
`static_patches="score"` every patch keeps its energy (the paper is silent on this).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vad.frame_cache import load_frames, video_keys
from vad.methods.gmfc_vae.method import STATIC_PATCH_RULES
from vad.methods.gmfc_vae.patches import scoring_grid, stream_frames
from vad.methods.gmfc_vae.train import check_patches, to_tensor
from vad.motion.frame_difference import moving_counts, moving_pixels
from vad.progress import progress as progress_bar
from vad.scores import ScoreSet, VideoScores
from vad.training import resolve_device


@torch.no_grad()
def energies(
    model: torch.nn.Module,
    patches: np.ndarray,
    batch_size: int = 2000,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Sample energy (eq. 17) of each patch's encoder mean, float64 (N,); eval mode, no grad."""
    patches = check_patches(patches)
    device = resolve_device(device)
    model = model.to(device).eval()
    out = np.empty(len(patches), dtype=np.float64)
    for start in range(0, len(patches), batch_size):
        z = model.encode_mean(to_tensor(patches[start : start + batch_size], device))
        out[start : start + len(z)] = model.sample_energy(z.double()).cpu().numpy()
    return out


def score_video(
    model: torch.nn.Module, frames: np.ndarray, patch: int, batch_size: int, device: str
) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 -> energy maps (T, rows, cols)."""
    grid = scoring_grid(frames, patch)
    count, rows, cols = grid.shape[:3]
    flat = np.ascontiguousarray(grid.reshape(count * rows * cols, patch, patch, grid.shape[-1]))
    return energies(model, flat, batch_size=batch_size, device=device).reshape(count, rows, cols)


@torch.no_grad()
def mode_energy(model: torch.nn.Module) -> float:
    """min_c E(mu_c): the sample energy (eq. 17) at the most likely component mean."""
    return float(model.sample_energy(model.mu_c.detach().double()).min())


def moving_patches(
    frames_path: str | Path,
    key: str,
    size: tuple[int, int],
    patch: int,
    motion_threshold: float,
    min_moving_pixels: int,
) -> np.ndarray:
    """(T, rows, cols) bool: grid patches with enough moving pixels (frame difference test)."""
    gray = load_frames(frames_path, key, size, color="gray")[..., 0]
    return moving_grid(gray, patch, motion_threshold, min_moving_pixels)


def moving_grid(
    gray: np.ndarray, patch: int, motion_threshold: float, min_moving_pixels: int
) -> np.ndarray:
    """(T, H, W) uint8 gray frames -> (T, rows, cols) bool: scoring-grid patches with at least
    `min_moving_pixels` moving pixels (frame 0 compared with frame 1, as everywhere)."""
    counts = moving_counts(moving_pixels(gray, motion_threshold), patch, patch)
    return counts >= min_moving_pixels


def score_stream(
    model: torch.nn.Module,
    name: str,
    stream: str,
    frames_path: str | Path,
    dynflow_path: str | Path | None,
    size: tuple[int, int],
    patch: int,
    train_stride: int,
    batch_size: int,
    device: str,
    static_patches: str = "mode",
    motion_threshold: float = 10.0,
    min_moving_pixels: int = 1,
    progress: bool = True,
) -> ScoreSet:
    """Energy maps of every video of frames.h5 (training videos every `train_stride`-th frame)
    as the score set `name`."""
    if static_patches not in STATIC_PATCH_RULES:
        raise ValueError(
            f"static_patches must be one of {STATIC_PATCH_RULES}, got {static_patches!r}"
        )
    floor = mode_energy(model)
    result = ScoreSet(
        model=name,
        attrs={
            "stream": stream,
            "map_size": list(size),
            "patch": patch,
            "static_patches": static_patches,
            "mode_energy": floor,
            **({"static_value": floor} if static_patches == "mode" else {}),
        },
    )
    for key in progress_bar(
        video_keys(frames_path), desc=f"score {name}", unit="video", disable=not progress
    ):
        split, video = key.split("/", 1)
        frames = stream_frames(stream, frames_path, dynflow_path, key, size)
        indices = np.arange(0, len(frames), train_stride) if split == "train" else None
        maps = score_video(
            model, frames if indices is None else frames[indices], patch, batch_size, device
        )
        if static_patches == "mode":
            moving = moving_patches(
                frames_path, key, size, patch, motion_threshold, min_moving_pixels
            )
            maps = np.where(moving if indices is None else moving[indices], maps, floor)
        target = result.train if split == "train" else result.test
        target[video] = VideoScores(maps.max(axis=(1, 2)), maps, indices)
    return result
