"""`python -m vad bench score --run <bundle>`: streaming scoring throughput of every scorer of a
run bundle, written to reports/bench/score.json.

For each frame size (Ped2's 360x240 and Avenue's 640x360), one synthetic test clip of the
embedded scene is rendered at that size and written as an MJPG AVI file; each scorer then scores
it through `vad score`'s own loop (decoding, the scorer, the CSV/JSONL rows, events and the
annotated MP4) in this process, pinned to 2 CPU cores. Reported per scorer and size: frames per
second over the whole loop and the share of its time in decoding, flow, dynamic flow, object
boxes (velocity), model, frame preparation and writing. Speed depends on the run's sizes (frame,
flow and patch grid), model architecture and (velocity) object settings, not on its training
budget; the JSON records the bundle's params.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import cv2

from vad.cache import atomic_output
from vad.datasets import open_dataset
from vad.methods.base import StreamingUnsupported
from vad.serve.bundle import load_bundle
from vad.serve.loop import score_source
from vad.serve.scorers.build import build_scorer
from vad.serve.source import open_sources

SIZES = {"ped2": (360, 240), "avenue": (640, 360)}
CORES = 2


def write_clip(path: Path, size: tuple[int, int], frames: int, seed: int = 0) -> Path:
    """A synthetic test clip of `frames` frames at `size` as an MJPG AVI file."""
    options = {
        "seed": seed,
        "width": size[0],
        "height": size[1],
        "train_videos": 0,
        "test_videos": 1,
        "frames_per_video": frames,
    }
    video = open_dataset("synthetic", None, options=options).test[0]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    for frame in video.frames():
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def shares(seconds: dict[str, float], parts: dict[str, float]) -> dict[str, float]:
    """Fractions of the time spent: decode, the scorer's parts (flow, dynamic_flow, objects:
    the velocity method's boxes, model, frames: conversions and moving-patch masks), other
    scoring work, write. A fused model's
    parts run in parallel threads, so its part times are summed over them (CPU time)."""
    split = {"decode": seconds["decode"], **parts}
    split["score_other"] = max(seconds["score"] - sum(parts.values()), 0.0)
    split["write"] = seconds["write"]
    total = sum(split.values())
    return {key: round(value / total, 4) for key, value in split.items()}


def run_score_benchmark(
    bundle_path: str | Path, out: str | Path, frames: int = 300, recipe: str = ""
) -> dict:
    """Time every scorer of the bundle at each of SIZES; `recipe` says how the bundle was made."""
    bundle = load_bundle(bundle_path)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:CORES]))
    report: dict = {
        "command": f"python -m vad bench score --run {bundle_path} --frames {frames}",
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": platform.processor() or platform.machine(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "threads_per_scorer": bundle.manifest["serve"].get("threads", 1),
        "frames_per_size": frames,
        "sizes": {name: list(size) for name, size in SIZES.items()},
        "bundle": {
            "recipe": recipe,
            "params": {
                key: bundle.params.get(key)
                for key in (
                    "frames",
                    "flow",
                    "dynamic_flow",
                    "baseline",
                    "patches",
                    "gmfc_vae",
                    "objects",
                    "velocity",
                )
            },
            "training_frames": bundle.manifest["training_frames"],
            "note": "speed depends on the sizes and architecture above, not on the training "
            "budget (epochs, patches) the models were trained with",
        },
        "methods": {},
    }
    with tempfile.TemporaryDirectory(prefix="vad-bench-score-") as tmp:
        folder = Path(tmp)
        clips = {
            name: write_clip(folder / f"{name}.avi", size, frames) for name, size in SIZES.items()
        }
        for scorer_name in bundle.scorers:
            entry = bundle.entry(scorer_name)
            result = report["methods"].setdefault(scorer_name, {})
            for name, clip in clips.items():
                try:
                    scorer = build_scorer(bundle, scorer_name)
                except StreamingUnsupported as error:
                    result["error"] = str(error)
                    break
                (source,) = open_sources(str(clip))
                run = score_source(
                    source,
                    scorer,
                    entry,
                    bundle.params,
                    bundle.manifest["training_frames"],
                    bundle.manifest["serve"],
                    folder / f"out-{scorer_name}-{name}",
                    progress=False,
                )
                width, height = SIZES[name]
                result[f"{width}x{height}"] = {
                    "dataset_size": name,
                    "frames": run.frames,
                    "fps": round(run.fps, 2),
                    "seconds": round(sum(run.seconds.values()), 3),
                    "shares": shares(run.seconds, run.score_parts),
                }
                print(f"bench score: {scorer_name} at {width}x{height}: {run.fps:.1f} fps")
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    with atomic_output(out) as tmp_file:
        tmp_file.write_text(json.dumps(report, indent=2) + "\n")
    return report
