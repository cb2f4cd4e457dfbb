"""The `stc` stage: the STCs (cubes.py) of every box of objects.h5, cut from frames.h5 and
flow.h5, into stc.h5.

Videos run in parallel (vad.parallel, `n_jobs` workers, local processes or a Dask cluster). A
video's frames and flows are read a block at a time, and its cubes cut and written
CUBES_PER_CHUNK at a time (one chunk of each dataset, with its content digest fed as it goes),
so the memory used does not grow with the video's length. A worker process writes its video
into a staging file of its own, which this process, the only writer of the output, copies into
it a block at a time; in-process (one job), videos are written straight into the output. Videos
are written in frames.h5's order and every video's datasets by the same sequence of writes, so
the file's bytes depend on neither the engine nor `n_jobs`. The output is resumable per video
and appears only when complete (vad.cache.ResumableCache): a finished video is kept when its
frames, flows and boxes still have the content digests it was computed from.

Layout of stc.h5: group `<split>/<name>` per video with the datasets of `VideoCubes` (cubes.py):
`frames` (N, T, S, S, C) uint8, `flows` (N, T-1, S, S, 2) float16 (u, v in pixels per frame
of the cube, or of the frame with `flow_units: frame`), `frame`, `box_index`, `object` (N,)
int32, `box` (N, 4) float32, `region` (N, 4) int32; the datasets are stored in chunks of
CUBES_PER_CHUNK cubes, extendable along N, `frames` and `flows` lzf-compressed (a minibatch
reads whole chunks: draw random chunks, then shuffle within them, or load a video at once).
Group attrs `name`, `split`, `num_frames`, `width`, `height`, `channels`, `digest`
(`combine_digests` of the datasets' `array_digest`s) and `input_digest` (combining the
frames', flow's and objects' digests of the video); file attrs `frames` (T), `size` (S),
`flow_units` and `settings`. A video without boxes has N = 0: empty datasets.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from contextlib import closing
from functools import partial
from pathlib import Path
from urllib.parse import quote

import h5py
import numpy as np

from vad.cache import (
    INPUT_DIGEST,
    IncrementalDigest,
    ResumableCache,
    checked_dataset,
    combine_digests,
    input_video_digests,
    iter_videos,
    open_cache,
    read_dataset,
    video_key,
    write_h5,
)
from vad.objects.runner import read_objects
from vad.parallel import Engine, map_videos
from vad.progress import progress as progress_bar
from vad.stc.cubes import FIELDS, VideoCubes, allocate, iter_video_cubes
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


class CubeWriter:
    """The datasets of one video's cubes, created with their final number of cubes `count`
    (chunks of CUBES_PER_CHUNK cubes, extendable along N, `frames` and `flows` lzf-compressed,
    checksummed), filled in order a block of cubes at a time, with the video's content digest.
    `like` gives each field's row shape and dtype (a `VideoCubes` or a group of such datasets).

    Blocks should hold CUBES_PER_CHUNK cubes (all but the last), so that every chunk is
    written once."""

    def __init__(
        self, group: h5py.Group, count: int, like: Mapping[str, np.ndarray | h5py.Dataset]
    ):
        self.datasets: dict[str, h5py.Dataset] = {}
        self.digests: dict[str, IncrementalDigest] = {}
        for field in FIELDS:
            row, dtype = like[field].shape[1:], like[field].dtype
            self.datasets[field] = checked_dataset(
                group,
                field,
                shape=(count,) + row,
                dtype=dtype,
                chunks=(CUBES_PER_CHUNK,) + row,
                maxshape=(None,) + row,
                compression="lzf" if field in ("frames", "flows") else None,
            )
            self.digests[field] = IncrementalDigest(dtype, (count,) + row)
        self.rows = 0

    def write(self, cubes: Mapping[str, np.ndarray]) -> None:
        """Append the next block of cubes (every field, as many rows each)."""
        count = len(cubes["frame"])
        for field in FIELDS:
            values = np.asarray(cubes[field])
            if len(values) != count:
                raise ValueError(f"a block of {count} cubes has {len(values)} rows of {field}")
            self.digests[field].update(values)  # checks the dtype, shape and count first
            self.datasets[field][self.rows : self.rows + count] = values
        self.rows += count

    def hexdigest(self) -> str:
        """The video's content digest; fails unless every cube was written."""
        return combine_digests({field: self.digests[field].hexdigest() for field in FIELDS})


def write_video_cubes(
    key: str,
    group: h5py.Group,
    frames_path: str,
    flow_path: str,
    objects_path: str,
    settings: CubeSettings,
) -> str:
    """Stream the STCs of video `key` into `group`, CUBES_PER_CHUNK at a time; returns their
    content digest."""
    objects = read_objects(objects_path, key)
    with open_cache(frames_path) as frames, open_cache(flow_path) as flows:
        video = frames[key]["frames"]
        blocks = iter_video_cubes(
            BlockRows(video),
            BlockRows(flows[key]["flow"]),
            objects["frame"],
            objects["box"],
            settings,
            block=CUBES_PER_CHUNK,
        )
        writer = CubeWriter(group, len(objects["frame"]), allocate(0, settings, video.shape[3]))
        for cubes in blocks:
            writer.write(cubes)
    return writer.hexdigest()


def _staged_video(
    key: str,
    frames_path: str,
    flow_path: str,
    objects_path: str,
    settings: CubeSettings,
    staging: str,
) -> str:
    """In a worker: the video's cubes into a staging file of its own; returns its path."""
    path = Path(staging) / f"{quote(key, safe='')}.h5"
    with write_h5(path) as f:
        write_video_cubes(key, f, frames_path, flow_path, objects_path, settings)
    return str(path)


def _copy_staged(path: Path, group: h5py.Group) -> str:
    """Copy a staging file's cubes into `group` CUBES_PER_CHUNK at a time, as
    `write_video_cubes` writes them, then delete the file; returns their content digest."""
    with open_cache(path) as f:
        count = len(f["frame"])
        writer = CubeWriter(group, count, f)
        for first in range(0, count, CUBES_PER_CHUNK):
            rows = np.s_[first : first + CUBES_PER_CHUNK]
            writer.write({field: read_dataset(f[field], rows) for field in FIELDS})
    path.unlink()
    return writer.hexdigest()


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
            {
                "frames": frame_digests[key],
                "flow": found["flow"][key],
                "objects": found["objects"][key],
            }
        )
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
    work = f"STCs of {objects_path}"
    with ResumableCache(out_path, settings.to_json()) as cache:
        assert cache.file is not None
        cache.file.attrs.update(
            frames=settings.frames, size=settings.size, flow_units=settings.flow_units
        )
        cache.retain(shapes)
        keys = [key for key in shapes if not cache.is_done(key, input_digests[key])]
        bar = progress_bar(total=len(keys), unit="video", desc="stc", disable=not progress)

        def store(key: str, write: Callable[..., str]) -> None:
            split, name = key.split("/", 1)
            count, height, width, channels = shapes[key]
            with cache.writing(key) as group:
                digest = write(group=group)
                group.attrs.update(
                    name=name, split=split, num_frames=count, height=height, width=width,
                    channels=channels,
                )  # fmt: skip
            cache.finish(key, digest=digest, input_digest=input_digests[key])
            bar.update(1)

        inputs = {  # absolute: a Dask worker's directory may be another
            "frames_path": str(frames_path.absolute()),
            "flow_path": str(flow_path.absolute()),
            "objects_path": str(objects_path.absolute()),
            "settings": settings,
        }
        with bar:
            if (engine or Engine()).runs_here(n_jobs, len(keys)):  # straight into the output
                for key in keys:
                    try:
                        store(key, partial(write_video_cubes, key, **inputs))
                    except Exception as error:
                        error.add_note(f"{work}: raised while computing video '{key}'")
                        raise
                return out_path
            with tempfile.TemporaryDirectory(
                dir=out_path.parent, prefix=f"{out_path.name}.staging"
            ) as staging:
                task = partial(_staged_video, staging=str(Path(staging).absolute()), **inputs)
                results = map_videos(task, keys, n_jobs, what=work, engine=engine)
                with closing(results):  # a failure stops the worker pool at once
                    for key, path in results:
                        store(key, partial(_copy_staged, Path(path)))
    return out_path


def read_cubes(path: str | Path, key: str, rows: slice = slice(None)) -> VideoCubes:
    """The STCs `rows` (all by default) of video `key` (`<split>/<name>`) of stc.h5."""
    with open_cache(path) as f:
        if key not in f:
            raise KeyError(f"{path}: no video '{key}' (re-run the stc stage)")
        group = f[key]
        return VideoCubes({field: read_dataset(group[field], rows) for field in FIELDS})
