"""A small trained run for the serve tests, built in-process in a second or two: the baseline
method on a tiny synthetic scene, laid out as `dvc repro` lays out a run (params.yaml,
data/interim/frames.h5, data/models/baseline, data/scores/baseline.h5)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from vad.datasets import open_dataset
from vad.frame_cache import write_frame_cache
from vad.methods.base import Inputs, Method
from vad.methods.baseline.method import BASELINE
from vad.scores import write_scores

REPO = Path(__file__).resolve().parents[1]
SCENE = {
    "seed": 5,
    "width": 112,
    "height": 84,
    "train_videos": 2,
    "test_videos": 1,
    "frames_per_video": 16,
}


def baseline_run(root: Path, color: str = "gray") -> Path:
    """A run folder with a trained baseline whose frames were stored in `color`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["methods"] = ["baseline"]
    params["data"]["synthetic"] = dict(SCENE)
    params["frames"]["color"] = color
    params["baseline"] = {"size": [112, 84], "patch": 28}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    frames = root / "data" / "interim" / "frames.h5"
    dataset = open_dataset("synthetic", None, options=SCENE)
    write_frame_cache(dataset, frames, root / "data/interim/ground_truth.h5", color, progress=False)
    return fit_and_score(BASELINE, params, Inputs({"frames": frames}), root)


def fit_and_score(method: Method, params: dict, inputs: Inputs, root: Path) -> Path:
    """`method`'s prepare, train and score in-process, into `root` laid out as `dvc repro` lays
    out a run (data/prepared, data/models, data/scores)."""
    settings = method.settings(params)
    prepared = root / "data" / "prepared" / f"{method.name}.h5"
    method.prepare(inputs, settings["prepare"], prepared)
    model_dir = root / "data" / "models" / method.name
    model_dir.mkdir(parents=True)
    method.train(prepared, settings["train"], model_dir, root / "work")
    scores = method.score(inputs, prepared, model_dir, settings["score"])
    write_scores(root / "data" / "scores" / f"{method.name}.h5", scores)
    return root


def scene_frames(frames: int = 20, size: tuple[int, int] = (112, 84), seed: int = 9) -> np.ndarray:
    """T×H×W×3 uint8 RGB frames of a synthetic test clip (new footage for the run)."""
    options = {**SCENE, "seed": seed, "width": size[0], "height": size[1]}
    options.update(train_videos=0, frames_per_video=frames)
    return np.stack(list(open_dataset("synthetic", None, options=options).test[0].frames()))


def write_avi(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    """RGB frames as an MJPG AVI file."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def video_frame_count(path: Path) -> int:
    """Frames OpenCV decodes from `path` (asserting it opens)."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open"
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def velocity_run(root: Path, overrides: dict | None = None) -> Path:
    """A run folder with a trained velocity method: the frames, flow and objects stages and
    prepare/train/score@velocity run in-process on the tiny scene (flow at 96x72, another size
    than the 112x84 frames, so boxes are scaled to the flow's grid), `overrides` merged into
    params sections (e.g. {"objects": {"foreground": ["difference", "mog2"]}})."""
    from vad.methods.velocity.method import VELOCITY
    from vad.motion.flow_runner import run_flow_stage
    from vad.objects.runner import run_objects_stage
    from vad.params.flow import flow_settings
    from vad.params.objects import objects_settings

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["methods"] = ["velocity"]
    params["data"]["synthetic"] = {**SCENE, "frames_per_video": 24}
    params["flow"].update(size=[96, 72], dis={"preset": "fast"})
    for section, values in (overrides or {}).items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    interim = root / "data" / "interim"
    frames = interim / "frames.h5"
    dataset = open_dataset("synthetic", None, options=params["data"]["synthetic"])
    write_frame_cache(dataset, frames, interim / "ground_truth.h5", "gray", progress=False)
    flow = flow_settings(params)
    run_flow_stage(
        frames, interim / "flow.h5", flow["method"], flow["options"], flow["size"], 1, False
    )
    run_objects_stage(
        frames, interim / "objects.h5", objects_settings(params)["settings"], 1, False
    )
    inputs = Inputs({"flow": interim / "flow.h5", "objects": interim / "objects.h5"})
    return fit_and_score(VELOCITY, params, inputs, root)
