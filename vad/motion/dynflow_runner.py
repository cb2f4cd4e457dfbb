"""The `dynamic_flow` stage's work: dynamic flow for every video of flow.h5, in parallel
(vad.parallel: worker processes or a Dask cluster; videos written in flow.h5's order, so the
file's bytes do not depend on either), resumable per video, written atomically to dynflow.h5
(one (T, H, W, 3) uint8 map per frame).

Each dynflow.h5 group carries the flow group's attrs, its own `digest` (of the maps as stored)
and `input_digest` (the flow video's `digest`): after an interruption, a finished video is kept
only if its flow still has that digest (a changed `flow.method` recomputes it).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from vad.cache import (
    COMPLETE,
    DIGEST,
    INPUT_DIGEST,
    ResumableCache,
    array_digest,
    chunked_dataset,
    input_video_digests,
    iter_videos,
    open_cache,
    read_dataset,
    video_key,
)
from vad.motion.dynamic_flow import dynamic_flows
from vad.parallel import Engine, map_videos
from vad.progress import progress as progress_bar


@dataclass(frozen=True)
class DynamicFlowSettings:
    method: str = "ranksvm"
    window: int = 20
    C: float = 1.0
    encode_scale: float = 16.0
    encode_offset: float = 128.0
    output_scale: float | None = None  # None: the calibrated DEFAULT_OUTPUT_SCALE of the method


def video_dynamic_flow(key: str, flow_path: str, settings: DynamicFlowSettings) -> np.ndarray:
    with open_cache(flow_path) as f:
        flows = read_dataset(f[key]["flow"]).astype(np.float32)
    return dynamic_flows(
        flows,
        window=settings.window,
        method=settings.method,
        C=settings.C,
        a=settings.encode_scale,
        b=settings.encode_offset,
        name=f"{flow_path}:{key}",
        scale=settings.output_scale,
    )


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
    with ResumableCache(out_path, asdict(settings)) as cache:
        cache.retain(videos)
        todo = [key for key in videos if not cache.is_done(key, input_digests[key])]
        # absolute: a Dask worker's directory may be another
        work = partial(video_dynamic_flow, flow_path=str(Path(flow_path).absolute()),
                       settings=settings)  # fmt: skip
        bar = progress_bar(
            total=len(videos),
            initial=len(videos) - len(todo),
            desc="dynamic flow",
            unit="video",
            disable=not progress,
        )
        results = map_videos(
            work, todo, n_jobs, what=f"dynamic flow of {flow_path}", engine=engine
        )
        with bar, closing(results):  # closing: a failure stops the workers at once
            for key, maps in results:
                group = cache.start(key)
                chunked_dataset(group, "dynflow", maps, frames_per_chunk=4)
                group.attrs.update(videos[key])
                cache.finish(key, digest=array_digest(maps), input_digest=input_digests[key])
                bar.update(1)
