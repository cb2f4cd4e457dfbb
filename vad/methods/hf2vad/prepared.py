"""HF2-VAD's prepared file: the training videos' STCs copied from stc.h5, which training reads.

The `train@hf2vad` stage reads its prepared file only (DVC tracks nothing else for it), so the
training cubes are copied into it: each training video's group of stc.h5, datasets and attrs,
by HDF5's object copy (chunks of CUBES_PER_CHUNK cubes, lzf and checksums kept; no video is read
into memory). File attrs: `frames` (T), `size` (S), `channels` (C) of the cubes and
`train_digest`, the combined content digest of the training videos (a checkpoint resumes only
on the same data). Test videos stay in stc.h5, which the score stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py

from vad.cache import DIGEST, combine_digests, iter_videos, open_cache, write_h5

TRAIN = "train"


@dataclass(frozen=True)
class CubeLayout:
    """What the networks' inputs are: T frames (T - 1 flows) of S x S pixels, C channels."""

    frames: int
    size: int
    channels: int


def write_prepared(stc_path: str | Path, out: str | Path, settings: dict) -> int:
    """Copy the training videos of stc.h5 into `out` (atomically); returns their cube count.
    Refuses stc.h5 without training cubes, or whose videos differ in channels."""
    with open_cache(stc_path) as stc, write_h5(out, settings) as f:
        videos = [(name, group) for split, name, group in iter_videos(stc) if split == TRAIN]
        count = sum(len(group["frame"]) for _, group in videos)
        if not count:
            raise ValueError(
                f"{stc_path}: no training cubes (no boxes on any training frame); HF2-VAD "
                "trains on the cubes of the objects stage's boxes"
            )
        channels = {int(group.attrs["channels"]) for _, group in videos}
        if len(channels) != 1:
            raise ValueError(f"{stc_path}: training videos differ in channels: {channels}")
        f.create_group(TRAIN)
        for name, group in videos:
            stc.copy(group, f[TRAIN], name=name)
        f.attrs.update(
            frames=int(stc.attrs["frames"]),
            size=int(stc.attrs["size"]),
            channels=channels.pop(),
            train_digest=combine_digests({n: str(g.attrs[DIGEST]) for n, g in videos}),
        )
    return count


def cube_layout(f: h5py.File) -> CubeLayout:
    """The cubes' shape recorded in an open prepared file."""
    return CubeLayout(int(f.attrs["frames"]), int(f.attrs["size"]), int(f.attrs["channels"]))


def training_videos(f: h5py.File) -> list[tuple[str, h5py.Group]]:
    """(name, group) of every training video of an open prepared file, names sorted."""
    return [(name, group) for split, name, group in iter_videos(f) if split == TRAIN]
