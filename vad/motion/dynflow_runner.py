"""The `dynamic_flow` stage's work: dynamic flow for every video of flow.h5, in parallel
(vad.parallel: worker processes or a Dask cluster; videos written in flow.h5's order, so the
content does not depend on either), resumable per video, written atomically to dynflow.h5
(one (T, H, W, 3) uint8 map per frame).

Each dynflow.h5 group carries the flow group's attrs, its own `digest` (of the maps as stored)
and `input_digest` (the flow video's `digest`): after an interruption, a finished video is kept
only if its flow still has that digest (a changed `flow.method` recomputes it).

Memory: a video's flows are read, and its maps computed and written, a block of windows at a
time (`vad.motion.dynamic_flow.stream_dynamic_flows`); a worker process streams its maps into
a staging file of its own, which this process, the only writer of the output, copies into it.
"""

from __future__ import annotations

import tempfile
from contextlib import closing
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from urllib.parse import quote

import h5py
import numpy as np

from vad.cache import (
    COMPLETE,
    DIGEST,
    INPUT_DIGEST,
    ResumableCache,
    RowWriter,
    copy_rows,
    input_video_digests,
    iter_videos,
    open_cache,
    read_dataset,
    video_key,
    write_h5,
)
from vad.motion.dynamic_flow import BLOCK_WINDOWS, stream_dynamic_flows
from vad.parallel import Engine, map_videos
from vad.progress import progress as progress_bar

FRAMES_PER_CHUNK = 4


@dataclass(frozen=True)
class DynamicFlowSettings:
    method: str = "ranksvm"
    window: int = 20
    C: float = 1.0
    encode_scale: float = 16.0
    encode_offset: float = 128.0
    output_scale: float | None = None  # None: the calibrated DEFAULT_OUTPUT_SCALE of the method


def video_dynamic_flow(
    key: str, flow_path: str, settings: DynamicFlowSettings, group: h5py.Group
) -> str:
    """Stream the dynamic flow of video `key` of flow.h5 into dataset `dynflow` of `group`, a
    block of windows at a time; returns its content digest."""
    with open_cache(flow_path) as f:
        flows = f[key]["flow"]
        count, height, width = flows.shape[:3]
        maps = stream_dynamic_flows(
            lambda start, stop: read_dataset(flows, np.s_[start:stop]),
            count,
            window=settings.window,
            method=settings.method,
            C=settings.C,
            a=settings.encode_scale,
            b=settings.encode_offset,
            name=f"{flow_path}:{key}",
            scale=settings.output_scale,
            block=BLOCK_WINDOWS,
        )
        shape = (count + 1, height, width, 3)
        writer = RowWriter(group, "dynflow", shape, np.uint8, FRAMES_PER_CHUNK)
        for block in maps:
            writer.write(block)
    return writer.hexdigest()


def _staged_video(key: str, flow_path: str, settings: DynamicFlowSettings, staging: str) -> str:
    """In a worker: the video's maps into a staging file of its own; returns its path."""
    path = Path(staging) / f"{quote(key, safe='')}.h5"
    with write_h5(path) as f:
        video_dynamic_flow(key, flow_path=flow_path, settings=settings, group=f)
    return str(path)


def _copy_staged(path: Path, group: h5py.Group) -> str:
    """Copy a staging file's maps into `group` a block at a time, then delete the file."""
    with open_cache(path) as f:
        digest = copy_rows(f["dynflow"], group, "dynflow", FRAMES_PER_CHUNK, BLOCK_WINDOWS)
    path.unlink()
    return digest


def _carried_attrs(flow_group: h5py.Group) -> dict:
    """The flow group's attrs that a dynflow group carries over (not its completion or digests)."""
    own = (COMPLETE, DIGEST, INPUT_DIGEST)
    return {key: value for key, value in flow_group.attrs.items() if key not in own}


def run_dynamic_flow_stage(
    flow_path: str | Path,
    out_path: str | Path,
    settings: DynamicFlowSettings,
    n_jobs: int = 1,
    progress: bool = True,
    engine: Engine | None = None,
) -> None:
    """Dynamic flow of every video of `flow_path` into `out_path` (resumable by content, atomic);
    `n_jobs` workers of `engine` (default: local processes)."""
    with open_cache(flow_path) as f:
        videos = {
            video_key(split, name): _carried_attrs(group) for split, name, group in iter_videos(f)
        }
        input_digests = input_video_digests(f, "flow")
    out_path = Path(out_path)
    with ResumableCache(out_path, asdict(settings)) as cache:
        cache.retain(videos)
        todo = [key for key in videos if not cache.is_done(key, input_digests[key])]
        bar = progress_bar(
            total=len(videos),
            initial=len(videos) - len(todo),
            desc="dynamic flow",
            unit="video",
            disable=not progress,
        )

        def store(key: str, write) -> None:
            with cache.writing(key) as group:
                digest = write(group=group)
                group.attrs.update(videos[key])
            cache.finish(key, digest=digest, input_digest=input_digests[key])
            bar.update(1)

        with bar:
            if (engine or Engine()).runs_here(n_jobs, len(todo)):  # straight into the output
                for key in todo:
                    store(key, partial(video_dynamic_flow, key, flow_path=str(flow_path),
                                       settings=settings))  # fmt: skip
                return
            with tempfile.TemporaryDirectory(
                dir=out_path.parent, prefix=f"{out_path.name}.staging"
            ) as staging:
                work = partial(  # absolute paths: a Dask worker's directory may be another
                    _staged_video,
                    flow_path=str(Path(flow_path).absolute()),
                    settings=settings,
                    staging=str(Path(staging).absolute()),
                )
                results = map_videos(
                    work, todo, n_jobs, what=f"dynamic flow of {flow_path}", engine=engine
                )
                with closing(results):  # a failure stops the worker pool at once
                    for key, path in results:
                        store(key, partial(_copy_staged, Path(path)))
