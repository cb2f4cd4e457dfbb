"""`python -m vad bench velocity <dataset> <root>`: fitting and scoring times of the velocity
method, written to reports/bench/velocity.json, with an ablation of its attributes.

The frames, DIS flow (params `flow`) and objects (params `objects`, the dataset's preset) are
computed into a temporary folder unless `--frames/--flow/--objects` name existing caches; their
time is not counted. Then, in this process with params.yaml's `velocity` settings: prepare
(features of every object; its time per frame counts as scoring), train (exact kNN with its
leave-one-video-out calibration) and score (kNN, frame scores, maps and explanations). Scoring
speed = test frames / (their share of the feature time + the score time). Exact kNN is
scikit-learn's; faiss-cpu is measured only when it is installed.

The ablation scores the test videos for each variant of `velocity` (attributes, border
objects) and reports frame AUCs under the strict protocol (no smoothing) and the paper's
(Gaussian sigma 3): for information, not for choosing the defaults.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from vad.cache import atomic_output, iter_videos, open_cache
from vad.config import Section, load_params
from vad.datasets import open_dataset
from vad.eval.metrics import frame_auc_macro, frame_auc_micro
from vad.eval.postprocess import Protocol
from vad.frame_cache import load_ground_truth, write_frame_cache
from vad.methods.base import Inputs
from vad.methods.registry import get_method
from vad.motion.flow_runner import run_flow_stage
from vad.objects.runner import run_objects_stage
from vad.objects.settings import resolve_settings

ABLATION = {
    "defaults": {},
    "window 1 (one flow, as the paper)": {"window": 1},
    "window 5": {"window": 5},
    "window 13": {"window": 13},
    "speed alone (no size)": {"attributes": ["speed"]},
    "speed and size scored apart": {"attributes": ["speed", "size"]},
    "direction+speed+size": {"attributes": ["direction+speed+size"]},
    "speed+size+position": {"attributes": ["speed+size+position"]},
    "speed+size and direction": {"attributes": ["speed+size", "direction"]},
    "k 5": {"k": 5},
    "border objects skipped": {"border_objects": "skip"},
    "Gaussian mixture (2)": {"density": "gmm"},
    "direction and speed, window 1 (the defaults before the window)": {
        "attributes": ["direction", "speed"],
        "window": 1,
    },
    "released code's Ped2 velocity: 1 bin, Gaussian mixture (2), window 1": {
        "bins": 1,
        "attributes": ["direction"],
        "density": "gmm",
        "window": 1,
    },
}
PAPER = Protocol.from_params({"smoothing": "gaussian", "sigma": 3.0})


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def frame_aucs(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
    smoothed, _ = PAPER.apply(scores)
    return {
        "frame_auc_micro": round(frame_auc_micro(scores, labels), 4),
        "frame_auc_macro": round(frame_auc_macro(scores, labels)[0], 4),
        "frame_auc_micro_paper": round(frame_auc_micro(smoothed, labels), 4),
    }


def run_velocity_benchmark(
    dataset_name: str,
    root: str,
    out: str = "reports/bench/velocity.json",
    caches: dict[str, str | None] | None = None,
    ablation: bool = True,
) -> dict:
    params = load_params()
    params = {**params, "data": {**params["data"], "name": dataset_name}}
    method = get_method("velocity")
    given = {key: value for key, value in (caches or {}).items() if value}
    with tempfile.TemporaryDirectory(prefix="vad-velocity-") as tmp:
        work = Path(tmp)
        frames = Path(given.get("frames") or work / "frames.h5")
        if "frames" not in given:
            write_frame_cache(
                open_dataset(dataset_name, root), frames, work / "gt.h5", progress=False
            )
        ground_truth = frames.with_name("ground_truth.h5") if "frames" in given else work / "gt.h5"
        flow = Path(given.get("flow") or work / "flow.h5")
        if "flow" not in given:
            section = Section(params, "flow")
            run_flow_stage(frames, flow, "dis", section.mapping("dis"), section.size("size"),
                           section.int("n_jobs", minimum=1), progress=False)  # fmt: skip
        objects = Path(given.get("objects") or work / "objects.h5")
        if "objects" not in given:
            run_objects_stage(frames, objects, resolve_settings(params), n_jobs=2, progress=False)
        inputs = Inputs({"flow": flow, "objects": objects})
        labels, _ = load_ground_truth(ground_truth)

        settings = method.settings(params)
        start = time.perf_counter()
        method.prepare(inputs, settings["prepare"], work / "prepared.h5")
        prepare_seconds = time.perf_counter() - start
        start = time.perf_counter()
        method.train(work / "prepared.h5", settings["train"], work / "model", work)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        scores = method.score(
            inputs, work / "prepared.h5", work / "model", settings["score"]
        ).collect()
        score_seconds = time.perf_counter() - start
        with open_cache(work / "prepared.h5") as f:
            counts = {
                f"{split}/{name}": int(group.attrs["num_frames"])
                for split, name, group in iter_videos(f)
            }
            objects_train = sum(len(f[k]["frame"]) for k in counts if k.startswith("train/"))
        test_frames = sum(n for key, n in counts.items() if key.startswith("test/"))
        feature_share = prepare_seconds * test_frames / sum(counts.values())
        frame_scores = {name: v.frame_scores for name, v in scores.test.items()}
        report = {
            "dataset": dataset_name,
            "settings": settings,
            "training_objects": objects_train,
            "frames": sum(counts.values()),
            "test_frames": test_frames,
            "prepare_seconds": round(prepare_seconds, 2),
            "feature_seconds_per_frame": round(prepare_seconds / sum(counts.values()), 5),
            "fit_seconds": round(fit_seconds, 2),
            "score_seconds": round(score_seconds, 2),
            "scoring_frames_per_second": round(test_frames / (feature_share + score_seconds), 1),
            "knn": "exact, scikit-learn NearestNeighbors",
            "faiss": "installed, not compared"
            if faiss_available()
            else "faiss-cpu not installed: not measured",
            "frame_auc": frame_aucs(frame_scores, labels),
            "cpu_count": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "flow_excluded": True,
            "command": f"python -m vad bench velocity {dataset_name} <root>",
        }
        if ablation:
            report["ablation"] = {}
            for name, overrides in ABLATION.items():
                variant = copy.deepcopy(params)
                variant["velocity"].update(overrides)
                chosen = method.settings(variant)
                prepared = work / "ablation_prepared.h5"
                method.prepare(inputs, chosen["prepare"], prepared)
                model = work / "ablation_model"
                for old in model.glob("*") if model.exists() else []:
                    old.unlink()
                method.train(prepared, chosen["train"], model, work)
                result = method.score(inputs, prepared, model, chosen["score"]).collect()
                report["ablation"][name] = {
                    "overrides": overrides,
                    **frame_aucs({n: v.frame_scores for n, v in result.test.items()}, labels),
                }
    with atomic_output(Path(out)) as tmp_json:
        tmp_json.write_text(json.dumps(report, indent=2) + "\n")
    return report
