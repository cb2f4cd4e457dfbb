"""`vad diagnose gmfc_vae`: patch labels from masks, the AUC, and the whole command on a tiny
synthetic run (frames, dynamic flow, both streams trained for one epoch, the settings files)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

import vad.diagnose.gmfc_vae as gmfc_diagnosis
from vad.cli import main
from vad.datasets import open_dataset
from vad.diagnose.command import add_diagnose_arguments
from vad.diagnose.gmfc_vae import STREAMS, DiagnosisOptions, patch_scores, sample_patches
from vad.diagnose.patch_labels import (
    AMBIGUOUS,
    ANOMALOUS,
    NORMAL,
    cell_coverage,
    patch_classes,
)
from vad.diagnose.ranking import separation_auc
from vad.frame_cache import write_frame_cache
from vad.methods.base import Inputs
from vad.methods.gmfc_vae.model import GMFCVAE
from vad.methods.gmfc_vae.train import to_tensor
from vad.methods.plan import write_settings
from vad.methods.registry import get_method
from vad.motion.dynflow_runner import run_dynamic_flow_stage
from vad.motion.flow_runner import run_flow_stage
from vad.params.dynamic_flow import dynamic_flow_settings

REPO = Path(__file__).resolve().parents[1]
SCENE = {
    "seed": 3,
    "width": 168,
    "height": 112,
    "train_videos": 2,
    "test_videos": 2,
    "frames_per_video": 16,
}
SIZE = [168, 112]  # a 6x4 grid of 28x28 patches


# ---- patch labels ---------------------------------------------------------------------------


def test_coverage_counts_the_mask_pixels_of_each_cell() -> None:
    masks = np.zeros((1, 8, 12), bool)  # 2x3 cells of 4x4 pixels
    masks[0, 0:4, 0:4] = True  # cell (0, 0): all of it
    masks[0, 5, 9:11] = True  # cell (1, 2): 2 of 16 pixels
    masks[0, 3, 4] = True  # cell (0, 1): 1 of 16
    coverage = cell_coverage(masks, 2, 3)
    expected = np.array([[[1.0, 1 / 16, 0.0], [0.0, 0.0, 2 / 16]]])
    np.testing.assert_allclose(coverage, expected)
    classes = patch_classes(coverage, 0.1)
    assert classes.tolist() == [[[ANOMALOUS, AMBIGUOUS, NORMAL], [NORMAL, NORMAL, ANOMALOUS]]]
    stricter = patch_classes(coverage, 0.2)
    assert stricter.tolist() == [[[ANOMALOUS, AMBIGUOUS, NORMAL], [NORMAL, NORMAL, AMBIGUOUS]]]


def test_coverage_puts_each_pixel_in_the_cell_holding_its_centre() -> None:
    """5 rows into 2 cells: centres 0.5, 1.5 (x 2/5 = 0.2, 0.6) fall in cell 0, rows 2-4 in
    cell 1 (row 2's centre sits on the border and goes to the later cell)."""
    masks = np.zeros((2, 5, 2), bool)
    masks[0, 2, 0] = True  # row 2 belongs to the second cell: 1 of 3 pixels
    masks[1, 1, 1] = True  # row 1 to the first: 1 of 2
    coverage = cell_coverage(masks, 2, 2)
    np.testing.assert_allclose(coverage[0], [[0, 0], [1 / 3, 0]])
    np.testing.assert_allclose(coverage[1], [[0, 1 / 2], [0, 0]])


def test_a_mask_smaller_than_the_grid_or_a_bad_fraction_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be cut into 10 grid cells"):
        cell_coverage(np.zeros((1, 8, 20), bool), 10, 15)
    with pytest.raises(ValueError, match=r"mask fraction must be in \(0, 1\]"):
        patch_classes(np.zeros((1, 2, 2)), 0.0)


# ---- AUC and sampling -----------------------------------------------------------------------


def test_auc_is_one_when_the_energy_separates_the_classes() -> None:
    normal, anomalous = np.array([1.0, 2.0, 3.0]), np.array([3.5, 10.0])
    assert separation_auc(normal, anomalous) == 1.0
    assert separation_auc(anomalous, normal) == 0.0
    labels = np.r_[np.zeros(3), np.ones(2)]
    assert roc_auc_score(labels, np.r_[normal, anomalous]) == 1.0


def test_auc_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    normal = rng.integers(0, 20, 300).astype(float)  # many ties within and across classes
    anomalous = rng.integers(5, 25, 120).astype(float)
    labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    expected = roc_auc_score(labels, np.r_[normal, anomalous])
    assert separation_auc(normal, anomalous) == pytest.approx(expected, abs=1e-12)
    assert separation_auc(normal, []) is None
    with pytest.raises(ValueError, match="anomalous scores hold NaN"):
        separation_auc(normal, [np.nan])


def test_sampling_is_seeded_and_bounded_per_class() -> None:
    classes = np.array([ANOMALOUS] * 5 + [NORMAL] * 50, np.int8)
    chosen = sample_patches(classes, 10, seed=4)
    assert np.array_equal(chosen, sample_patches(classes, 10, seed=4))
    assert (classes[chosen] == ANOMALOUS).sum() == 5 and (classes[chosen] == NORMAL).sum() == 10
    assert not np.array_equal(chosen, sample_patches(classes, 10, seed=5))


def test_per_patch_elbo_averages_to_the_models_batch_loss_across_batches(monkeypatch) -> None:
    """The per-patch negative ELBO (vmap of the model's loss) with the seeded draws, averaged,
    is the model's own loss of the whole set with the same draws (over 3 batches); energies
    are its forward."""
    monkeypatch.setattr(gmfc_diagnosis, "BATCH", 16)
    torch.manual_seed(0)
    model = GMFCVAE(n_components=3, latent_dim=8).eval()
    patches = np.random.default_rng(2).integers(0, 256, (40, 28, 28, 3), dtype=np.uint8)
    scores = patch_scores(model, patches, elbo_samples=2, seed=7, device="cpu")
    noise = torch.randn((2, len(patches), 8), generator=torch.Generator().manual_seed(7))
    x = to_tensor(patches, torch.device("cpu"))
    with torch.no_grad():
        total, terms = model.loss(x, eps=noise)
        energy = model(x).numpy()
    assert scores["neg_elbo"].mean() == pytest.approx(float(total), rel=1e-5)
    kl = float(terms["kl_latent"] + terms["kl_cluster"])
    assert scores["kl"].mean() == pytest.approx(kl, rel=1e-5)
    np.testing.assert_allclose(scores["energy"], energy, rtol=1e-4)
    assert scores["reconstruction"].shape == (len(patches),)
    assert (scores["reconstruction"] > 0).all()


def test_command_defaults_are_the_pipelines_paths_and_the_options_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_diagnose_arguments(parser)
    args = parser.parse_args(["gmfc_vae"])
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert args.frames in stages["frames"]["outs"]
    assert args.ground_truth in stages["evaluate"]["cmd"].split()
    assert args.dynflow in stages["dynamic_flow"]["outs"]
    assert "data/models/${item}" in stages["train"]["do"]["outs"]
    assert args.models == "data/models" and args.settings == stages["settings"]["outs"][0]
    options = DiagnosisOptions()
    assert (args.mask_fraction, args.max_patches, args.seed, args.elbo_samples) == (
        options.mask_fraction,
        options.max_patches,
        options.seed,
        options.elbo_samples,
    )


# ---- the command on a tiny run --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """data/interim/{frames,ground_truth,flow,dynflow}.h5, data/settings and both GMFC-VAE
    streams trained (1 + 1 epochs on 200 patches), laid out as `dvc repro` lays them out."""
    root = tmp_path_factory.mktemp("run")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["synthetic"] = dict(SCENE)
    params["flow"].update(size=SIZE, n_jobs=1, dis={"preset": "ultrafast"})
    params["dynamic_flow"].update(window=6, n_jobs=1)
    params["patches"].update(size=SIZE, n_train=200)
    params["gmfc_vae"].update(
        K=2, pretrain_epochs=1, epochs=1, device="cpu", threads=2, score_batch_size=500
    )
    interim = root / "data" / "interim"
    frames, dynflow = interim / "frames.h5", interim / "dynflow.h5"
    dataset = open_dataset("synthetic", None, options=SCENE)
    write_frame_cache(dataset, frames, interim / "ground_truth.h5", "gray", progress=False)
    run_flow_stage(frames, interim / "flow.h5", "dis", {"preset": "ultrafast"}, SIZE, 1, False)
    settings, _ = dynamic_flow_settings(params)
    run_dynamic_flow_stage(interim / "flow.h5", dynflow, settings, n_jobs=1, progress=False)
    write_settings(params, root / "data" / "settings")
    torch_threads = torch.get_num_threads()
    for stream in STREAMS:
        method = get_method(f"gmfc_vae_{stream}")
        stages = method.settings(params)
        prepared = root / "data" / "prepared" / f"{method.name}.h5"
        method.prepare(Inputs({"frames": frames, "dynflow": dynflow}), stages["prepare"], prepared)
        model_dir = root / "data" / "models" / method.name
        model_dir.mkdir(parents=True)
        method.train(prepared, stages["train"], model_dir, root / "work" / method.name)
    torch.set_num_threads(torch_threads)
    return root


def diagnose(root: Path, *extra: str) -> None:
    data = root / "data"
    main(
        [
            "diagnose",
            "gmfc_vae",
            "--frames",
            str(data / "interim" / "frames.h5"),
            "--dynflow",
            str(data / "interim" / "dynflow.h5"),
            "--ground-truth",
            str(data / "interim" / "ground_truth.h5"),
            "--models",
            str(data / "models"),
            "--settings",
            str(data / "settings"),
            "--out",
            str(root / "reports" / "diagnostics"),
            "--max-patches",
            "100",
            "--elbo-samples",
            "2",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def diagnosed(tiny_run) -> Path:
    diagnose(tiny_run)
    return tiny_run / "reports" / "diagnostics"


def test_the_command_writes_both_streams_aucs_counts_and_figures(diagnosed) -> None:
    out = diagnosed
    report = json.loads((out / "gmfc_vae.json").read_text())
    assert set(report["streams"]) == {"rgb", "dynflow"}
    assert report["options"]["mask_fraction"] == 0.1 and report["options"]["max_patches"] == 100
    assert report["inputs"]["frames"]["path"].endswith("frames.h5")
    assert len(report["inputs"]["dynflow"]["digest"]) == 32
    for stream, entry in report["streams"].items():
        assert entry["grid"] == {"rows": 4, "cols": 6}
        assert entry["score_settings"]["size"] == SIZE
        assert entry["model"]["config"]["n_components"] == 2
        assert entry["model"]["train_settings"]["epochs"] == 1
        moving = entry["counts"]["moving"]
        assert moving["anomalous"] > 0 and moving["normal"] > 0, (stream, entry["counts"])
        all_patches = sum(n for kind in entry["counts"].values() for n in kind.values())
        assert all_patches == 2 * 16 * 24  # every test patch counted once
        sampled = entry["sampled"]
        assert sampled["anomalous"] == min(100, moving["anomalous"])
        assert sampled["normal"] == min(100, moving["normal"])
        assert set(entry["auc"]) == {"energy", "reconstruction", "neg_elbo", "kl"}
        for name, auc in entry["auc"].items():
            assert auc is not None and 0.0 <= auc <= 1.0, (stream, name, auc)
        energy = entry["summary"]["energy"]
        assert energy["anomalous"]["q05"] <= energy["anomalous"]["q95"]
    for figure in ("gmfc_vae_energy_hist.png", "gmfc_vae_extremes.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "gmfc_vae.json",
        "gmfc_vae_energy_hist.png",
        "gmfc_vae_extremes.png",
    ]  # no temporary file left behind


def test_the_same_run_writes_the_same_report(tiny_run, diagnosed) -> None:
    first = (diagnosed / "gmfc_vae.json").read_text()
    diagnose(tiny_run)
    assert (diagnosed / "gmfc_vae.json").read_text() == first


def test_a_missing_model_folder_names_it_and_its_stage(tiny_run, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        diagnose(tiny_run, "--models", str(tmp_path / "nowhere"))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "nowhere/gmfc_vae_rgb: model folder not found" in error
    assert "dvc repro train@gmfc_vae_rgb" in error
