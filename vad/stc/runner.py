"""The `stc` stage: the STCs (cubes.py) of every box of objects.h5, cut from frames.h5 and
flow.h5, into stc.h5.

Videos run in parallel (vad.parallel, `n_jobs` workers, local processes or a Dask cluster); each
worker reads its video's frames and flows a block at a time, never a whole video. Videos are
written in frames.h5's order, so the file's bytes depend on neither. The output is resumable
per video and appears only when complete (vad.cache.ResumableCache): a finished video is kept
when its frames, flows and boxes still have the content digests it was computed from.

Layout of stc.h5: group `<split>/<name>` per video with the datasets of `VideoCubes` (cubes.py):
`frames` (N, T, S, S, C) uint8, `flows` (N, T-1, S, S, 2) float16 (u, v in cube pixels per
frame), `frame`, `box_index`, `object` (N,) int32, `box` (N, 4) float32, `region` (N, 4)
int32; the cube datasets are stored in chunks of CUBES_PER_CHUNK cubes (a minibatch reads
whole chunks: draw random chunks, then shuffle within them, or load a video at once). Group
attrs `name`, `split`, `num_frames`, `width`, `height`, `channels`, `digest` and
`input_digest` (combining the frames', flow's and objects' digests of the video); file attrs
`frames` (T), `size` (S) and `settings`. A video without boxes has N = 0: empty datasets.
"""

from __future__ import annotations

from contextlib import closing
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from vad.cache import (
    INPUT_DIGEST,
    ResumableCache,
    array_digest,
    checked_dataset,
    combine_digests,
    input_video_digests,
    iter_videos,
    open_cache,
    read_dataset,
    video_key,
)
from vad.objects.runner import read_objects
from vad.parallel import Engine, map_videos
from vad.progress import progress as progress_bar
from vad.stc.cubes import FIELDS, VideoCubes, video_cubes
from vad.stc.settings import CubeSettings

CUBES_PER_CHUNK = 64
ROWS_PER_READ = 32  # frames (or flows) read from the caches at a time


class BlockRows:
    """Rows of an HDF5 dataset, read ROWS_PER_READ at a time, the last two blocks kept (cubes
    are built in frame order)."""

    def __init__(self, dataset: h5py.Dataset, rows_per_read: int = ROWS_PER_READ):
        self.dataset = dataset
        self.shape = dataset.shape
        self.rows_per_read = rows_per_read
        self.blocks: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} of a dataset of {len(self)}")
        block = index // self.rows_per_read
        if block not in self.blocks:
            if len(self.blocks) >= 2:
                del self.blocks[min(self.blocks)]
            start = block * self.rows_per_read
            self.blocks[block] = read_dataset(
                self.dataset, np.s_[start : start + self.rows_per_read]
            )
        return self.blocks[block][index - block * self.rows_per_read]


def _task(
    key: str, frames_path: str, flow_path: str, objects_path: str, settings: CubeSettings
) -> VideoCubes:
    objects = read_objects(objects_path, key)
    with open_cache(frames_path) as frames, open_cache(flow_path) as flows:
        return video_cubes(
            BlockRows(frames[key]["frames"]),
            BlockRows(flows[key]["flow"]),
            objects["frame"],
            objects["box"],
            settings,
        )


def cubes_digest(cubes: VideoCubes) -> str:
    return combine_digests({field: array_digest(cubes[field]) for field in FIELDS})


def write_cubes(group: h5py.Group, cubes: VideoCubes) -> None:
    """The datasets of one video in chunks of CUBES_PER_CHUNK rows, the cubes lightly
    compressed. Extendable along N, so that a chunk may exceed a video's cubes (or none)."""
    for field in FIELDS:
        values = cubes[field]
        checked_dataset(
            group,
            field,
            values,
            chunks=(CUBES_PER_CHUNK,) + values.shape[1:],
            maxshape=(None,) + values.shape[1:],
            compression="lzf" if field in ("frames", "flows") else None,
        )


def _rerun(stage: str) -> str:
    return f"re-run the {stage} stage (`dvc repro {stage}`)"


def check_inputs(
    frames_path: Path, flow_path: Path, objects_path: Path
) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(frames shape by video key, input digest by key): every video of frames.h5 must have
    its flows and boxes, computed from the frames it has now, and as many of them as it has
    frames. An error names the file, the video and the stage to re-run."""
    with open_cache(frames_path) as f:
        shapes = {video_key(s, n): g["frames"].shape for s, n, g in iter_videos(f)}
        frame_digests = input_video_digests(f, "frames")
    found: dict[str, dict[str, str]] = {}
    for path, stage, dataset in ((flow_path, "flow", "flow"), (objects_path, "objects", "frame")):
        with open_cache(path) as f:
            found[stage] = input_video_digests(f, stage)
            for key, shape in shapes.items():
                if key not in f or dataset not in f[key]:
                    raise ValueError(f"{path}: no video '{key}' of {frames_path}; {_rerun(stage)}")
                group = f[key]
                if group.attrs.get(INPUT_DIGEST) != frame_digests[key]:
                    raise ValueError(
                        f"{path}: video '{key}' was computed from other frames than "
                        f"{frames_path} holds now; {_rerun(stage)}"
                    )
                if stage == "flow" and len(group["flow"]) != max(shape[0] - 1, 0):
                    raise ValueError(
                        f"{path}: video '{key}' has {len(group['flow'])} flows for "
                        f"{shape[0]} frames; {_rerun(stage)}"
                    )
                if stage == "objects" and int(group.attrs["num_frames"]) != shape[0]:
                    raise ValueError(
                        f"{path}: video '{key}' has boxes for {int(group.attrs['num_frames'])} "
                        f"frames, {frames_path} {shape[0]}; {_rerun(stage)}"
                    )
    digests = {
        key: combine_digests(
            {"frames": frame_digests[key], "flow": found["flow"][key],
             "objects": found["objects"][key]}
        )  # fmt: skip
        for key in shapes
    }
    return shapes, digests


def run_stc_stage(
    frames_path: str | Path,
    flow_path: str | Path,
    objects_path: str | Path,
    out_path: str | Path,
    settings: CubeSettings,
    n_jobs: int,
    progress: bool = True,
    engine: Engine | None = None,
) -> Path:
    """The STCs of every box of every video into `out_path` (resumable, atomic); `n_jobs`
    workers of `engine` (default: local processes)."""
    frames_path, flow_path = Path(frames_path), Path(flow_path)
    objects_path, out_path = Path(objects_path), Path(out_path)
    for path, what in ((frames_path, "frame"), (flow_path, "flow"), (objects_path, "objects")):
        if not path.is_file():
            raise FileNotFoundError(f"{what} cache not found: {path}")
    shapes, input_digests = check_inputs(frames_path, flow_path, objects_path)
    with ResumableCache(out_path, settings.to_json()) as cache:
        assert cache.file is not None
        cache.file.attrs.update(frames=settings.frames, size=settings.size)
        cache.retain(shapes)
        keys = [key for key in shapes if not cache.is_done(key, input_digests[key])]
        task = partial(  # absolute: a Dask worker's directory may be another
            _task,
            frames_path=str(frames_path.absolute()),
            flow_path=str(flow_path.absolute()),
            objects_path=str(objects_path.absolute()),
            settings=settings,
        )
        results = map_videos(task, keys, n_jobs, what=f"STCs of {objects_path}", engine=engine)
        bar = progress_bar(total=len(keys), unit="video", desc="stc", disable=not progress)
        with bar, closing(results):
            for key, cubes in results:
                split, name = key.split("/", 1)
                count, height, width, channels = shapes[key]
                group = cache.start(key)
                write_cubes(group, cubes)
                group.attrs.update(
                    name=name, split=split, num_frames=count, height=height, width=width,
                    channels=channels,
                )  # fmt: skip
                cache.finish(key, digest=cubes_digest(cubes), input_digest=input_digests[key])
                bar.update(1)
    return out_path


def read_cubes(path: str | Path, key: str, rows: slice = slice(None)) -> VideoCubes:
    """The STCs `rows` (all by default) of video `key` (`<split>/<name>`) of stc.h5."""
    with open_cache(path) as f:
        if key not in f:
            raise KeyError(f"{path}: no video '{key}' (re-run the stc stage)")
        group = f[key]
        return VideoCubes({field: read_dataset(group[field], rows) for field in FIELDS})
