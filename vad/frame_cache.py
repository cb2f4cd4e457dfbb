"""The frame cache (data/interim/frames.h5) and ground-truth cache (data/interim/ground_truth.h5).

Frames are stored once, at their original size unless `frames.size` says otherwise, gray or RGB.
Every consumer brings them to the size its model needs when it reads them (`load_frames(...,
size=...)`): flow and GMFC-VAE at 420x280, other models at theirs. One cache serves all models,
and changing a model's working size re-runs that model's stages only.

Every video group records the content digest of its frames as attr `digest` (`vad.cache`), and
every ground-truth group that of its labels and masks, so the stages reading them can tell
changed content from unchanged.

Memory: frames and masks are written one frame (or chunk) at a time, and the stages read them
back in blocks of BLOCK_FRAMES frames (`frame_blocks`), so that no stage holds a whole video:
its memory does not grow with the length of the videos (`python -m vad bench scale`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import h5py
import numpy as np

from vad.cache import (
    DIGEST,
    IncrementalDigest,
    RowWriter,
    array_digest,
    checked_dataset,
    combine_digests,
    iter_rows,
    iter_videos,
    open_cache,
    read_dataset,
    staged_outputs,
    video_key,
    write_h5,
)
from vad.progress import ProgressBar
from vad.progress import progress as progress_bar

if TYPE_CHECKING:  # type hints only: reading frames needs none of the dataset readers
    from vad.datasets.base import Dataset, Video

COLORS = ("gray", "rgb")
# Frames a stage reads (and works on) at once: a multiple of the cache's 8 frames per chunk.
BLOCK_FRAMES = 32
MASK_FRAMES_PER_CHUNK = 8


def resize_image(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize one image to size=(width, height): area when no side grows, linear otherwise."""
    height, width = image.shape[:2]
    if size is None or (width, height) == tuple(size):
        return image
    shrinking = size[0] <= width and size[1] <= height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (int(size[0]), int(size[1])), interpolation=interpolation)


def resize_frames(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize a T×H×W(×C) stack to size=(width, height) with `resize_image`."""
    if size is None or (frames.shape[2], frames.shape[1]) == tuple(size):
        return frames
    stacked = np.stack([resize_image(frame, size) for frame in frames])
    if frames.ndim == 4 and stacked.ndim == 3:  # cv2 drops a single channel axis
        stacked = stacked[..., None]
    return stacked


def convert_color(frame_rgb: np.ndarray, color: str) -> np.ndarray:
    if color == "gray":
        return cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)[..., None]
    return frame_rgb


def stored_frame(frame_rgb: np.ndarray, color: str, size: tuple[int, int] | None) -> np.ndarray:
    """One decoded H×W×3 RGB frame as the frame cache stores it: `color`, at `size`."""
    return resize_frames(convert_color(frame_rgb, color)[None], size)[0]


def write_video(
    group: h5py.Group, video: Video, color: str, size: tuple[int, int] | None, bar: ProgressBar
) -> None:
    """Stream one video's frames into a chunked T×H×W×C dataset, one frame in memory at a time,
    and record their content digest as the group's attr `digest`."""
    width, height = size if size is not None else (video.width, video.height)
    channels = 1 if color == "gray" else 3
    shape = (video.num_frames, height, width, channels)
    frames = checked_dataset(
        group,
        "frames",
        shape=shape,
        dtype=np.uint8,
        chunks=(min(8, video.num_frames), height, width, channels),
        compression="lzf",
    )
    digest = IncrementalDigest(np.uint8, shape)
    for index, frame in enumerate(video.frames()):
        stored = stored_frame(frame, color, size)
        frames[index] = stored
        digest.update(stored)
        bar.update(1)
    group.attrs[DIGEST] = digest.hexdigest()


def write_frame_cache(
    dataset: Dataset,
    frames_path: str | Path,
    ground_truth_path: str | Path,
    color: str = "gray",
    size: tuple[int, int] | None = None,
    progress: bool = True,
) -> None:
    """Read every video into frames.h5, and the labels and masks into ground_truth.h5. The
    file attrs `settings` of frames.h5 record the dataset, root, color and size, and the scenes
    when the clips were chosen by scene (`data.scenes`).

    Both files appear together or not at all: the ground truth (every mask loaded and checked
    against its video) is written first, then the frames, each to a staging file renamed only
    once both are complete. A bad mask or frame leaves no new cache, and an older pair at the
    paths as it was."""
    if color not in COLORS:
        raise ValueError(f"frames color must be one of {COLORS}, got {color!r}")
    settings = {"dataset": dataset.name, "root": str(dataset.root), "color": color, "size": size}
    if dataset.scenes is not None:  # only then: a whole dataset's cache is as it always was
        settings["scenes"] = list(dataset.scenes)
    total = sum(v.num_frames for v in dataset.videos)
    with staged_outputs(frames_path, ground_truth_path) as (staged_frames, staged_truth):
        write_ground_truth(dataset, staged_truth)
        with (
            write_h5(staged_frames, settings) as f,
            progress_bar(total=total, desc="frames", unit="frame", disable=not progress) as bar,
        ):
            for video in dataset.videos:
                bar.set_postfix_str(f"{video.split}/{video.name}")
                group = f.create_group(video_key(video.split, video.name))
                write_video(group, video, color, size, bar)
                group.attrs.update(
                    name=video.name,
                    split=video.split,
                    source=video.source,
                    num_frames=video.num_frames,
                    original_height=video.height,
                    original_width=video.width,
                )


def write_ground_truth(dataset: Dataset, path: str | Path) -> None:
    """Labels (T,) and, where they exist, masks (T×H×W at original size) per test video; attr
    `digest` combines the digests of the two (`combine_digests` of {"labels", "masks"})."""
    with write_h5(path, {"dataset": dataset.name}) as f:
        for video in dataset.test:
            truth = dataset.ground_truth.get(video.name)
            if truth is None:
                continue
            group = f.create_group(video_key("test", video.name))
            labels = truth.labels.astype(bool)
            checked_dataset(group, "labels", labels)
            parts = {"labels": array_digest(labels)}
            if truth.load_masks is not None:
                parts["masks"] = write_masks(group, video, truth.mask_frames())
            group.attrs[DIGEST] = combine_digests(parts)


def write_masks(group: h5py.Group, video: Video, masks: Iterator[np.ndarray]) -> str:
    """Stream a clip's masks, one H×W frame after the other, into dataset `masks` (T×H×W bool,
    8 frames a chunk) a chunk at a time; returns their content digest. A mask of another size,
    or another number of masks than frames, is a ValueError naming the clip."""
    shape = (video.num_frames, video.height, video.width)
    writer = RowWriter(group, "masks", shape, bool, MASK_FRAMES_PER_CHUNK)
    block: list[np.ndarray] = []
    for index, mask in enumerate(masks):
        if index >= video.num_frames or np.shape(mask) != shape[1:]:
            found = "more masks" if index >= video.num_frames else f"shape {np.shape(mask)}"
            raise ValueError(
                f"{video.source}: mask {index} of video {video.name!r}: {found}, expected "
                f"{video.num_frames} masks of shape {shape[1:]} like its frames"
            )
        block.append(np.asarray(mask).astype(bool))
        if len(block) == MASK_FRAMES_PER_CHUNK:
            writer.write(np.stack(block))
            block = []
    if block:
        writer.write(np.stack(block))
    if writer.rows != video.num_frames:
        raise ValueError(
            f"{video.source}: {writer.rows} masks for video {video.name!r}, which has "
            f"{video.num_frames} frames"
        )
    return writer.hexdigest()


def load_frames(
    path: str | Path, key: str, size: tuple[int, int] | None = None, color: str | None = None
) -> np.ndarray:
    """Frames of one video as T×H×W×C uint8, optionally resized and converted (gray <-> rgb)."""
    with open_cache(path) as f:
        if key not in f:
            raise KeyError(f"{path}: no video '{key}'")
        frames = read_dataset(f[key]["frames"])
    return convert_frames(frames, size, color)


def load_frame(
    path: str | Path,
    key: str,
    index: int,
    size: tuple[int, int] | None = None,
    color: str | None = None,
) -> np.ndarray:
    """Frame `index` of one video as `load_frames(...)[index]` gives it, read alone."""
    with open_cache(path) as f:
        frame = read_dataset(_frames_dataset(f, path, key), np.s_[index : index + 1])
    if len(frame) == 0:
        raise IndexError(f"{path}: video '{key}' has no frame {index}")
    return convert_frames(frame, size, color)[0]


def video_length(path: str | Path, key: str) -> int:
    """The number of frames of video `key` of a frame cache."""
    with open_cache(path) as f:
        return len(_frames_dataset(f, path, key))


def frame_blocks(
    path: str | Path,
    key: str,
    size: tuple[int, int] | None = None,
    color: str | None = None,
    block: int = BLOCK_FRAMES,
    overlap: int = 0,
) -> Iterator[tuple[int, np.ndarray]]:
    """(first, frames) of one video in order, `block` frames at a time (with `overlap`, each
    block also holds the next block's first `overlap` frames: `vad.cache.iter_rows`), as
    `load_frames` gives them: converted to `color`, resized to `size`. The frames of a block
    equal those rows of `load_frames`; memory is one block, whatever the video's length."""
    with open_cache(path) as f:
        for first, frames in iter_rows(_frames_dataset(f, path, key), block, overlap):
            yield first, convert_frames(frames, size, color)


def _frames_dataset(f: h5py.File, path: str | Path, key: str) -> h5py.Dataset:
    if key not in f or "frames" not in f[key]:
        raise KeyError(f"{path}: no video '{key}'")
    return f[key]["frames"]


def convert_frames(
    frames: np.ndarray, size: tuple[int, int] | None = None, color: str | None = None
) -> np.ndarray:
    """Stored T×H×W×C uint8 frames as a model reads them: converted (gray <-> rgb), then
    resized to `size`."""
    if color == "gray" and frames.shape[-1] == 3:
        frames = np.stack([cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in frames])[..., None]
    elif color == "rgb" and frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return resize_frames(frames, size)


def video_keys(path: str | Path, split: str | None = None) -> list[str]:
    """Keys `<split>/<name>` of the videos in a cache, train first, optionally one split only."""
    with open_cache(path) as f:
        return [video_key(s, n) for s, n, _ in iter_videos(f) if split in (None, s)]


def load_ground_truth(path: str | Path) -> tuple[dict[str, np.ndarray], set[str]]:
    """Labels per test video name, and which videos have masks (read masks with `load_masks`)."""
    labels: dict[str, np.ndarray] = {}
    with open_cache(path) as f:
        for _, name, group in iter_videos(f):
            labels[name] = read_dataset(group["labels"])
        with_masks = {name for _, name, group in iter_videos(f) if "masks" in group}
    return labels, with_masks


def load_masks(path: str | Path, name: str) -> np.ndarray:
    with open_cache(path) as f:
        return read_dataset(f[video_key("test", name)]["masks"])
