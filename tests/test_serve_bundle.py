"""Run bundles: what `vad export` writes from a trained run, and the clear errors of loading a
bundle with a missing, truncated or altered file, or of another format version."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from serve_fixtures import baseline_run

from vad.config import ConfigError
from vad.methods.registry import get_method
from vad.scores import read_scores
from vad.serve.bundle import MANIFEST, BundleError, load_bundle
from vad.serve.export import export_bundle


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return baseline_run(tmp_path_factory.mktemp("run"))


@pytest.fixture
def bundle(run, tmp_path):
    return export_bundle(tmp_path / "bundle", root=run)


def training_scores(run) -> np.ndarray:
    train = read_scores(run / "data" / "scores" / "baseline.h5").train.values()
    return np.concatenate([video.frame_scores for video in train])


def test_export_writes_models_params_statistics_and_provenance(run, bundle):
    loaded = load_bundle(bundle)
    assert loaded.default_scorer == "baseline"
    assert (loaded.model_dir("baseline") / "model.h5").is_file()
    assert loaded.params["baseline"] == {"size": [112, 84], "patch": 28}
    entry = loaded.entry("baseline")
    scores = training_scores(run)
    assert entry["train_mean"] == pytest.approx(scores.mean(), rel=1e-6)
    assert np.mean(scores <= entry["threshold"]) >= 0.995  # the 99.5% quantile by default
    assert entry["threshold"] <= scores.max()
    assert loaded.manifest["training_frames"] == {"color": "gray", "size": [112, 84]}
    assert loaded.manifest["serve"] == {
        "threshold_quantile": 0.995,
        "min_duration": 5,
        "merge_gap": 10,
        "threads": 1,
    }
    assert set(loaded.manifest["provenance"]) == {"git", "dvc_lock_outs", "metrics"}
    assert set(loaded.manifest["files"]) == {"params.yaml", "models/baseline/model.h5"}


def test_the_threshold_quantile_is_a_param(run, tmp_path):
    params = yaml.safe_load((run / "params.yaml").read_text())
    params["serve"]["threshold_quantile"] = 0.5
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("data",):
        (copy / name).symlink_to(run / name)
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    entry = load_bundle(export_bundle(tmp_path / "bundle", root=copy)).entry("baseline")
    assert entry["threshold"] == pytest.approx(np.median(training_scores(run)))
    params["serve"]["threshold_quantile"] = 1.5
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="serve.threshold_quantile"):
        export_bundle(tmp_path / "bad", root=copy)


def test_an_unknown_method_is_refused_naming_what_the_run_has(run, tmp_path):
    with pytest.raises(ValueError, match="gmfc_vae_rgb.*the run has baseline"):
        export_bundle(tmp_path / "bundle", root=run, methods=["gmfc_vae_rgb"])


def test_a_missing_file_is_named(bundle):
    (bundle / "models" / "baseline" / "model.h5").unlink()
    with pytest.raises(BundleError, match=r"model\.h5: missing"):
        load_bundle(bundle)


def test_a_truncated_file_is_named(bundle):
    model = bundle / "models" / "baseline" / "model.h5"
    model.write_bytes(model.read_bytes()[:-100])
    with pytest.raises(BundleError, match=r"model\.h5: .* bytes, the manifest says .*truncated"):
        load_bundle(bundle)


def test_an_altered_file_is_named(bundle):
    params = bundle / "params.yaml"
    text = params.read_text()
    params.write_text(text.replace("patch: 28", "patch: 14", 1).ljust(len(text)))
    with pytest.raises(BundleError, match=r"params\.yaml: content differs"):
        load_bundle(bundle)


def test_another_format_version_is_refused(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["version"] = 99
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="version 99"):
        load_bundle(bundle)


def test_a_missing_or_truncated_manifest_is_named(bundle):
    manifest = bundle / MANIFEST
    manifest.write_text(manifest.read_text()[:50])
    with pytest.raises(BundleError, match=r"manifest\.json: unreadable"):
        load_bundle(bundle)
    manifest.unlink()
    with pytest.raises(BundleError, match=r"manifest\.json: missing"):
        load_bundle(bundle)


def test_a_method_that_cannot_stream_is_left_out_or_refused(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(get_method("velocity"), "streaming", None)  # as a method without one
    params = yaml.safe_load((run / "params.yaml").read_text())
    params["methods"] = ["baseline", "velocity"]
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "data").symlink_to(run / "data")
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    loaded = load_bundle(export_bundle(tmp_path / "bundle", root=copy))
    assert loaded.manifest["methods"] == ["baseline"]
    assert "velocity left out" in capsys.readouterr().out
    with pytest.raises(ValueError, match="velocity: does not support streaming scoring"):
        export_bundle(tmp_path / "refused", root=copy, methods=["velocity"])
