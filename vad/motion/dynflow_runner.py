"""The `dynamic_flow` stage's work: dynamic flow for every video of flow.h5, in parallel,
resumable per video, written atomically to dynflow.h5 (one (T, H, W, 3) uint8 map per frame)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from vad.cache import ResumableCache, chunked_dataset, iter_videos, video_key
from vad.motion.dynamic_flow import dynamic_flows
from vad.parallel import map_videos


@dataclass(frozen=True)
class DynamicFlowSettings:
    method: str = "ranksvm"
    window: int = 20
    C: float = 1.0
    encode_scale: float = 16.0
    encode_offset: float = 128.0
    output_scale: float | None = None  # None: the calibrated DEFAULT_OUTPUT_SCALE of the method


def video_dynamic_flow(key: str, flow_path: str, settings: DynamicFlowSettings) -> np.ndarray:
    with h5py.File(flow_path, "r") as f:
        flows = f[key]["flow"][()].astype(np.float32)
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


def run_dynamic_flow_stage(
    flow_path: str | Path,
    out_path: str | Path,
    settings: DynamicFlowSettings,
    n_jobs: int = 1,
    progress: bool = True,
) -> None:
    with h5py.File(flow_path, "r") as f:
        videos = {
            video_key(split, name): dict(group.attrs) for split, name, group in iter_videos(f)
        }
    with ResumableCache(out_path, {**asdict(settings), "flow": str(flow_path)}) as cache:
        todo = [key for key in videos if not cache.is_done(key)]
        work = partial(video_dynamic_flow, flow_path=str(flow_path), settings=settings)
        bar = tqdm(
            total=len(videos),
            initial=len(videos) - len(todo),
            desc="dynamic flow",
            unit="video",
            disable=not progress,
        )
        with bar:
            for key, maps in map_videos(work, todo, n_jobs):
                group = cache.start(key)
                chunked_dataset(group, "dynflow", maps, frames_per_chunk=4)
                group.attrs.update({k: v for k, v in videos[key].items() if k != "complete"})
                cache.finish(key)
                bar.update(1)
