"""End to end: `dvc repro` on a tiny synthetic scene in a temporary git repo, then which stages
each kind of parameter change invalidates (`dvc status`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
}


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
    }
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def changed_stages(cwd: Path) -> set[str]:
    status = json.loads(run([str(BIN / "dvc"), "status", "--json"], cwd))
    return set(status)


def set_param(cwd: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((cwd / "params.yaml").read_text())
    params[section][key] = value
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for name in ("stages", "vad"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run([str(BIN / "dvc"), "init", "-q"], root)
    run([str(BIN / "dvc"), "config", "core.analytics", "false"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny project"], root)
    run([str(BIN / "dvc"), "repro"], root)
    return root


def test_repro_writes_metrics_plots_and_figures(project):
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    for model in ("baseline", "gmfc_vae", "gmfc_vae_rgb", "gmfc_vae_dynflow"):
        for key in ("frame_auc_micro", "frame_auc_macro", "frame_eer", "pixel_auc", "pixel_eer"):
            assert key in metrics[model], (model, key)
        assert 0.0 <= metrics[model]["frame_auc_micro"] <= 1.0
    assert metrics["protocol"]["smoothing"] == "none"
    roc = json.loads((project / "reports" / "plots" / "roc_gmfc_vae.json").read_text())
    assert roc[0].keys() == {"fpr", "tpr"}
    assert (project / "reports" / "figures" / "roc.png").stat().st_size > 0
    assert any((project / "reports" / "figures" / "overlays").glob("gmfc_vae_*.png"))
    history = json.loads((project / "reports" / "train" / "gmfc_vae-rgb.json").read_text())
    assert [row["phase"] for row in history] == ["pretrain", "vade"]
    shown = run([str(BIN / "dvc"), "metrics", "show"], project)
    assert "frame_auc_micro" in shown
    assert changed_stages(project) == set()


def test_forced_retraining_writes_the_same_bytes(project):
    """Fixed seeds and byte-stable model/loss files: re-running train changes no DVC hash."""
    lock_before = (project / "dvc.lock").read_text()
    run([str(BIN / "dvc"), "repro", "--force", "--single-item", "train@rgb"], project)
    assert (project / "dvc.lock").read_text() == lock_before
    assert changed_stages(project) == set()


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("evaluate", "smoothing", "median", {"evaluate"}),
        ("fuse", "alpha", 1.0, {"fuse", "evaluate"}),
    ],
)
def test_repro_after_a_cheap_change_reruns_only_downstream(project, section, key, value, expected):
    original = (project / "params.yaml").read_text()
    try:
        set_param(project, section, key, value)
        assert ran_stages(run([str(BIN / "dvc"), "repro"], project)) == expected
    finally:
        (project / "params.yaml").write_text(original)
        run([str(BIN / "dvc"), "repro"], project)


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("gmfc_vae", "K", 3, {"train@rgb", "train@dynflow"}),
        ("flow", "method", "farneback", {"flow"}),
        ("dynamic_flow", "C", 0.5, {"dynamic_flow"}),
        ("patches", "n_train", 500, {"patches"}),
    ],
)
def test_a_parameter_invalidates_only_the_stages_that_read_it(
    project, section, key, value, expected
):
    """`dvc status` lists the stages a change hits directly; nothing upstream is among them."""
    original = (project / "params.yaml").read_text()
    try:
        set_param(project, section, key, value)
        assert changed_stages(project) == expected
    finally:
        (project / "params.yaml").write_text(original)


def test_queued_experiments_run_through_the_dvc_queue(project):
    """`vad experiments` on real DVC: a Table VI and a Table V run queued, run and compared."""
    from vad.experiments import run_experiments

    def dvc(args) -> str:
        return run([str(BIN / "dvc"), *args], project)

    experiments = [("appearance", ["fuse.alpha=1", "fuse.beta=0"]), ("K3", ["gmfc_vae.K=3"])]
    states = run_experiments(experiments, run=dvc, poll_seconds=1, log=lambda _: None)
    assert states == {"appearance": "Success", "K3": "Success"}
    shown = json.loads(dvc(["exp", "show", "--json"]))
    runs = {
        exp["name"]: exp["data"]
        for baseline in shown
        for branch in baseline.get("experiments") or []
        for exp in branch["revs"]
    }
    assert set(runs) >= {"appearance", "K3"}
    appearance = runs["appearance"]["metrics"]["reports/metrics.json"]["data"]
    # alpha = 1, beta = 0: the fused model is the appearance stream alone
    assert (
        appearance["gmfc_vae"]["frame_auc_micro"] == appearance["gmfc_vae_rgb"]["frame_auc_micro"]
    )
    assert runs["K3"]["params"]["params.yaml"]["data"]["gmfc_vae"]["K"] == 3
    assert changed_stages(project) == set()  # the workspace is untouched
