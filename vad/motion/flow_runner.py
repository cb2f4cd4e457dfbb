"""The flow stage: optical flow for every video of frames.h5 into flow.h5.

Classical methods run in parallel across videos (`n_jobs` spawned worker processes, one OpenCV
thread each); every worker opens frames.h5 read-only itself and returns float16 flows, and this
process alone writes the output. FlowNet2 runs in this process, batched on its device.
The output is resumable per video (`vad.cache.ResumableCache`): after an interruption, videos
already complete are kept, and `out_path` itself appears only once every video is done.

Layout of flow.h5: group `<split>/<name>` per video with dataset `flow`, (T-1)×h×w×2 float16
(u, v in pixels of the resized frames, from frame i to frame i+1), one chunk per frame pair,
group attrs `name`, `split`; file attrs `method`, `options`, `size` (JSON) and `settings`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from functools import partial
from pathlib import Path

import cv2
import h5py
import numpy as np
from tqdm import tqdm

from vad.cache import ResumableCache, chunked_dataset, iter_videos
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
from vad.parallel import map_videos

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


def _input_identity(f: h5py.File) -> dict:
    """What the partial output depends on besides the flow settings: the frame cache's own
    settings and every video's shape (a changed frames.h5 must not resume an old partial)."""
    shapes = {f"{split}/{name}": list(group["frames"].shape) for split, name, group in _videos(f)}
    return {"frames_settings": f.attrs.get("settings", ""), "shapes": shapes}


# ---------------------------------------------------------------------------------------------
# Reading frames


def _videos(f: h5py.File) -> Iterator[tuple[str, str, h5py.Group]]:
    for split, name, group in iter_videos(f):
        if "frames" not in group:
            raise ValueError(f"{f.filename}: video '{split}/{name}' has no 'frames' dataset")
        yield split, name, group


def read_frames(frames_path: str | Path, key: str) -> np.ndarray:
    """The T×H×W×C uint8 frames of video `key` (`<split>/<name>`) in frames.h5."""
    with h5py.File(frames_path, "r") as f:
        if key not in f or "frames" not in f[key]:
            raise ValueError(f"{frames_path}: no dataset '{key}/frames'")
        return f[key]["frames"][()]


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
    return video_flows(gray, estimator, on_pair).astype(np.float16)


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
    frames_path: Path, keys: list[str], method: str, options: dict, size: Size, n_jobs: int
) -> Iterator[tuple[str, np.ndarray]]:
    """Results in completion order from `n_jobs` spawned workers (see vad.parallel)."""
    task = partial(_worker_task, frames_path=str(frames_path), size=size)
    return map_videos(
        task,
        keys,
        n_jobs,
        initializer=_init_worker,
        initargs=(method, options),
        what=f"flow of {frames_path}",
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
) -> Iterator[tuple[str, np.ndarray]]:
    if method == FLOWNET2:
        return _flownet2_flows(frames_path, keys, options, size, advance)
    if n_jobs == 1 or len(keys) <= 1:
        return _in_process_flows(frames_path, keys, method, options, size, advance)
    return _pool_flows(frames_path, keys, method, options, size, min(n_jobs, len(keys)))


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
) -> Path:
    """Compute the flow of every video of `frames_path` into `out_path` (resumable, atomic).

    `size` is (width, height) or None for the native size. With `n_jobs` = 1 (or one video
    left) the work runs in this process with OpenCV's own threading; the results are the same.
    """
    frames_path, out_path = Path(frames_path), Path(out_path)
    if not frames_path.is_file():
        raise FileNotFoundError(f"frame cache not found: {frames_path}")
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    size = check_size(size, "flow")
    options = resolve_stage_options(method, options)

    with h5py.File(frames_path, "r") as f:
        videos = [(split, name, len(group["frames"])) for split, name, group in _videos(f)]
        identity = _input_identity(f)
    settings = {"method": method, "options": options, "size": size, "input": identity}

    with ResumableCache(out_path, settings) as cache:
        assert cache.file is not None
        cache.file.attrs["method"] = method
        cache.file.attrs["options"] = json.dumps(options, sort_keys=True)
        cache.file.attrs["size"] = json.dumps(size)
        pending = [(s, n, t) for s, n, t in videos if not cache.is_done(f"{s}/{n}")]
        total_pairs = sum(max(t - 1, 0) for _, _, t in pending)
        bar = tqdm(total=total_pairs, unit="pair", desc=f"flow {method}", disable=not progress)
        keys = [f"{split}/{name}" for split, name, _ in pending]
        flows = _produce_flows(frames_path, keys, method, options, size, n_jobs, bar.update)
        with bar, closing(flows):  # closing: a failure stops the worker pool at once
            finished_pairs = 0
            for done, (key, flow) in enumerate(flows, start=1):
                check_finite(flow, f"{frames_path}: video '{key}'")
                split, name = key.split("/", 1)
                group = cache.start(key)
                chunked_dataset(group, "flow", flow, frames_per_chunk=1)
                group.attrs["name"] = name
                group.attrs["split"] = split
                cache.finish(key)
                finished_pairs += len(flow)
                bar.update(finished_pairs - bar.n)  # pool workers report whole videos only
                bar.set_postfix_str(f"{done}/{len(pending)} videos")
    return out_path


# ---------------------------------------------------------------------------------------------
# Benchmarks (used by the `vad bench` command)


def _benchmark_clips(frames_path: str | Path, keys: list[str], n_pairs: int) -> list[np.ndarray]:
    """Runs of consecutive raw frames from `keys`, in order, holding `n_pairs` pairs in all."""
    clips, wanted = [], n_pairs
    for key in keys:
        if wanted <= 0:
            break
        frames = read_frames(frames_path, key)[: wanted + 1]
        if len(frames) >= 2:
            clips.append(frames)
            wanted -= len(frames) - 1
    if wanted > 0:
        raise ValueError(f"{frames_path}: videos {keys} hold fewer than {n_pairs} frame pairs")
    return clips


def _time_classical(
    clips: list[np.ndarray], size: Size, method: str, options: dict
) -> tuple[float, list[np.ndarray]]:
    """Seconds for `method` over the pairs of `clips`, and the flows it produced."""
    grays = [prepare_frames(clip, size) for clip in clips]
    estimator = make_flow_estimator(method, options)
    estimator(grays[0][0], grays[0][1])  # warm-up: allocations, thread pool start
    start = time.perf_counter()
    flows = [video_flows(gray, estimator) for gray in grays]
    return time.perf_counter() - start, flows


def _time_flownet2(
    clips: list[np.ndarray], size: Size, options: dict
) -> tuple[float, list[np.ndarray]]:
    from vad.motion.flownet2 import FlowNet2Estimator

    rgbs = [prepare_rgb_frames(clip, size) for clip in clips]
    estimator = FlowNet2Estimator(
        options["checkpoint"], device=options["device"], batch_size=options["batch_size"]
    )
    batch = int(options["batch_size"])
    estimator(rgbs[0][:1], rgbs[0][1:2])  # warm-up
    start = time.perf_counter()
    flows = []
    for rgb in rgbs:
        parts = []
        for first in range(0, len(rgb) - 1, batch):
            stop = min(first + batch, len(rgb) - 1)
            parts.append(estimator(rgb[first:stop], rgb[first + 1 : stop + 1]))
        flows.append(np.concatenate(parts).astype(np.float32))
    return time.perf_counter() - start, flows


MOVING_PX = 0.5  # reference flow magnitude above which a pixel counts as moving


def end_point_difference(flows: list[np.ndarray], reference: list[np.ndarray]) -> dict:
    """Mean end-point distance (pixels) between two methods' flows of the same pairs, over all
    pixels and over the pixels whose reference flow exceeds MOVING_PX."""
    ours, ref = np.concatenate(flows), np.concatenate(reference)
    distance = np.linalg.norm(ours - ref, axis=-1)
    moving = np.linalg.norm(ref, axis=-1) > MOVING_PX
    return {
        "mean_all_px": float(distance.mean()),
        "mean_moving_px": float(distance[moving].mean()) if moving.any() else None,
        "moving_fraction": float(moving.mean()),
        "moving_threshold_px": MOVING_PX,
    }


def time_flow_methods(
    frames_path: str | Path,
    keys: list[str],
    size: Size,
    methods: dict[str, dict],
    n_pairs: int,
    reference: str | None = None,
) -> dict:
    """Frame pairs per second of each method on the same `n_pairs` pairs, in this process.

    `methods` maps a label to options; the method is the label up to its first ':'
    (e.g. {"tvl1": {}, "tvl1:eps0.05": {"epsilon": 0.05}, "dis:fast": {"preset": "fast"}}).
    Frame preparation and one warm-up pair are not timed. With `reference` (a label of
    `methods`), every other method also gets its `end_point_difference` to that method's flows.
    """
    if reference is not None and reference not in methods:
        raise ValueError(f"reference {reference!r} is not one of the methods {list(methods)}")
    size = check_size(size, "flow")
    clips = _benchmark_clips(frames_path, keys, n_pairs)
    results, flows = {}, {}
    for label, options in methods.items():
        method = label.split(":", 1)[0]
        resolved = resolve_stage_options(method, options)
        if method == FLOWNET2:
            seconds, flows[label] = _time_flownet2(clips, size, resolved)
        else:
            seconds, flows[label] = _time_classical(clips, size, method, resolved)
        results[label] = {
            "method": method,
            "options": resolved,
            "size": size,
            "pairs": n_pairs,
            "seconds": seconds,
            "seconds_per_pair": seconds / n_pairs,
            "pairs_per_second": n_pairs / seconds,
            "opencv_threads": cv2.getNumThreads(),
        }
    if reference is not None:
        for label in methods:
            if label != reference:
                difference = end_point_difference(flows[label], flows[reference])
                results[label]["end_point_difference"] = {"to": reference, **difference}
    return results


def _time_sequential_loop(
    frames_path: str | Path, keys: list[str], method: str, options: dict | None, size: Size
) -> tuple[float, int]:
    """Seconds and pairs of one plain loop over `keys` in this process (no HDF5 writes)."""
    start = time.perf_counter()
    estimator = make_flow_estimator(method, options)
    pairs = sum(len(compute_video_flow(frames_path, key, estimator, size)) for key in keys)
    return time.perf_counter() - start, pairs


def time_parallel_vs_sequential(
    frames_path: str | Path,
    out_path: str | Path,
    method: str,
    options: dict | None,
    size: Size,
    n_jobs: int,
) -> dict:
    """Seconds of a fresh `run_flow_stage(n_jobs)` against a plain sequential loop over the same
    videos in this process, the loop run twice: with OpenCV's own threading (all cores) and
    with one OpenCV thread, the setting each of the stage's workers runs with.

    `speedup_vs_single_thread_loop` and `speedup_vs_threaded_loop` are loop / stage seconds.
    """
    if method == FLOWNET2:
        raise ValueError("time_parallel_vs_sequential compares classical methods only")
    out_path = Path(out_path)
    for stale in (out_path, out_path.with_name(out_path.name + ".partial")):
        stale.unlink(missing_ok=True)  # a resumable partial would skip work

    start = time.perf_counter()
    run_flow_stage(frames_path, out_path, method, options, size, n_jobs, progress=False)
    parallel = time.perf_counter() - start

    with h5py.File(frames_path, "r") as f:
        keys = [f"{split}/{name}" for split, name, _ in _videos(f)]
    opencv_threads = cv2.getNumThreads()
    threaded, pairs = _time_sequential_loop(frames_path, keys, method, options, size)
    cv2.setNumThreads(1)  # this process only; the stage's workers were spawned, not forked
    try:
        single, _ = _time_sequential_loop(frames_path, keys, method, options, size)
    finally:
        cv2.setNumThreads(opencv_threads)

    return {
        "method": method,
        "options": resolve_stage_options(method, options),
        "size": check_size(size, "flow"),
        "n_jobs": n_jobs,
        "videos": len(keys),
        "pairs": pairs,
        "parallel_seconds": parallel,
        "sequential_threaded_seconds": threaded,
        "sequential_threaded_opencv_threads": opencv_threads,
        "sequential_single_thread_seconds": single,
        "speedup_vs_threaded_loop": threaded / parallel,
        "speedup_vs_single_thread_loop": single / parallel,
    }
