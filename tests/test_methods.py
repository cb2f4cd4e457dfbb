"""The method interface at library level: the registry, per-stage settings files, content-keyed
inputs, and the generic prepare/train/score runner on the baseline."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from vad.cache import atomic_directory
from vad.config import ConfigError, load_params
from vad.datasets.synthetic import open_synthetic
from vad.frame_cache import load_frames, video_keys, write_frame_cache
from vad.methods.base import KINDS, Inputs
from vad.methods.baseline.energy import BaselineModel, difference_energy
from vad.methods.plan import write_inputs, write_settings
from vad.methods.registry import REGISTRY, enabled_methods, get_method
from vad.methods.runner import run_prepare, run_train
from vad.methods.score_runner import run_score
from vad.methods.stage_files import read_inputs, read_stage_settings
from vad.scores import read_scores

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
SCENE = dict(width=64, height=48, train_videos=2, test_videos=2, frames_per_video=10)


def test_every_registered_method_loads_under_its_own_name():
    for name in REGISTRY:
        method = get_method(name)
        assert method.name == name
        settings = method.settings(PARAMS)
        assert set(settings) == set(KINDS)
        json.dumps(settings)  # plain JSON values only
    with pytest.raises(KeyError, match="unknown method 'nope'; known methods: baseline"):
        get_method("nope")


def test_the_methods_list_is_validated():
    assert enabled_methods({"methods": ["baseline"]}) == ["baseline"]
    for value, message in [
        (None, "non-empty list"),
        ([], "non-empty list"),
        ("baseline", "non-empty list"),
        (["baseline", "nope"], "unknown method"),
        (["baseline", "baseline"], "twice"),
    ]:
        with pytest.raises(ConfigError, match=message):
            enabled_methods({"methods": value})


def test_a_fused_score_set_named_as_a_method_says_which_methods_to_list():
    params = {**PARAMS, "methods": ["baseline", "gmfc_vae", "hf2vad"]}
    with pytest.raises(
        ConfigError,
        match=r"unknown method\(s\) gmfc_vae; .*gmfc_vae is the fused score set of gmfc_vae_rgb "
        r"and gmfc_vae_dynflow \(fuse.models.gmfc_vae\)",
    ):
        enabled_methods(params)
    with pytest.raises(ConfigError) as plain:  # a name that is neither: no hint
        enabled_methods({**PARAMS, "methods": ["nope"]})
    assert "fused score set" not in str(plain.value)


def test_a_bad_method_param_is_named():
    params = copy.deepcopy(PARAMS)
    params["gmfc_vae"]["K"] = 0
    with pytest.raises(ConfigError, match=r"'gmfc_vae.K' must be >= 1"):
        get_method("gmfc_vae_rgb").settings(params)


def test_settings_files_change_only_for_the_stage_kind_a_param_feeds(tmp_path):
    """A scoring-only param changes the score settings, not prepare's or train's, so DVC
    re-runs scoring only; a patch param reaches prepare and score, not train."""
    write_settings(PARAMS, tmp_path / "before")

    def changed(section, key, value):
        params = copy.deepcopy(PARAMS)
        params[section][key] = value
        write_settings(params, tmp_path / "after")
        return {
            (path.parent.name, path.stem)
            for path in (tmp_path / "after").rglob("*.json")
            if path.read_bytes()
            != (tmp_path / "before" / path.relative_to(tmp_path / "after")).read_bytes()
        }

    gmfc = ("gmfc_vae_rgb", "gmfc_vae_dynflow")
    assert changed("gmfc_vae", "static_patches", "score") == {(m, "score") for m in gmfc}
    assert changed("gmfc_vae", "K", 5) == {(m, "train") for m in gmfc}
    assert changed("patches", "motion_threshold", 12) == {
        (m, k) for m in gmfc for k in ("prepare", "score")
    }
    assert changed("baseline", "patch", 14) == {("baseline", "prepare")}
    assert changed("fuse", "alpha", 0.1) == set()  # fusion reads its own params


@pytest.fixture
def project(tmp_path) -> dict[str, Path]:
    """A frames cache of a tiny synthetic scene and the baseline's settings and inputs files."""
    frames = tmp_path / "frames.h5"
    write_frame_cache(open_synthetic(**SCENE), frames, tmp_path / "gt.h5", progress=False)
    params = copy.deepcopy(PARAMS)
    params["baseline"]["size"] = [56, 42]
    params["baseline"]["patch"] = 14
    write_settings(params, tmp_path / "settings")
    caches = tmp_path / "settings" / "caches.json"
    stand_ins = {name: frames for name in ("frames", "dynflow", "flow", "objects", "stc")}
    write_inputs(caches, stand_ins, tmp_path / "inputs")
    return {"root": tmp_path, "frames": frames}


def test_baseline_through_the_runner_scores_z_scored_energies(project):
    root, frames = project["root"], project["frames"]
    settings, inputs = root / "settings" / "baseline", root / "inputs" / "baseline.json"
    run_prepare("baseline", settings / "prepare.json", inputs, root / "prepared.h5")
    run_train(
        "baseline",
        settings / "train.json",
        root / "prepared.h5",
        root / "model",
        root / "work",
        root / "history.json",
    )
    run_score(
        "baseline",
        settings / "score.json",
        inputs,
        root / "prepared.h5",
        root / "model",
        root / "scores.h5",
    )
    assert json.loads((root / "history.json").read_text()) == []
    energy = {
        key: difference_energy(load_frames(frames, key, (56, 42), "gray"), 14)
        for key in video_keys(frames)
    }
    model = BaselineModel.fit([e for key, e in energy.items() if key.startswith("train/")])
    scores = read_scores(root / "scores.h5")
    assert scores.model == "baseline" and set(scores.test) == {"test_00", "test_01"}
    for name, video in scores.test.items():
        expected = model.score_maps(energy[f"test/{name}"])
        np.testing.assert_allclose(video.score_maps, expected, rtol=1e-6)
        np.testing.assert_allclose(video.frame_scores, expected.reshape(len(expected), -1).max(1))


def test_inputs_record_only_the_caches_a_method_reads(project):
    root = project["root"]
    rgb = json.loads((root / "inputs" / "gmfc_vae_rgb.json").read_text())["inputs"]
    motion = json.loads((root / "inputs" / "gmfc_vae_dynflow.json").read_text())["inputs"]
    assert set(rgb) == {"frames"} and set(motion) == {"frames", "dynflow"}
    velocity = json.loads((root / "inputs" / "velocity.json").read_text())["inputs"]
    assert set(velocity) == {"flow", "objects"}
    assert isinstance(read_inputs(root / "inputs" / "gmfc_vae_rgb.json", "gmfc_vae_rgb"), Inputs)


def test_a_cache_changed_after_the_inputs_stage_is_refused(project):
    root, frames = project["root"], project["frames"]
    write_frame_cache(open_synthetic(**SCENE, seed=9), frames, root / "gt.h5", progress=False)
    with pytest.raises(ValueError, match="changed after the inputs stage fingerprinted it"):
        read_inputs(root / "inputs" / "baseline.json", "baseline")


def test_a_settings_file_of_another_stage_is_refused(project):
    settings = project["root"] / "settings"
    with pytest.raises(ValueError, match="not the 'train' settings of 'baseline'"):
        read_stage_settings(settings / "baseline" / "score.json", "baseline", "train")
    with pytest.raises(ValueError, match="of 'gmfc_vae_rgb'"):
        read_stage_settings(settings / "gmfc_vae_rgb" / "train.json", "baseline", "train")
    with pytest.raises(FileNotFoundError, match="dvc repro settings"):
        read_stage_settings(settings / "nope" / "train.json", "nope", "train")


def test_a_failed_training_leaves_the_previous_model_folder(tmp_path):
    model = tmp_path / "model"
    with atomic_directory(model) as tmp:
        (tmp / "weights").write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_directory(model) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("interrupted")
    assert (model / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


class _UnserialisableHistory:
    """A method whose training writes a model but returns a history JSON cannot hold."""

    def train(self, prepared, settings, model_dir, workdir):
        (model_dir / "model.h5").write_text("new")
        return [{"epoch": 1, "loss": object()}]


def test_a_history_that_cannot_be_written_leaves_neither_model_nor_history(project, monkeypatch):
    root = project["root"]
    (root / "model").mkdir()
    (root / "model" / "model.h5").write_text("old")
    (root / "history.json").write_text("[]\n")
    monkeypatch.setattr("vad.methods.runner.load_method", lambda plan: _UnserialisableHistory())
    with pytest.raises(TypeError, match="not JSON serializable"):
        run_train(
            "baseline",
            root / "settings" / "baseline" / "train.json",
            root / "prepared.h5",
            root / "model",
            root / "work",
            root / "history.json",
        )
    assert (root / "model" / "model.h5").read_text() == "old"
    assert (root / "history.json").read_text() == "[]\n"
    assert sorted(p.name for p in root.iterdir() if "tmp" in p.name) == []


def test_a_failing_figure_leaves_the_previous_reports(project, monkeypatch):
    """Metrics, plot data, figures and summary appear together: a failure while drawing leaves
    what was there (under DVC the evaluate outputs are `persist`, so that is the last run's)."""
    from vad.eval.postprocess import Protocol
    from vad.report import write_report

    root = project["root"]
    settings, inputs = root / "settings" / "baseline", root / "inputs" / "baseline.json"
    run_prepare("baseline", settings / "prepare.json", inputs, root / "prepared.h5")
    run_train(
        "baseline", settings / "train.json", root / "prepared.h5", root / "model", root / "w",
        root / "history.json",
    )  # fmt: skip
    run_score(
        "baseline", settings / "score.json", inputs, root / "prepared.h5", root / "model",
        root / "scores.h5",
    )  # fmt: skip
    reports = root / "reports"
    outputs = [reports / "metrics.json", reports / "plots", reports / "figures"]
    arguments = [
        {"baseline": str(root / "scores.h5")},
        {"baseline": "method"},
        root / "gt.h5",
        project["frames"],
        Protocol(),
        *outputs,
        reports / "summary.md",
    ]
    (reports / "plots").mkdir(parents=True)
    (reports / "plots" / "roc_old.json").write_text("[]\n")
    (reports / "summary.md").write_text("old\n")

    def broken(*args, **kwargs):
        raise RuntimeError("overlay failed")

    monkeypatch.setattr("vad.report.write_overlays", broken)
    with pytest.raises(RuntimeError, match="overlay failed"):
        write_report(*arguments)
    files = sorted(str(p.relative_to(reports)) for p in reports.rglob("*") if p.is_file())
    assert files == ["plots/roc_old.json", "summary.md"]
    assert (reports / "summary.md").read_text() == "old\n"
    monkeypatch.undo()
    write_report(*arguments)
    assert sorted(p.name for p in (reports / "plots").iterdir()) == ["roc_baseline.json"]
    assert json.loads((reports / "metrics.json").read_text())["baseline"]["frame_auc_micro"] >= 0
    assert (reports / "per_video_auc.json").is_file() and (
        reports / "figures" / "roc.png"
    ).is_file()
    assert "| baseline | method |" in (reports / "summary.md").read_text()


def test_checkpoints_of_other_code_are_not_resumed(project, monkeypatch):
    """The train stage's workdir records the code digests of the settings file; a run under
    other code (a changed module) starts from an empty workdir, the same code keeps it."""
    root = project["root"]
    settings = root / "settings" / "baseline" / "train.json"
    work = root / "work_code"

    def train(path: Path) -> None:
        run_train("baseline", path, root / "prepared.h5", root / "model_code", work,
                  root / "history_code.json")  # fmt: skip

    run_prepare("baseline", root / "settings" / "baseline" / "prepare.json",
                root / "inputs" / "baseline.json", root / "prepared.h5")  # fmt: skip
    train(settings)
    (work / "checkpoint.pt").write_text("kept")
    train(settings)
    assert (work / "checkpoint.pt").read_text() == "kept"
    plan = json.loads(settings.read_text())
    plan["code"]["vad/training.py"] = "0" * 32
    changed = root / "changed.json"
    changed.write_text(json.dumps(plan))
    train(changed)
    assert not (work / "checkpoint.pt").exists()
    assert json.loads((work / "code.json").read_text()) == plan["code"]
    (work / "checkpoint.pt").write_text("unrecorded")
    (work / "code.json").unlink()
    train(changed)
    assert not (work / "checkpoint.pt").exists()
