"""The main test of `vad score`: on the test videos of the run it was trained on, the streaming
path's frame scores equal the pipeline's data/scores/*.h5 and data/fused/*.h5, for every
method and the fused GMFC-VAE, from the first frame to the last. Also `vad export --rev` of a
DVC experiment. Runs `dvc repro` on the tiny project of test_pipeline.py."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import yaml
from test_pipeline import TINY, dvc, experiments_by_name, new_project, run

from vad.frame_cache import load_frames, video_keys
from vad.motion.flow import make_flow_estimator
from vad.params.dynamic_flow import dynamic_flow_settings
from vad.scores import read_scores
from vad.serve.bundle import load_bundle
from vad.serve.command import score_input
from vad.serve.motion import DynamicFlowWindow

pytestmark = pytest.mark.slow

SCORERS = {
    "baseline": "data/scores/baseline.h5",
    "gmfc_vae_rgb": "data/scores/gmfc_vae_rgb.h5",
    "gmfc_vae_dynflow": "data/scores/gmfc_vae_dynflow.h5",
    "gmfc_vae": "data/fused/gmfc_vae.h5",
    "velocity": "data/scores/velocity.h5",
}
# Scores are float32 in the score files; the streaming path computes in float32/float64 with the
# same functions, on windows instead of whole videos (see README "Score your own footage").
RTOL, ATOL = 1e-5, 1e-5
# A fused score adds (energy - mean) / std of each part, std over the moving training cells only,
# which is much smaller than the energies themselves: their float32 rounding (1e-5 relative
# between the batch and the streaming path) grows by |energy| / std in the fused score.
FUSED_ATOL = 1e-4


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = new_project(tmp_path_factory.mktemp("project"), TINY)
    dvc(root, "repro")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "reproduced"], root)
    run([sys.executable, "-m", "vad", "export", "bundle"], root)
    return root


def frame_folders(project: Path, into: Path) -> dict[str, Path]:
    """Each test video of the run's frame cache as a folder of lossless PNG frames."""
    frames_path = project / "data" / "interim" / "frames.h5"
    folders = {}
    for key in video_keys(frames_path, "test"):
        name = key.split("/", 1)[1]
        folders[name] = into / name
        folders[name].mkdir(parents=True)
        for index, frame in enumerate(load_frames(frames_path, key)):
            cv2.imwrite(str(folders[name] / f"{index:04d}.png"), frame)
    return folders


@pytest.mark.parametrize("scorer", list(SCORERS))
def test_streaming_scores_equal_the_pipelines(project, tmp_path, scorer):
    expected = read_scores(project / SCORERS[scorer]).test
    folders = frame_folders(project, tmp_path / "frames")
    assert set(folders) == set(expected) and len(folders) == 3
    for name, folder in folders.items():
        (result,) = score_input(str(folder), project / "bundle", tmp_path / "out", scorer, False)
        with open(tmp_path / "out" / f"{name}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(row["frame"]) for row in rows] == list(range(result.frames))
        got = np.array([float(row["score"]) for row in rows])
        np.testing.assert_allclose(
            got,
            expected[name].frame_scores,
            rtol=RTOL,
            atol=FUSED_ATOL if scorer == "gmfc_vae" else ATOL,
            err_msg=f"{scorer} {name}",
        )


def test_export_of_a_dvc_experiment(project):
    dvc(project, "exp", "run", "-n", "lenient", "-S", "serve.threshold_quantile=0.9")
    run(["git", "checkout", "--", "params.yaml"], project)
    run([sys.executable, "-m", "vad", "export", "b2", "--rev", "lenient"], project)
    workspace = load_bundle(project / "bundle")
    experiment = load_bundle(project / "b2")
    assert experiment.manifest["serve"]["threshold_quantile"] == 0.9
    commit = experiments_by_name(project)["lenient"]
    assert experiment.manifest["provenance"]["git"]["rev"] == "lenient"
    assert commit is not None
    for name in SCORERS:  # same models and training scores, a lower quantile
        ours, theirs = workspace.entry(name), experiment.entry(name)
        assert theirs["train_mean"] == ours["train_mean"]
        assert theirs["threshold"] < ours["threshold"]
    assert json.loads((project / "b2" / "manifest.json").read_text())["files"] == json.loads(
        (project / "bundle" / "manifest.json").read_text()
    )["files"] | {"params.yaml": experiment.manifest["files"]["params.yaml"]}


def test_streaming_dynamic_flow_equals_the_dynamic_flow_cache(project):
    """The motion stream's input itself: every frame's dynamic flow, first to last, equals
    data/interim/dynflow.h5 (uint8) when computed a window of flows at a time."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    flow = params["flow"]
    frames_path = project / "data" / "interim" / "frames.h5"
    for key in video_keys(frames_path, "test"):
        window = DynamicFlowWindow(
            make_flow_estimator(flow["method"], flow[flow["method"]]),
            tuple(flow["size"]),
            dynamic_flow_settings(params)[0],
        )
        maps = []
        for frame in load_frames(frames_path, key):
            maps += window.push(frame)
        maps += window.finish()
        with h5py.File(project / "data" / "interim" / "dynflow.h5", "r") as f:
            expected = f[key]["dynflow"][()]
        assert [index for index, _ in maps] == list(range(len(expected)))
        differing = np.count_nonzero(np.stack([m for _, m in maps]) != expected)
        assert differing == 0, f"{key}: {differing} of {expected.size} values differ"


def test_ctrl_c_while_the_fused_model_waits_for_its_motion_window(project, tmp_path):
    """Interrupted after 10 frames, while the motion stream still waits for the windows of the
    last 7 (window 6, + 1): those are scored as at the end of a video, and every output holds
    all 10 frames."""
    from test_serve_score import interrupted_frames

    from vad.serve.loop import score_source
    from vad.serve.scorers.build import build_scorer
    from vad.serve.source import Source

    bundle = load_bundle(project / "bundle")
    frames_path = project / "data" / "interim" / "frames.h5"
    gray = load_frames(frames_path, video_keys(frames_path, "test")[0])
    source = Source("live", "test", 25.0, interrupted_frames(np.repeat(gray, 3, -1), after=10))
    run = score_source(
        source,
        build_scorer(bundle, "gmfc_vae"),
        bundle.entry("gmfc_vae"),
        bundle.params,
        bundle.manifest["training_frames"],
        bundle.manifest["serve"],
        tmp_path,
        progress=False,
    )
    assert run.interrupted and run.frames == run.scored == 10
    with open(tmp_path / "live.csv", newline="") as f:
        assert [int(row["frame"]) for row in csv.DictReader(f)] == list(range(10))
    capture = cv2.VideoCapture(str(tmp_path / "live.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
