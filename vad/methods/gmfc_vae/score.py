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

Memory: a video is read a block of frames at a time and its patches go through the model in
batches of `batch_size` in order, the same batches as if the whole video were cut at once
(`stream_energies`), so the energies are the same and memory is one block and one batch; the
score set is yielded one video at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from vad.frame_cache import video_keys, video_length
from vad.methods.gmfc_vae.method import STATIC_PATCH_RULES
from vad.methods.gmfc_vae.patches import moving_count_blocks, scoring_grid, stream_blocks
from vad.methods.gmfc_vae.train import check_patches, to_tensor
from vad.motion.frame_difference import moving_counts, moving_pixels
from vad.progress import progress as progress_bar
from vad.scores import Scored, ScoreStream, VideoScores
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


def stream_energies(
    model: torch.nn.Module,
    patches: Iterable[np.ndarray],
    batch_size: int = 2000,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """`energies` of the concatenation of the patch arrays `patches` yields, holding one of
    them and one batch: the batches are those `energies` would cut from the whole (every
    `batch_size` patches in order), so the energies are the same."""
    waiting: list[np.ndarray] = []
    count, out = 0, []
    for block in patches:
        waiting.append(block)
        count += len(block)
        if count >= batch_size:
            stacked = np.concatenate(waiting)
            full = count - count % batch_size
            out.append(energies(model, stacked[:full], batch_size, device))
            waiting, count = [stacked[full:]], count - full
    if count:
        out.append(energies(model, np.concatenate(waiting), batch_size, device))
    return np.concatenate(out) if out else np.zeros(0, np.float64)


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
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """(T, rows, cols) bool: grid patches with enough moving pixels (frame difference test),
    of every frame or of the frames `indices` (ascending), read a block of frames at a time."""
    moving = []
    for first, counts in moving_count_blocks(
        frames_path, key, size, patch, patch, motion_threshold
    ):
        chosen = counts >= min_moving_pixels
        moving.append(chosen if indices is None else chosen[_local(indices, first, len(counts))])
    return np.concatenate(moving)


def grid_patches(
    stream: str,
    frames_path: str | Path,
    dynflow_path: str | Path | None,
    key: str,
    size: tuple[int, int],
    patch: int,
    indices: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """The test patches of one video (of every frame, or of the frames `indices`), in order,
    as (n, patch, patch, 3) arrays, one per block of frames."""
    for first, frames in stream_blocks(stream, frames_path, dynflow_path, key, size):
        if indices is not None:
            frames = frames[_local(indices, first, len(frames))]
        grid = scoring_grid(frames, patch)
        yield np.ascontiguousarray(grid.reshape((-1,) + grid.shape[3:]))


def _local(indices: np.ndarray, first: int, count: int) -> np.ndarray:
    """The ascending `indices` that fall in frames first .. first + count - 1, from first."""
    low, high = np.searchsorted(indices, [first, first + count])
    return indices[low:high] - first


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
    videos: Collection[str] | None = None,
) -> ScoreStream:
    """Energy maps of every video of frames.h5 (training videos every `train_stride`-th frame),
    or of the keys `videos` only, as the score set `name`, one video at a time."""
    if static_patches not in STATIC_PATCH_RULES:
        raise ValueError(
            f"static_patches must be one of {STATIC_PATCH_RULES}, got {static_patches!r}"
        )
    floor = mode_energy(model)
    attrs = {
        "stream": stream,
        "map_size": list(size),
        "patch": patch,
        "static_patches": static_patches,
        "mode_energy": floor,
        **({"static_value": floor} if static_patches == "mode" else {}),
    }

    def scored() -> Iterator[Scored]:
        keys = [k for k in video_keys(frames_path) if videos is None or k in videos]
        for key in progress_bar(keys, desc=f"score {name}", unit="video", disable=not progress):
            split, video = key.split("/", 1)
            indices = None
            if split == "train":
                indices = np.arange(0, video_length(frames_path, key), train_stride)
            patches = grid_patches(stream, frames_path, dynflow_path, key, size, patch, indices)
            maps = stream_energies(model, patches, batch_size, device)
            maps = maps.reshape(-1, size[1] // patch, size[0] // patch)
            if static_patches == "mode":
                moving = moving_patches(
                    frames_path, key, size, patch, motion_threshold, min_moving_pixels, indices
                )
                maps = np.where(moving, maps, floor)
            yield split, video, VideoScores(maps.max(axis=(1, 2)), maps, indices)

    return ScoreStream(name, scored(), attrs)
