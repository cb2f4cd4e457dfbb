"""GMFC-VAE's data: patches of frames (appearance stream) and dynamic flows (motion stream),
paper Sec. IV-C.

Training: 28×28 patches with stride 7 from the frames (appearance stream) and from the dynamic
flows (motion stream) of the training videos at 420×280; patches with no moving pixel (frame
difference test) are discarded; a seeded random sample of `n_train` locations is kept. Each
stream's prepare stage draws that sample from the frames alone, so both streams take their
patches at the same locations.
Test: 28×28 patches with stride 28, a 15×10 grid per 420×280 frame.

Memory: frames and dynamic flows are read a block of frames at a time (`stream_blocks`). The
sample is drawn in two passes over the training frames: the first counts the moving patch
locations, the second keeps those the seeded draw chose (the draw depends on their number
only), so memory is the `n_train` chosen locations and their patches, whatever the number of
training frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vad.cache import checked_dataset, iter_rows, open_cache, read_dataset, write_h5
from vad.frame_cache import BLOCK_FRAMES, frame_blocks, resize_frames, video_keys
from vad.motion.frame_difference import moving_counts, moving_pixels
from vad.progress import progress as progress_bar

STREAMS = ("rgb", "dynflow")


@dataclass(frozen=True)
class PatchSettings:
    size: tuple[int, int] = (420, 280)  # (width, height)
    patch: int = 28
    train_stride: int = 7
    motion_threshold: float = 10.0
    min_moving_pixels: int = 1
    n_train: int = 20000
    seed: int = 0


def stream_frames(
    stream: str,
    frames_path: str | Path,
    dynflow_path: str | Path | None,
    key: str,
    size: tuple[int, int],
) -> np.ndarray:
    """The T×H×W×3 uint8 input of a stream for one video, at `size` (the rgb stream reads
    frames.h5 only; `dynflow_path` is used by the dynflow stream): all of `stream_blocks`."""
    return np.concatenate(
        [block for _, block in stream_blocks(stream, frames_path, dynflow_path, key, size)]
    )


def stream_blocks(
    stream: str,
    frames_path: str | Path,
    dynflow_path: str | Path | None,
    key: str,
    size: tuple[int, int],
    block: int = BLOCK_FRAMES,
) -> Iterator[tuple[int, np.ndarray]]:
    """(first, frames) of `stream_frames`, `block` frames at a time."""
    if stream == "rgb":
        yield from frame_blocks(frames_path, key, size, color="rgb", block=block)
    elif stream == "dynflow":
        if dynflow_path is None:
            raise ValueError("the dynflow stream needs the dynamic-flow cache")
        with open_cache(dynflow_path) as f:
            if key not in f:
                raise KeyError(f"{dynflow_path}: no video '{key}'")
            for first, maps in iter_rows(f[key]["dynflow"], block):
                yield first, resize_frames(maps, size)
    else:
        raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")


def moving_count_blocks(
    frames_path: str | Path, key: str, size: tuple[int, int], patch: int, stride: int,
    motion_threshold: float,
) -> Iterator[tuple[int, np.ndarray]]:
    """(first, counts): the moving pixels (frame difference above `motion_threshold`) in each
    patch of the stride grid, (n, rows, cols) per block of one video's frames at `size`."""
    previous = None
    for first, frames in frame_blocks(frames_path, key, size, color="gray"):
        gray = frames[..., 0]
        moving = moving_pixels(gray, motion_threshold, previous)
        previous = gray[-1]
        yield first, moving_counts(moving, patch, stride)


def patch_grid(frames: np.ndarray, patch: int, stride: int) -> np.ndarray:
    """T×H×W×C -> view of shape (T, rows, cols, patch, patch, C)."""
    windows = sliding_window_view(frames, (patch, patch), axis=(1, 2))[:, ::stride, ::stride]
    return windows.transpose(0, 1, 2, 4, 5, 3)


def scoring_grid(frames: np.ndarray, patch: int) -> np.ndarray:
    """Test patches: the non-overlapping grid (T, rows, cols, patch, patch, C), 10×15 at 420×280."""
    height, width = frames.shape[1:3]
    if height % patch or width % patch:
        raise ValueError(f"frame size {width}x{height} is not a multiple of the patch {patch}")
    return patch_grid(frames, patch, patch)


def sample_locations(
    frames_path: str | Path, settings: PatchSettings, progress: bool = True
) -> tuple[list[str], np.ndarray]:
    """Training videos and a seeded sample of (video, frame, row, col) grid locations that move.

    The candidates are every location with at least `min_moving_pixels` moving pixels, in the
    order video, frame, row, col; `n_train` of them (all, if fewer) are drawn with
    `numpy.random.default_rng(seed).choice` without replacement and kept in that order."""
    keys = video_keys(frames_path, "train")

    def candidates(index: int, key: str) -> Iterator[np.ndarray]:
        for first, counts in moving_count_blocks(
            frames_path, key, settings.size, settings.patch, settings.train_stride,
            settings.motion_threshold,
        ):  # fmt: skip
            frame, row, col = np.nonzero(counts >= settings.min_moving_pixels)
            yield np.stack([np.full_like(frame, index), frame + first, row, col], axis=1)

    total = 0
    for index, key in enumerate(
        progress_bar(keys, desc="moving patches", unit="video", disable=not progress)
    ):
        total += sum(len(block) for block in candidates(index, key))
    if total == 0:
        raise ValueError(
            f"{frames_path}: no training patch contains a moving pixel "
            f"(motion_threshold={settings.motion_threshold})"
        )
    rng = np.random.default_rng(settings.seed)
    chosen = np.sort(rng.choice(total, size=min(settings.n_train, total), replace=False))
    kept, offset = [], 0
    for index, key in enumerate(keys):  # the same candidates again: keep the chosen ones
        for block in candidates(index, key):
            low, high = np.searchsorted(chosen, [offset, offset + len(block)])
            kept.append(block[chosen[low:high] - offset])
            offset += len(block)
    return keys, np.concatenate(kept)


def extract_training_patches(
    stream: str,
    frames_path: str | Path,
    dynflow_path: str | Path | None,
    keys: list[str],
    locations: np.ndarray,
    settings: PatchSettings,
    progress: bool = True,
) -> np.ndarray:
    """(N, patch, patch, 3) uint8 patches of one stream at the sampled locations."""
    out = np.empty((len(locations), settings.patch, settings.patch, 3), np.uint8)
    for index, key in enumerate(
        progress_bar(keys, desc=f"{stream} patches", unit="video", disable=not progress)
    ):
        rows = np.flatnonzero(locations[:, 0] == index)
        if len(rows) == 0:
            continue
        for first, frames in stream_blocks(stream, frames_path, dynflow_path, key, settings.size):
            frame = locations[rows, 1]
            inside = rows[(frame >= first) & (frame < first + len(frames))]
            if len(inside) == 0:
                continue
            grid = patch_grid(frames, settings.patch, settings.train_stride)
            _, frame, row, col = locations[inside].T
            out[inside] = grid[frame - first, row, col]
    return out


def write_patches(
    path: str | Path,
    patches: np.ndarray,
    keys: list[str],
    locations: np.ndarray,
    stream: str,
    settings: PatchSettings,
) -> None:
    """Patches in one HDF5 dataset chunked by 1000 (read whole into memory for training)."""
    with write_h5(path, {"stream": stream, **settings.__dict__}) as f:
        checked_dataset(
            f, "patches", patches, chunks=(min(1000, max(1, len(patches))),) + patches.shape[1:]
        )
        checked_dataset(f, "locations", locations.astype(np.int32))
        checked_dataset(f, "videos", np.array(keys, dtype="S"))


def read_patches(path: str | Path) -> np.ndarray:
    with open_cache(path) as f:
        return read_dataset(f["patches"])
