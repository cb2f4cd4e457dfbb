"""Flow-method benchmarks for `vad bench motion`: frame pairs per second of each method on the
same pairs, end-point differences between methods, and the parallel flow stage against a plain
sequential loop. Kept out of the stage's module so that editing a benchmark re-runs no stage.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from vad.frame_cache import video_keys
from vad.motion.flow import (
    check_size,
    make_flow_estimator,
    prepare_frames,
    prepare_rgb_frames,
    video_flows,
)
from vad.motion.flow_runner import (
    FLOWNET2,
    Size,
    as_stored,
    read_frames,
    resolve_stage_options,
    run_flow_stage,
)


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
    pairs = 0
    for key in keys:
        gray = prepare_frames(read_frames(frames_path, key), size)
        pairs += len(as_stored(video_flows(gray, estimator)))
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

    keys = video_keys(frames_path)
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
