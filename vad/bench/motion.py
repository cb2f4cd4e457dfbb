"""`python -m vad bench motion`: preprocessing throughput, written to reports/bench/motion.json.

On a dataset (real Ped2 for the numbers in RESULTS.md), at the flow size of params.yaml:
1. frame pairs per second of every flow method on the same pairs, in one process;
   and each method's mean end-point difference to TV-L1 at OpenCV's default quality on them;
2. the parallel flow stage against one sequential loop over the same pairs, the loop run with
   OpenCV's own threading and with one OpenCV thread (TV-L1 epsilon 0.05 and DIS medium);
3. the whole dataset through the flow stage for the fast methods (measured), and for TV-L1 at
   OpenCV's default quality measured with `measure_tvl1_default` (about 40 minutes for Ped2 on
   2 cores), else extrapolated from its measured rate and the measured parallel ratio;
4. the dynamic-flow stage over the whole dataset for each method (measured);
5. exact RankSVM against the scikit-learn pairwise-difference reference on the same windows;
and the peak resident memory of this process and of its worker processes.
Every number in one JSON comes from one run, so ratios are comparable.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from vad.bench.flow_timing import time_flow_methods, time_parallel_vs_sequential
from vad.bench.rank_svm import benchmark_rank_svm
from vad.cache import atomic_output, open_cache, read_dataset
from vad.datasets import open_dataset
from vad.frame_cache import video_keys, write_frame_cache
from vad.motion.dynflow_runner import DynamicFlowSettings, run_dynamic_flow_stage
from vad.motion.flow_runner import run_flow_stage

FLOW_SIZE = (420, 280)
PAIR_RATE_METHODS = {
    "tvl1": {},
    "tvl1:eps0.05": {"epsilon": 0.05},
    "dis:ultrafast": {"preset": "ultrafast"},
    "dis:fast": {"preset": "fast"},
    "dis:medium": {"preset": "medium"},
    "farneback": {},
}
FULL_RUN_METHODS = {
    "dis:medium": ("dis", {"preset": "medium"}),
    "farneback": ("farneback", {}),
    "tvl1:eps0.05": ("tvl1", {"epsilon": 0.05}),
}
PARALLEL_METHODS = {
    "tvl1:eps0.05": ("tvl1", {"epsilon": 0.05}),
    "dis:medium": ("dis", {"preset": "medium"}),
}
N_JOBS = 2


def peak_memory_mb() -> dict:
    """Peak resident set size (Linux reports kilobytes) of this process and of its children."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"this_process_mb": round(own, 1), "largest_worker_mb": round(children, 1)}


def timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def run_motion_benchmark(
    name: str,
    root: str,
    out: str,
    layout: str = "auto",
    videos: int = 0,
    windows: int = 10,
    measure_tvl1_default: bool = False,
) -> dict:
    dataset = open_dataset(name, root or None, layout=layout)
    if videos:
        dataset = replace(dataset, train=dataset.train[:videos], test=dataset.test[:videos])
    n_frames = sum(v.num_frames for v in dataset.videos)
    report: dict = {
        "dataset": name,
        "videos": len(dataset.videos),
        "frames": n_frames,
        "flow_size": list(FLOW_SIZE),
        "n_jobs": N_JOBS,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="vad-bench-") as tmp:
        work = Path(tmp)
        frames = work / "frames.h5"
        report["frames_seconds"] = timed(
            write_frame_cache, dataset, frames, work / "gt.h5", progress=False
        )
        keys = video_keys(frames)

        report["flow_pairs_per_second"] = time_flow_methods(
            frames, keys[:2], FLOW_SIZE, PAIR_RATE_METHODS, n_pairs=20, reference="tvl1"
        )
        subset = replace(dataset, train=dataset.train[:2], test=dataset.test[:2])
        write_frame_cache(subset, work / "subset.h5", work / "subset_gt.h5", progress=False)
        report["parallel_vs_sequential"] = {
            label: time_parallel_vs_sequential(
                work / "subset.h5", work / "subset_flow.h5", method, options, FLOW_SIZE, N_JOBS
            )
            for label, (method, options) in PARALLEL_METHODS.items()
        }

        pairs = n_frames - len(dataset.videos)
        full: dict = {}
        full_runs = dict(FULL_RUN_METHODS)
        if measure_tvl1_default:
            full_runs["tvl1"] = ("tvl1", {})
        for label, (method, options) in full_runs.items():
            out_path = work / f"flow_{label.replace(':', '_')}.h5"
            seconds = timed(
                run_flow_stage, frames, out_path, method, options, FLOW_SIZE, N_JOBS, progress=False
            )
            full[label] = {"seconds": seconds, "pairs": pairs, "measured": True}
            if label != "dis:medium":
                out_path.unlink()
        if not measure_tvl1_default:
            rate = report["flow_pairs_per_second"]["tvl1"]["pairs_per_second"]
            speedup = report["parallel_vs_sequential"]["tvl1:eps0.05"]["speedup_vs_threaded_loop"]
            full["tvl1"] = {
                "seconds": pairs / rate / speedup,
                "pairs": pairs,
                "measured": False,
                "note": "extrapolated: pairs / threaded single-process rate / measured speed-up "
                "of the stage over the threaded loop (TV-L1 epsilon 0.05)",
            }
        report["flow_full_dataset"] = full

        flow_path = work / "flow_dis_medium.h5"
        dynamic: dict = {}
        for method in ("ranksvm", "approx"):
            seconds = timed(
                run_dynamic_flow_stage,
                flow_path,
                work / f"dyn_{method}.h5",
                DynamicFlowSettings(method=method),
                N_JOBS,
                progress=False,
            )
            dynamic[method] = {
                "seconds": seconds,
                "dynamic_flows": n_frames,
                "dynamic_flows_per_second": n_frames / seconds,
            }
        report["dynamic_flow_full_dataset"] = dynamic
        report["flow_plus_dynamic_flow_seconds"] = {
            label: entry["seconds"] + dynamic["ranksvm"]["seconds"] for label, entry in full.items()
        }

        with open_cache(flow_path) as f:
            flows = read_dataset(f[keys[0]]["flow"]).astype(np.float32)
        report["ranksvm_vs_sklearn"] = benchmark_rank_svm(
            flows, windows_timed=windows, name=keys[0]
        )
    report["peak_memory"] = peak_memory_mb()
    with atomic_output(out) as tmp_path:
        tmp_path.write_text(json.dumps(report, indent=2) + "\n")
    return report
