"""Spatio-temporal dissociation behind the method interface: clips, deep K-means (eqs. 10-11),
settings, and prepare -> train -> score on a tiny synthetic scene (bit-identical resume, the
ablation switches, a video's first frames, block boundaries)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from vad.cache import open_cache
from vad.config import ConfigError
from vad.datasets import open_dataset
from vad.frame_cache import load_frames, write_frame_cache
from vad.methods.clip_batches import clamped_clip
from vad.methods.dissociation import train as train_module
from vad.methods.dissociation.clips import clip_ending_at, training_starts
from vad.methods.dissociation.clustering import (
    DeepKMeans,
    cluster_distance,
    cluster_loss,
    initial_centres,
    soft_assignment,
)
from vad.methods.dissociation.method import MODEL_FILE, PRESET_NAMES
from vad.methods.dissociation.model import build_model, load_model
from vad.methods.dissociation.presets import PRESETS, resolved_preset
from vad.methods.dissociation.score import score_video
from vad.methods.dissociation.train import CHECKPOINT_NAME, autoencoder_losses, train_model
from vad.methods.plan import write_inputs, write_settings
from vad.methods.registry import get_method
from vad.methods.runner import run_prepare, run_train
from vad.methods.score_runner import run_score
from vad.scores import read_scores

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SCENE = {
    "seed": 5,
    "width": 112,
    "height": 84,
    "train_videos": 2,
    "test_videos": 2,
    "frames_per_video": 20,
}
TINY = {
    "size": [32, 24],
    "epochs": [1, 1],
    "batch_size": 4,
    "clusters": 4,
    "kmeans_samples": 64,
    "clips_per_epoch": 8,
    "train_stride": 2,
    "map_cell": 8,
    "device": "cpu",
    "threads": 1,
}


def dissociation_params(**changes) -> dict:
    params = copy.deepcopy(PARAMS)
    params["methods"] = ["dissociation"]
    params["dissociation"].update(TINY, **changes)
    return params


# --- clips ---------------------------------------------------------------------------------


def test_training_clips_start_every_stride_and_a_short_video_repeats_its_last_frame():
    assert training_starts(12, 5, 3) == [0, 3, 6]
    assert training_starts(5, 5, 2) == [0]
    assert training_starts(3, 5, 2) == [0]
    np.testing.assert_array_equal(clamped_clip(0, 5, 3), [0, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="at least one frame"):
        training_starts(0, 5, 1)


def test_a_frame_is_the_last_of_its_clip_and_the_first_frames_repeat_frame_0():
    np.testing.assert_array_equal(clip_ending_at(7, 5), [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(clip_ending_at(1, 5), [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(clip_ending_at(0, 5), [0, 0, 0, 0, 0])


# --- deep K-means --------------------------------------------------------------------------


def test_soft_assignments_sum_to_one_and_eq_10_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    vectors, centres, alpha = rng.random((6, 5)), rng.random((3, 5)), 2.5
    weights = soft_assignment(torch.tensor(vectors), torch.tensor(centres), alpha).numpy()
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-12)
    expected = []
    for r in vectors:
        squared = [float(((r - c) ** 2).sum()) for c in centres]
        exps = [np.exp(-alpha * d) for d in squared]
        expected.append(sum(e / sum(exps) * d for e, d in zip(exps, squared, strict=True)))
    got = cluster_distance(torch.tensor(vectors), torch.tensor(centres), alpha).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_far_centres_do_not_overflow_and_a_vector_on_a_centre_has_distance_near_zero():
    centres = torch.tensor([[0.0, 0.0], [1e3, 1e3]])
    vectors = torch.tensor([[0.0, 0.0], [5e2, 5e2 + 1.0]])
    weights = soft_assignment(vectors, centres, alpha=10.0)
    assert torch.isfinite(weights).all()
    assert cluster_distance(vectors[:1], centres, 10.0).item() == pytest.approx(0.0, abs=1e-6)


def test_deep_kmeans_gives_eq_10_per_location_and_eq_11_is_their_mean():
    rng = np.random.default_rng(1)
    representation = torch.tensor(rng.random((2, 3, 4, 5)), dtype=torch.float32)
    kmeans = DeepKMeans(rng.random((4, 3)), alpha=1.0)
    distances = kmeans(representation)
    assert distances.shape == (2, 4, 5)
    one = representation[1, :, 2, 3][None]
    assert distances[1, 2, 3].item() == pytest.approx(
        cluster_distance(one, kmeans.centres.detach(), 1.0).item(), rel=1e-6
    )
    assert cluster_loss(distances).item() == pytest.approx(distances.mean().item())
    with pytest.raises(ValueError, match="channels"):
        kmeans(representation[:, :2])


def test_initial_centres_are_seeded_kmeans_and_need_k_vectors():
    rng = np.random.default_rng(2)
    vectors = np.concatenate([rng.normal(0, 0.01, (20, 2)), rng.normal(5, 0.01, (20, 2))])
    centres = initial_centres(vectors, 2, seed=0)
    np.testing.assert_allclose(sorted(centres[:, 0]), [0, 5], atol=0.05)
    np.testing.assert_array_equal(centres, initial_centres(vectors, 2, seed=0))
    with pytest.raises(ValueError, match="at least K = 50"):
        initial_centres(vectors, 50, seed=0)


# --- settings ------------------------------------------------------------------------------


def test_presets_hold_the_papers_values():
    assert set(PRESETS) == set(PRESET_NAMES)
    for name in ("ped2", "avenue", "shanghaitech"):
        preset = PRESETS[name]
        assert preset.size == (256, 256) and preset.clip_length == 5 and preset.clusters == 32
        assert (preset.learning_rate, preset.lr_drop_epoch, preset.lr_after_drop) == (
            1e-4, 100, 1e-5
        )  # fmt: skip
        assert preset.centre_learning_rate == 1e-5
    assert PRESETS["ped2"].epochs == (50, 100)
    assert PRESETS["avenue"].epochs == PRESETS["shanghaitech"].epochs == (100, 200)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": [30, 24]}, "multiples of 8"),
        ({"streams": []}, "dissociation.streams"),
        ({"streams": ["spatial", "spatial"]}, "dissociation.streams"),
        ({"streams": ["appearance"]}, "dissociation.streams"),
        ({"attention": "yes"}, "dissociation.attention"),
        ({"epochs": [1]}, "dissociation.epochs"),
        ({"alpha": 0}, "dissociation.alpha"),
        ({"gradient_weight": -0.1}, "dissociation.gradient_weight"),
        ({"clusters": -1}, "dissociation.clusters"),
        ({"kmeans_samples": 2}, "kmeans_samples"),
        ({"preset": "gpu"}, "dissociation.preset"),
        ({"kk": 1}, "dissociation.kk"),
    ],
)
def test_a_bad_setting_is_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        get_method("dissociation").settings(dissociation_params(**changes))


def test_the_gradient_weight_reaches_eq_6_in_training():
    method = get_method("dissociation")
    clip = torch.rand(2, 1, 5, 24, 32, generator=torch.Generator().manual_seed(0))
    losses = {}
    for weight in (None, 0.0, 0.5):
        settings = method.settings(dissociation_params(gradient_weight=weight))["train"]
        preset = resolved_preset(settings)
        model = build_model(preset, 1, ("spatial", "motion"), True, seed=0)
        with torch.no_grad():
            losses[weight] = autoencoder_losses(model, clip, with_cluster=False)
    assert resolved_preset(method.settings(dissociation_params())["train"]).gradient_weight == 1
    default, none, half = (losses[w] for w in (None, 0.0, 0.5))
    assert default["loss"] == default["spatial"] + default["motion_l2"] + default["motion_gradient"]
    assert none["loss"] == none["spatial"] + none["motion_l2"]
    torch.testing.assert_close(
        half["loss"], half["spatial"] + half["motion_l2"] + 0.5 * half["motion_gradient"]
    )


def test_map_cell_is_a_score_setting_only():
    method = get_method("dissociation")
    a = method.settings(dissociation_params())
    b = method.settings(dissociation_params(map_cell=4))
    assert a["train"] == b["train"] and a["prepare"] == b["prepare"] and a["score"] != b["score"]


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny synthetic scene's frames, and the model prepared and trained on it through the
    stage runners (1 + 1 epochs of 8 clips at 32x24, K = 4)."""
    root = tmp_path_factory.mktemp("dissociation")
    frames = root / "frames.h5"
    dataset = open_dataset("synthetic", None, options=SCENE)
    write_frame_cache(dataset, frames, root / "gt.h5", "gray", progress=False)
    write_settings(dissociation_params(), root / "settings")
    caches = {name: frames for name in ("frames", "flow", "dynflow", "objects", "stc")}
    write_inputs(root / "settings" / "caches.json", caches, root / "inputs")
    threads = torch.get_num_threads()
    settings = root / "settings" / "dissociation"
    run_prepare("dissociation", settings / "prepare.json", root / "inputs" / "dissociation.json",
                root / "prepared.h5")  # fmt: skip
    run_train("dissociation", settings / "train.json", root / "prepared.h5", root / "model",
              root / "work", root / "history.json")  # fmt: skip
    torch.set_num_threads(threads)
    return root


def score(root: Path, out: Path, settings: str = "settings") -> Path:
    threads = torch.get_num_threads()
    run_score("dissociation", root / settings / "dissociation" / "score.json",
              root / "inputs" / "dissociation.json", root / "prepared.h5", root / "model",
              out)  # fmt: skip
    torch.set_num_threads(threads)
    return out


def test_prepare_holds_the_training_frames_at_the_models_size(run):
    with open_cache(run / "prepared.h5") as f:
        assert sorted(f["train"]) == ["train_00", "train_01"]
        stored = f["train"]["train_00"]["frames"][:]
        assert stored.shape == (20, 24, 32, 1) and f.attrs["train_digest"]
    expected = load_frames(run / "frames.h5", "train/train_00", size=(32, 24))
    np.testing.assert_array_equal(stored, expected)


def test_the_history_has_a_row_per_epoch_with_every_term(run):
    rows = json.loads((run / "history.json").read_text())
    phases = [(row["epoch"], row["phase"]) for row in rows]
    assert phases == [(1, "autoencoders"), (2, "clustering")]
    assert len({tuple(row) for row in rows}) == 1  # same keys in every row (dvc plots)
    assert rows[0]["cluster"] is None and rows[1]["cluster"] > 0
    assert rows[0]["spatial"] > 0 and rows[0]["motion_l2"] > 0


def test_a_run_scores_every_video_with_maps_and_eq_13s_fusion(run, tmp_path):
    scores = read_scores(score(run, tmp_path / "scores.h5"))
    assert set(scores.test) == {"test_00", "test_01"}
    assert set(scores.train) == {"train_00", "train_01"}
    test = scores.test["test_00"]
    assert test.frame_scores.shape == (20,) and np.isfinite(test.frame_scores).all()
    assert test.score_maps.shape == (20, 3, 4) and (test.score_maps >= 0).all()
    assert set(test.extras) == {"prediction_error", "cluster_distance"}
    assert (test.extras["cluster_distance"] > 0).all()
    # a frame's score is the mean of the cells' means (equal cells: 24x32 in 8x8 cells)
    np.testing.assert_allclose(test.frame_scores, test.score_maps.mean((1, 2)), rtol=1e-5)
    assert scores.attrs["clusters"] == 4 and scores.attrs["streams"] == ["spatial", "motion"]


def test_scores_do_not_depend_on_the_frame_blocks(run):
    model = load_model(run / "model" / MODEL_FILE, "cpu")
    whole = score_video(model, run / "frames.h5", "test/test_01", 8, torch.device("cpu"))
    blocks = score_video(model, run / "frames.h5", "test/test_01", 8, torch.device("cpu"), 3)
    np.testing.assert_allclose(blocks.frame_scores, whole.frame_scores, rtol=1e-6)
    np.testing.assert_allclose(blocks.score_maps, whole.score_maps, rtol=1e-6, atol=1e-9)


def test_the_first_frame_is_scored_from_a_static_clip(run, tmp_path):
    """Frame 0 has no earlier frames: its clip repeats it, so it scores as a video of one
    repeated frame would."""
    model = load_model(run / "model" / MODEL_FILE, "cpu")
    frames = load_frames(run / "frames.h5", "test/test_00")
    still = tmp_path / "still.h5"
    with h5py.File(still, "w") as f:
        f.create_dataset("test/still/frames", data=np.repeat(frames[:1], 5, axis=0))
    first = score_video(model, run / "frames.h5", "test/test_00", 8, torch.device("cpu"))
    static = score_video(model, still, "test/still", 8, torch.device("cpu"))
    assert first.frame_scores[0] == pytest.approx(static.frame_scores[4], rel=1e-6)


def trained(run: Path, workdir: Path, epochs: tuple[int, int], **changes):
    settings = get_method("dissociation").settings(
        dissociation_params(epochs=list(epochs), **changes)
    )["train"]
    return train_model(
        run / "prepared.h5", resolved_preset(settings), tuple(settings["streams"]),
        settings["attention"], 0, workdir, torch.device("cpu"),
    )  # fmt: skip


def assert_same_training(a, b) -> None:
    assert a[0].modules().keys() == b[0].modules().keys()
    for name, module in a[0].modules().items():
        state_a, state_b = module.state_dict(), b[0].modules()[name].state_dict()
        for key in state_a:
            assert torch.equal(state_a[key], state_b[key]), (name, key)
    for phase in train_module.PHASES:
        assert a[1][phase] == b[1][phase]


def test_resume_is_bit_identical(run, tmp_path, monkeypatch):
    reference = trained(run, tmp_path / "straight", (2, 2))
    trained(run, tmp_path / "split", (2, 1))  # stop after one alternating epoch
    assert_same_training(reference, trained(run, tmp_path / "split", (2, 2)))

    original = train_module.run_epoch
    calls = {"n": 0}

    def crash_in_the_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "run_epoch", crash_in_the_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        trained(run, tmp_path / "crash", (2, 2))
    checkpoint = torch.load(tmp_path / "crash" / CHECKPOINT_NAME, weights_only=True)
    assert (checkpoint["phase"], checkpoint["epoch"]) == ("autoencoders", 2)
    monkeypatch.setattr(train_module, "run_epoch", original)
    assert_same_training(reference, trained(run, tmp_path / "crash", (2, 2)))


def test_a_few_epochs_lower_each_loss(run):
    history = trained(run, run / "few", (4, 4), clips_per_epoch=16)[1]
    for phase, terms in (
        ("autoencoders", ("loss", "spatial", "motion_l2")),
        ("clustering", ("loss", "cluster")),
    ):
        for term in terms:
            values = history[phase][term]
            assert values[-1] < values[0], (phase, term, values)


@pytest.mark.parametrize(
    ("changes", "extras", "modules"),
    [
        ({"streams": ["spatial"], "clusters": 0}, {"prediction_error"}, {"network"}),
        ({"streams": ["motion"], "attention": False}, {"prediction_error", "cluster_distance"},
         {"network", "kmeans"}),
    ],
)  # fmt: skip
def test_the_ablation_switches_train_and_score_what_they_name(
    run, tmp_path, changes, extras, modules
):
    folder = tmp_path / "settings"
    write_settings(dissociation_params(**changes), folder)
    model_dir = tmp_path / "model"
    run_train("dissociation", folder / "dissociation" / "train.json", run / "prepared.h5",
              model_dir, tmp_path / "work", tmp_path / "history.json")  # fmt: skip
    model = load_model(model_dir / MODEL_FILE, "cpu")
    assert set(model.modules()) == modules and model.streams == tuple(changes["streams"])
    rows = json.loads((tmp_path / "history.json").read_text())
    if changes.get("clusters") == 0:
        assert [row["phase"] for row in rows] == ["autoencoders"]
    out = tmp_path / "scores.h5"
    run_score("dissociation", folder / "dissociation" / "score.json",
              run / "inputs" / "dissociation.json", run / "prepared.h5", model_dir,
              out)  # fmt: skip
    test = read_scores(out).test["test_00"]
    assert set(test.extras) == extras and np.isfinite(test.frame_scores).all()


def test_the_streaming_scorer_equals_the_score_stage(run):
    """`vad score`'s scorer: every frame scored as it arrives (latency 0), first frames from
    clips repeating frame 0, scores and maps equal to score@dissociation's up to float32
    rounding (the stage runs clips in batches of 8, the stream one at a time: ~2e-5)."""
    method = get_method("dissociation")
    scorer = method.stream_scorer(run / "model", dissociation_params())
    model = load_model(run / "model" / MODEL_FILE, "cpu")
    expected = score_video(model, run / "frames.h5", "test/test_01", 8, torch.device("cpu"))
    scored = []
    for index, frame in enumerate(load_frames(run / "frames.h5", "test/test_01")):
        returned = scorer.push(frame)
        assert [s.index for s in returned] == [index]
        scored += returned
    assert scorer.finish() == [] and scorer.latency == 0
    np.testing.assert_allclose([s.score for s in scored], expected.frame_scores, rtol=1e-4)
    np.testing.assert_allclose(
        np.stack([s.score_map for s in scored]), expected.score_maps, rtol=1e-4, atol=1e-7
    )
