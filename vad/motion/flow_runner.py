"""The flow stage: optical flow for every video of frames.h5 into flow.h5.

Classical methods run in parallel across videos (`n_jobs` spawned worker processes, one OpenCV
thread each, or the workers of a Dask cluster: vad.parallel's `engine`); every worker opens
frames.h5 read-only itself and returns float16 flows, and this process alone writes the output,
video by video in the order of frames.h5 whichever worker finishes first. FlowNet2 runs in
this process, batched on its device.
The output is resumable per video (`vad.cache.ResumableCache`): after an interruption, a video
already complete is kept if its frames still have the content digest it was computed from, and
`out_path` itself appears only once every video is done.

Layout of flow.h5: group `<split>/<name>` per video with dataset `flow`, (T-1)×h×w×2 float16
(u, v in pixels of the resized frames, from frame i to frame i+1), one chunk per frame pair,
group attrs `name`, `split`, `digest` (of the flow as stored) and `input_digest` (the frames
video's `digest`); file attrs `method`, `options`, `size` (JSON) and `settings`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import closing
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from vad.cache import (
    ResumableCache,
    array_digest,
    chunked_dataset,
    input_video_digests,
    iter_videos,
    open_cache,
    read_dataset,
    video_key,
)
from vad.motion.flow import (
    METHODS,
    check_finite,
    check_size,
    make_flow_estimator,
    prepare_frames,
    prepare_rgb_frames,
    resolve_options,
    video_flows,
)
from vad.parallel import Engine, map_videos
from vad.progress import progress as progress_bar

FLOWNET2 = "flownet2"
ALL_METHODS = METHODS + (FLOWNET2,)
FLOWNET2_DEFAULTS = {"checkpoint": None, "device": "auto", "batch_size": 4}

Size = tuple[int, int] | None
Advance = Callable[[int], object]  # progress callback: n more frame pairs done


# ---------------------------------------------------------------------------------------------
# Settings


def resolve_stage_options(method: str, options: dict | None) -> dict:
    """All options of `method` (classical: OpenCV defaults filled in), validated."""
    if method not in ALL_METHODS:
        raise ValueError(
            f"unknown optical flow method {method!r}; valid methods: {', '.join(ALL_METHODS)}"
        )
    if method != FLOWNET2:
        return resolve_options(method, options)
    options = dict(options or {})
    unknown = sorted(set(options) - set(FLOWNET2_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown flownet2 option(s) {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(FLOWNET2_DEFAULTS)}"
        )
    resolved = {**FLOWNET2_DEFAULTS, **options}
    if not resolved["checkpoint"]:
        raise ValueError("flownet2 option 'checkpoint' is required (path to the weights file)")
    return resolved


# ---------------------------------------------------------------------------------------------
# Reading frames


def _videos(f: h5py.File) -> Iterator[tuple[str, str, h5py.Group]]:
    for split, name, group in iter_videos(f):
        if "frames" not in group:
            raise ValueError(f"{f.filename}: video '{split}/{name}' has no 'frames' dataset")
        yield split, name, group


def read_frames(frames_path: str | Path, key: str) -> np.ndarray:
    """The T×H×W×C uint8 frames of video `key` (`<split>/<name>`) in frames.h5."""
    with open_cache(frames_path) as f:
        if key not in f or "frames" not in f[key]:
            raise ValueError(f"{frames_path}: no dataset '{key}/frames'")
        return read_dataset(f[key]["frames"])


def compute_video_flow(
    frames_path: str | Path,
    key: str,
    estimator: Callable[[np.ndarray, np.ndarray], np.ndarray],
    size: Size,
    on_pair: Callable[[], object] | None = None,
) -> np.ndarray:
    """Read one video, make it gray at `size`, return its (T-1)×h×w×2 float16 flows."""
    where = f"{frames_path}: video '{key}'"
    gray = prepare_frames(read_frames(frames_path, key), size, where=where)
    return as_stored(video_flows(gray, estimator, on_pair))


def as_stored(flows: np.ndarray) -> np.ndarray:
    """Flows as flow.h5 stores them (float16), which is what the dynamic flow is computed from."""
    return flows.astype(np.float16)


# ---------------------------------------------------------------------------------------------
# Flow producers: in-process, worker pool, FlowNet2. Each yields (key, float16 flows).

_worker_estimator: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def _init_worker(method: str, options: dict) -> None:
    global _worker_estimator
    _worker_estimator = make_flow_estimator(method, options)


def _worker_task(key: str, frames_path: str, size: Size) -> np.ndarray:
    assert _worker_estimator is not None
    return compute_video_flow(frames_path, key, _worker_estimator, size)


def _in_process_flows(
    frames_path: Path, keys: list[str], method: str, options: dict, size: Size, advance: Advance
) -> Iterator[tuple[str, np.ndarray]]:
    estimator = make_flow_estimator(method, options)
    for key in keys:
        yield key, compute_video_flow(frames_path, key, estimator, size, lambda: advance(1))


def _pool_flows(
    frames_path: Path,
    keys: list[str],
    method: str,
    options: dict,
    size: Size,
    n_jobs: int,
    engine: Engine,
) -> Iterator[tuple[str, np.ndarray]]:
    """Results in the order of `keys` from `n_jobs` workers of `engine` (see vad.parallel);
    the workers get frames.h5's absolute path (a Dask worker's directory may be another)."""
    task = partial(_worker_task, frames_path=str(frames_path.absolute()), size=size)
    return map_videos(
        task,
        keys,
        n_jobs,
        initializer=_init_worker,
        initargs=(method, options),
        what=f"flow of {frames_path}",
        engine=engine,
    )


def _flownet2_flows(
    frames_path: Path, keys: list[str], options: dict, size: Size, advance: Advance
) -> Iterator[tuple[str, np.ndarray]]:
    from vad.motion.flownet2 import FlowNet2Estimator  # torch: imported only when used

    estimator = FlowNet2Estimator(
        options["checkpoint"], device=options["device"], batch_size=options["batch_size"]
    )
    batch = int(options["batch_size"])
    for key in keys:
        where = f"{frames_path}: video '{key}'"
        rgb = prepare_rgb_frames(read_frames(frames_path, key), size, where=where)
        pairs = max(len(rgb) - 1, 0)
        flows = np.empty((pairs,) + rgb.shape[1:3] + (2,), np.float16)
        for start in range(0, pairs, batch):
            stop = min(start + batch, pairs)
            flows[start:stop] = estimator(rgb[start:stop], rgb[start + 1 : stop + 1])
            advance(stop - start)
        yield key, flows


def _produce_flows(
    frames_path: Path,
    keys: list[str],
    method: str,
    options: dict,
    size: Size,
    n_jobs: int,
    advance: Advance,
    engine: Engine,
) -> Iterator[tuple[str, np.ndarray]]:
    if method == FLOWNET2:
        return _flownet2_flows(frames_path, keys, options, size, advance)
    if engine.runs_here(n_jobs, len(keys)):
        return _in_process_flows(frames_path, keys, method, options, size, advance)
    return _pool_flows(frames_path, keys, method, options, size, min(n_jobs, len(keys)), engine)


# ---------------------------------------------------------------------------------------------
# The stage


def run_flow_stage(
    frames_path: str | Path,
    out_path: str | Path,
    method: str,
    options: dict | None,
    size: Size,
    n_jobs: int,
    progress: bool = True,
    engine: Engine | None = None,
) -> Path:
    """Compute the flow of every video of `frames_path` into `out_path` (resumable, atomic).

    `size` is (width, height) or None for the native size. With `n_jobs` = 1 (or one video
    left, and no Dask cluster address in `engine`) the work runs in this process with OpenCV's
    own threading; the results, and the file's bytes, are the same for any n_jobs and engine.
    FlowNet2 always runs here (on its device).
    """
    engine = engine or Engine()
    frames_path, out_path = Path(frames_path), Path(out_path)
    if not frames_path.is_file():
        raise FileNotFoundError(f"frame cache not found: {frames_path}")
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    size = check_size(size, "flow")
    options = resolve_stage_options(method, options)

    with open_cache(frames_path) as f:
        videos = {video_key(split, name): len(group["frames"]) for split, name, group in _videos(f)}
        input_digests = input_video_digests(f, "frames")
    settings = {"method": method, "options": options, "size": size}

    with ResumableCache(out_path, settings) as cache:
        assert cache.file is not None
        cache.file.attrs["method"] = method
        cache.file.attrs["options"] = json.dumps(options, sort_keys=True)
        cache.file.attrs["size"] = json.dumps(size)
        cache.retain(videos)
        keys = [key for key in videos if not cache.is_done(key, input_digests[key])]
        total_pairs = sum(max(videos[key] - 1, 0) for key in keys)
        bar = progress_bar(
            total=total_pairs, unit="pair", desc=f"flow {method}", disable=not progress
        )
        flows = _produce_flows(
            frames_path, keys, method, options, size, n_jobs, bar.update, engine
        )
        with bar, closing(flows):  # closing: a failure stops the worker pool at once
            finished_pairs = 0
            for done, (key, flow) in enumerate(flows, start=1):
                check_finite(flow, f"{frames_path}: video '{key}'")
                split, name = key.split("/", 1)
                group = cache.start(key)
                chunked_dataset(group, "flow", flow, frames_per_chunk=1)
                group.attrs["name"] = name
                group.attrs["split"] = split
                cache.finish(key, digest=array_digest(flow), input_digest=input_digests[key])
                finished_pairs += len(flow)
                bar.update(finished_pairs - bar.n)  # pool workers report whole videos only
                bar.set_postfix_str(f"{done}/{len(keys)} videos")
    return out_path
