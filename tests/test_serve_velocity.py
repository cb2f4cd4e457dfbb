"""`vad score` with the velocity method. The key test: on the test video of the run it was
trained on, the streaming scorer's frame scores, score maps and explanations equal those of
score@velocity exactly, from the first frame to the last, for the default settings and for
variants exercising a background subtractor, border objects skipped, the Gaussian-mixture
density, an ONNX detector and Farneback flow at a larger size than the frames. Also what it is
made of (the streamed boxes and flows equal objects.h5 and flow.h5), when frames are returned,
and `vad export` + `vad score` through the CLI with a bundle that carries the ONNX detector."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import yaml
from onnx_model import constant_detector
from serve_fixtures import velocity_run, video_frame_count

from vad.cli import main
from vad.frame_cache import load_frames, video_keys
from vad.methods.registry import get_method
from vad.objects import runner
from vad.objects.runner import boxes_by_frame, read_objects
from vad.params.objects import objects_settings
from vad.scores import read_scores
from vad.serve.bundle import load_bundle
from vad.serve.explained import explanation_of
from vad.serve.motion import FlowStream, run_flow_estimator
from vad.serve.objects import ObjectStream

TEST_VIDEO = "test/test_00"
ONNX_ROWS = [[8, 12, 24, 30, 0.9]]  # one box, [16, 24, 48, 60] in the 112x84 frames
DETECTOR = "written by the fixture"  # objects.onnx: a constant detector of ONNX_ROWS
VARIANTS = {
    "defaults": {},
    "mog2, border objects skipped, gaussian mixture, window 3, two groups": {
        "objects": {"foreground": ["difference", "mog2"]},
        "velocity": {
            "border_objects": "skip",
            "density": "gmm",
            "window": 3,
            "attributes": ["direction", "speed+size"],
        },
    },
    "onnx detector, farneback flow at 168x126, window 1": {
        "objects": {"onnx": DETECTOR, "onnx_size": [56, 42]},
        "flow": {"method": "farneback", "size": [168, 126]},
        "velocity": {"window": 1},
    },
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def run(request, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    overrides = copy.deepcopy(VARIANTS[request.param])
    if overrides.get("objects", {}).get("onnx") == DETECTOR:
        detector = root / "detector.onnx"
        detector.write_bytes(constant_detector(np.array(ONNX_ROWS, np.float32), (56, 42)))
        overrides["objects"]["onnx"] = str(detector)
    try:
        return velocity_run(root, overrides)
    finally:
        runner._detectors.clear()  # the stage ran in this process: forget its detectors


def run_params(run: Path) -> dict:
    return yaml.safe_load((run / "params.yaml").read_text())


def frames_of(run: Path, key: str = TEST_VIDEO) -> np.ndarray:
    """The stored frames of a video (T×H×W×1 gray), as `vad score` pushes them."""
    return load_frames(run / "data" / "interim" / "frames.h5", key)


def stream(run: Path, frames: np.ndarray) -> tuple[list, list[list[int]]]:
    """Every frame the velocity scorer returns for `frames`, and the indices each push (then
    `finish`) returned."""
    scorer = get_method("velocity").stream_scorer(
        run / "data" / "models" / "velocity", run_params(run)
    )
    scored, returned = [], []
    for frame in frames:
        returned.append(scorer.push(frame))
    returned.append(scorer.finish())
    for batch in returned:
        scored += batch
    return scored, [[frame.index for frame in batch] for batch in returned]


def test_streaming_scores_maps_and_explanations_equal_score_at_velocity(run):
    expected = read_scores(run / "data" / "scores" / "velocity.h5").test["test_00"]
    frames = frames_of(run)
    count, height, width = frames.shape[:3]
    scored, returned = stream(run, frames)
    # frame t when frame t + 1 + h arrives (boxes look one frame ahead, the flow window h =
    # window // 2 frames); the last h + 1 at the end
    half = run_params(run)["velocity"]["window"] // 2
    assert count > 2 * half + 2
    early = [[]] * (1 + half) + [[t] for t in range(count - 1 - half)]
    assert returned == early + [list(range(count - 1 - half, count))]
    scores = np.array([frame.score for frame in scored], np.float32)
    np.testing.assert_array_equal(scores, expected.frame_scores)
    np.testing.assert_array_equal(np.stack([f.score_map for f in scored]), expected.score_maps)
    assert np.count_nonzero(expected.frame_scores) > count // 2  # objects in most frames
    explanations = [explanation_of(frame) for frame in scored]
    for t, explanation in enumerate(explanations):
        if expected.extras["top_attribute"][t] < 0:
            assert explanation is None and scores[t] == 0.0, f"frame {t}"
            continue
        assert explanation.text == expected.extras["explanation"][t], f"frame {t}"
        box = np.array(explanation.box) * [width, height, width, height]
        np.testing.assert_allclose(box, expected.extras["top_box"][t], atol=1e-4)


def test_streamed_boxes_and_flows_equal_the_objects_and_flow_caches(run):
    """What the scorer is made of, on every video (train and test): its boxes equal objects.h5
    and its flows flow.h5, bit for bit."""
    params = run_params(run)
    interim = run / "data" / "interim"
    for key in video_keys(interim / "frames.h5"):
        frames = frames_of(run, key)
        objects = ObjectStream(objects_settings(params)["settings"])
        flows = FlowStream(*run_flow_estimator(params))
        boxes, streamed_flows = [], []
        for frame in frames:
            boxes += objects.push(frame[..., 0])
            flow = flows.push(frame)
            if flow is not None:
                streamed_flows.append(flow)
        boxes += objects.finish()
        stored = read_objects(interim / "objects.h5", key)
        by_frame = boxes_by_frame(stored, len(frames))
        assert [index for index, _ in boxes] == list(range(len(frames)))
        for (index, found), rows in zip(boxes, by_frame, strict=True):
            np.testing.assert_array_equal(found, stored["box"][rows], err_msg=f"{key} {index}")
        with h5py.File(interim / "flow.h5", "r") as f:
            np.testing.assert_array_equal(np.stack(streamed_flows), f[key]["flow"][()])


def test_a_stream_of_one_frame_is_not_scored(run):
    scored, returned = stream(run, frames_of(run)[:1])
    assert scored == [] and returned == [[], []]


def write_pngs(frames: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:04d}.png"), frame)
    return folder


def test_export_and_score_through_the_cli(run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(run)  # `vad export` exports the run in the working directory
    main(["export", str(tmp_path / "bundle")])
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.default_scorer == "velocity" and bundle.manifest["methods"] == ["velocity"]
    detector = run_params(run)["objects"]["onnx"]
    if detector:  # the bundle carries the detector, and its params point to the copy
        assert bundle.manifest["param_files"] == {"objects.onnx": "inputs/objects.onnx"}
        copy = Path(bundle.params["objects"]["onnx"])
        assert copy == tmp_path / "bundle" / "inputs" / "objects.onnx"
        assert copy.read_bytes() == Path(detector).read_bytes()
    else:
        assert bundle.manifest["param_files"] == {}
    folder = write_pngs(frames_of(run), tmp_path / "clip")
    capsys.readouterr()
    main(["score", str(folder), "--run", str(tmp_path / "bundle"), "--out", str(tmp_path / "out")])
    expected = read_scores(run / "data" / "scores" / "velocity.h5").test["test_00"]
    with open(tmp_path / "out" / "clip.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["frame"]) for row in rows] == list(range(len(expected.frame_scores)))
    got = np.array([float(row["score"]) for row in rows], np.float32)
    np.testing.assert_array_equal(got, expected.frame_scores)
    jsonl = (tmp_path / "out" / "clip.jsonl").read_text()
    lines = [json.loads(line) for line in jsonl.splitlines()]
    assert [line["explanation"] or "" for line in lines] == list(expected.extras["explanation"])
    assert video_frame_count(tmp_path / "out" / "clip.mp4") == len(rows)
