"""End to end: `dvc repro` on a tiny synthetic scene in a temporary git repo, then which stages
each kind of change re-runs, switching methods with `dvc exp run -S methods=[...]`, a method
added through the registry only, and the frames stage noticing changed dataset files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import yaml
from dataset_fixtures import write_frames_layout

from vad.experiments import queue_rows

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

TINY = {
    "data": {
        "synthetic": {
            "seed": 3,
            "width": 160,
            "height": 112,
            "train_videos": 2,
            "test_videos": 3,
            "frames_per_video": 24,
        }
    },
    "flow": {"size": [168, 112], "n_jobs": 2, "dis": {"preset": "fast"}},
    "dynamic_flow": {"window": 6},
    "baseline": {"size": [168, 112]},
    "patches": {"size": [168, 112], "n_train": 600},
    "gmfc_vae": {"K": 2, "pretrain_epochs": 1, "epochs": 1, "train_score_stride": 4},
    "itae": {"size": [32, 32], "epochs": [1, 1], "clips_per_epoch": 4, "glow_steps": 2,
             "glow_hidden": 8, "test_stride": 8},
    "dissociation": {"size": [32, 32], "epochs": [1, 1], "clips_per_epoch": 4, "clusters": 2,
                     "kmeans_samples": 64},
}
GMFC = ("gmfc_vae_rgb", "gmfc_vae_dynflow")


def merge(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def run(args: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "VAD_PROGRESS": "log",
    }
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dvc(project: Path, *args: str) -> str:
    return run([str(BIN / "dvc"), *args], project)


def changed_stages(cwd: Path) -> set[str]:
    return set(json.loads(dvc(cwd, "status", "--json")))


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def experiments_by_name(project: Path) -> dict[str, dict]:
    """`dvc exp show --json` as experiment name -> its data (params, metrics)."""
    shown = json.loads(dvc(project, "exp", "show", "--json"))
    return {
        exp["name"]: exp["data"]
        for baseline in shown
        for branch in baseline.get("experiments") or []
        for exp in branch["revs"]
    }


def set_param(cwd: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((cwd / "params.yaml").read_text())
    params[section][key] = value
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def new_project(root: Path, overrides: dict) -> Path:
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for name in ("stages", "vad"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny project"], root)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = new_project(tmp_path_factory.mktemp("project"), TINY)
    dvc(root, "repro")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "reproduced"], root)
    return root


def test_repro_writes_metrics_summary_plots_and_figures(project):
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert list(metrics) == [
        "protocol", "baseline", "velocity", "hf2vad", "itae", "dissociation", "gmfc_vae", *GMFC
    ]  # fmt: skip
    for model in ("baseline", "velocity", "hf2vad", "itae", "dissociation", "gmfc_vae", *GMFC):
        for key in ("frame_auc_micro", "frame_auc_macro", "frame_eer", "pixel_auc", "pixel_eer"):
            assert key in metrics[model], (model, key)
        assert 0.0 <= metrics[model]["frame_auc_micro"] <= 1.0
    assert metrics["protocol"]["smoothing"] == "none"
    summary = (project / "reports" / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names == ["baseline", "velocity", "hf2vad", "itae", "dissociation", "gmfc_vae", *GMFC]
    assert "| gmfc_vae_rgb | part of gmfc_vae |" in summary
    auc = f"{metrics['baseline']['frame_auc_micro']:.3f}"
    assert rows[1].split("|")[3].strip() == auc
    roc = json.loads((project / "reports" / "plots" / "roc_gmfc_vae.json").read_text())
    assert roc[0].keys() == {"fpr", "tpr"}
    assert (project / "reports" / "figures" / "roc.png").stat().st_size > 0
    overlays = {p.name.split("_test_")[0] for p in (project / "reports/figures/overlays").iterdir()}
    assert overlays == {
        "baseline", "velocity", "hf2vad", "itae", "dissociation", "gmfc_vae"
    }  # fused, not parts  # fmt: skip
    paper = json.loads((project / "reports" / "metrics_paper.json").read_text())
    assert paper["protocols"]["velocity"] == {
        "smoothing": "gaussian",
        "sigma": 3.0,
        "normalization": "none",
    }
    assert 0.0 <= paper["velocity"]["frame_auc_micro"] <= 1.0
    assert paper["protocols"]["hf2vad"] == {
        "smoothing": "median",
        "window": 17,
        "normalization": "none",
    }
    assert 0.0 <= paper["hf2vad"]["frame_auc_micro"] <= 1.0
    assert paper["protocols"]["itae"] == {"smoothing": "none", "normalization": "minmax"}
    assert paper["itae"]["protocol"]["uses_test_statistics"] is True  # per-video min-max
    assert paper["dissociation"]["protocol"]["uses_test_statistics"] is True  # eq. 14
    history = json.loads((project / "reports" / "train" / "gmfc_vae_rgb.json").read_text())
    assert [row["phase"] for row in history] == ["pretrain", "vade"]
    assert history[0]["kl_latent"] is None and history[1]["kl_latent"] > 0
    plots = json.loads(dvc(project, "plots", "show", "--json"))
    assert "errors" not in plots, plots.get("errors")
    assert {"reports/plots/roc_gmfc_vae.json", "reports/train/gmfc_vae_rgb.json"} <= set(
        plots["data"]
    )
    assert json.loads((project / "reports" / "train" / "baseline.json").read_text()) == []
    inputs = json.loads((project / "data" / "inputs" / "gmfc_vae_rgb.json").read_text())
    assert set(inputs["inputs"]) == {"frames"}  # the appearance stream never reads dynflow
    assert changed_stages(project) == set()


def test_forced_retraining_writes_the_same_bytes(project):
    """Fixed seeds and byte-stable model/loss files: re-running train changes no DVC hash."""
    lock_before = (project / "dvc.lock").read_text()
    dvc(project, "repro", "--force", "--single-item", "train@gmfc_vae_rgb")
    assert (project / "dvc.lock").read_text() == lock_before
    assert changed_stages(project) == set()


# `settings` re-reads params.yaml on every change (a second); it passes each method stage only
# its own settings, so those stages run again only when theirs changed.
@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("evaluate", "smoothing", "median", {"evaluate"}),
        ("fuse", "alpha", 1.0, {"fuse", "evaluate"}),
        (
            "gmfc_vae",
            "K",
            3,
            {*(f"{k}@{m}" for k in ("train", "score") for m in GMFC), "fuse", "evaluate"},
        ),
        (
            "gmfc_vae",
            "static_patches",
            "score",
            {*(f"score@{m}" for m in GMFC), "fuse", "evaluate"},
        ),
        (
            "dynamic_flow",
            "output_scale",
            0.05,
            {
                "dynamic_flow",
                "motion_figures",
                "inputs",
                *(f"{kind}@gmfc_vae_dynflow" for kind in ("prepare", "train", "score")),
                "fuse",
                "evaluate",
            },
        ),
    ],
)
def test_a_change_reruns_only_the_stages_it_concerns(project, section, key, value, expected):
    original = (project / "params.yaml").read_text()
    try:
        set_param(project, section, key, value)
        assert ran_stages(dvc(project, "repro")) - {"settings"} == expected
    finally:
        (project / "params.yaml").write_text(original)
        dvc(project, "repro")
    assert changed_stages(project) == set()


def test_methods_switch_with_dvc_exp_run(project):
    """`dvc exp run -S 'methods=[baseline]'`: no method stage runs, only the settings check,
    fuse (its folder of score files lost two; it fuses nothing) and evaluate, and the
    experiment evaluates the baseline alone."""
    output = dvc(project, "exp", "run", "--temp", "-n", "only-baseline", "-S", "methods=[baseline]")
    assert ran_stages(output) == {"settings", "fuse", "evaluate"}
    assert "fuse: gmfc_vae skipped: no scores of gmfc_vae_rgb, gmfc_vae_dynflow" in output
    runs = experiments_by_name(project)
    metrics = runs["only-baseline"]["metrics"]["reports/metrics.json"]["data"]
    assert set(metrics) == {"protocol", "baseline"}
    assert changed_stages(project) == set()  # the workspace is untouched


def test_queued_experiments_run_through_the_dvc_queue(project):
    """`vad experiments` on real DVC: a Table VI and a Table V run queued, run and compared."""
    from vad.experiments import run_experiments

    def queue(args) -> str:
        return dvc(project, *args)

    experiments = [("appearance", ["fuse.alpha=1", "fuse.beta=0"]), ("K3", ["gmfc_vae.K=3"])]
    states = run_experiments(experiments, run=queue, poll_seconds=1, log=lambda _: None)
    assert states == {"appearance": "Success", "K3": "Success"}
    runs = experiments_by_name(project)
    assert set(runs) >= {"appearance", "K3"}
    appearance = runs["appearance"]["metrics"]["reports/metrics.json"]["data"]
    # alpha = 1, beta = 0: the fused model is the appearance stream alone
    assert (
        appearance["gmfc_vae"]["frame_auc_micro"] == appearance["gmfc_vae_rgb"]["frame_auc_micro"]
    )
    assert runs["K3"]["params"]["params.yaml"]["data"]["gmfc_vae"]["K"] == 3
    assert changed_stages(project) == set()  # the workspace is untouched


TRIVIAL_METHOD = '''"""A trivial method for the test: mean brightness change, z-scored."""

from pathlib import Path

import h5py
import numpy as np

from vad.cache import write_h5
from vad.config import Section
from vad.frame_cache import load_frames, video_keys
from vad.methods.base import Method
from vad.scores import ScoreSet, VideoScores


class Brightness(Method):
    name = "brightness"
    package = "vad.methods.brightness"

    def settings(self, params):
        section = Section(params, "brightness")
        return {"prepare": {"size": list(section.size("size"))}, "train": {}, "score": {}}

    def prepare(self, inputs, settings, out):
        with write_h5(out, settings) as f:
            for key in video_keys(inputs["frames"]):
                frames = load_frames(inputs["frames"], key, tuple(settings["size"]), "gray")
                f[key] = frames.reshape(len(frames), -1).mean(axis=1)

    def train(self, prepared, settings, model_dir, workdir):
        with h5py.File(prepared, "r") as f:
            train = np.concatenate([f["train"][name][()] for name in f["train"]])
        np.save(model_dir / "stats.npy", np.array([train.mean(), train.std() + 1e-6]))
        return [{"epoch": 1, "loss": float(train.std())}]

    def score(self, inputs, prepared, model_dir, settings):
        mean, std = np.load(model_dir / "stats.npy")
        result = ScoreSet(self.name)
        with h5py.File(prepared, "r") as f:
            for split in ("train", "test"):
                for name in f[split]:
                    scores = np.abs(f[split][name][()] - mean) / std
                    getattr(result, split)[name] = VideoScores(scores.astype(np.float32))
        return result


BRIGHTNESS = Brightness()
'''


def test_a_method_added_through_the_registry_only(project, tmp_path):
    """One folder, one params section, one registry line: the new method runs through
    prepare/train/score and evaluate, and no other method's stage runs again."""
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    folder = copy / "vad" / "methods" / "brightness"
    folder.mkdir()
    (folder / "__init__.py").write_text('"""Test method."""\n')
    (folder / "method.py").write_text(TRIVIAL_METHOD)
    registry = copy / "vad" / "methods" / "registry.py"
    text = registry.read_text()
    line = '    "brightness": "vad.methods.brightness.method:BRIGHTNESS",\n'
    registry.write_text(text.replace("REGISTRY = {\n", "REGISTRY = {\n" + line, 1))
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["brightness"] = {"size": [84, 56]}
    params["methods"].append("brightness")
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    ran = ran_stages(dvc(copy, "repro"))
    assert ran == {
        "settings",
        "inputs",
        "prepare@brightness",
        "train@brightness",
        "score@brightness",
        "fuse",  # its input folder holds one more score file
        "evaluate",
    }
    metrics = json.loads((copy / "reports" / "metrics.json").read_text())
    assert list(metrics) == [
        "protocol",
        "baseline",
        "velocity",
        "hf2vad",
        "itae",
        "dissociation",
        "brightness",
        "gmfc_vae",
        *GMFC,
    ]
    assert 0.0 <= metrics["brightness"]["frame_auc_micro"] <= 1.0
    assert "pixel_auc" not in metrics["brightness"]  # no maps: frame level only
    assert changed_stages(copy) == set()


def test_frames_stage_notices_changed_dataset_files(tmp_path):
    """data.root is a dependency of `frames`: a changed image re-extracts the frames."""
    dataset = write_frames_layout(tmp_path / "dataset", name="frames", mat=False, masks=False)
    (tmp_path / "project").mkdir()
    project = new_project(tmp_path / "project", {"data": {"name": "frames", "root": str(dataset)}})
    dvc(project, "repro", "--single-item", "frames")
    assert "frames" not in changed_stages(project)
    first = dataset / "training" / "frames" / "01" / "000.jpg"
    assert cv2.imwrite(str(first), 255 - cv2.imread(str(first)))
    status = json.loads(dvc(project, "status", "--json", "frames"))
    assert {"changed deps": {str(dataset): "modified"}} in status["frames"]


MARKER = "# which copy of vad/ this is:"


def mark_code(root: Path, copy: str) -> None:
    """Make the settings stage print which copy of vad/ it imported (vad.methods.plan)."""
    plan = root / "vad" / "methods" / "plan.py"
    text = plan.read_text().split(MARKER)[0]
    plan.write_text(f'{text}{MARKER}\nprint("vad code: {copy}", flush=True)\n')


def test_experiments_run_the_code_of_their_own_copy(tmp_path, monkeypatch):
    """Stages run as `python -m stages.<name>` from the experiment's folder, so they import its
    vad/, not another copy on the path (as an editable install of the workspace would be): a
    queued experiment runs the code it was queued with although the workspace changed since,
    and a --temp run its own copy of the workspace, not the installed one."""
    (tmp_path / "project").mkdir()
    project = new_project(tmp_path / "project", {})
    mark_code(project, "committed")
    run(["git", "commit", "-qam", "the code the experiment is queued with"], project)
    installed = tmp_path / "installed"
    shutil.copytree(project / "vad", installed / "vad")
    mark_code(installed, "installed")
    monkeypatch.setenv("PYTHONPATH", str(installed))  # found after the stage's own folder

    dvc(project, "exp", "run", "--queue", "-n", "own-code", "settings")
    mark_code(project, "workspace")  # uncommitted, after queueing
    dvc(project, "queue", "start", "-j", "1")
    deadline = time.monotonic() + 300
    while (state := queue_rows(dvc(project, "queue", "status"), {"own-code"})) != {
        "own-code": "Success"
    }:
        assert "Failed" not in state.values(), dvc(project, "queue", "logs", "own-code")
        assert time.monotonic() < deadline, f"queue still {state}"
        time.sleep(1)
    log = dvc(project, "queue", "logs", "own-code")
    assert "vad code: committed" in log
    assert "vad code: workspace" not in log and "vad code: installed" not in log

    output = dvc(project, "exp", "run", "--temp", "-n", "temp-copy", "settings")
    assert "vad code: workspace" in output and "vad code: installed" not in output
