"""ITAE + Glow behind the method interface: clips, eq. 7-9 scoring functions, settings, and
prepare -> train -> score on a tiny synthetic scene (bit-identical resume, score parts, short
videos)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vad.cache import open_cache
from vad.config import ConfigError
from vad.datasets import open_dataset
from vad.frame_cache import load_frames, write_frame_cache
from vad.methods.clip_batches import clamped_clip
from vad.methods.itae import train as train_module
from vad.methods.itae.clip_scores import (
    cell_maps,
    combined_score,
    error_maps,
    frame_errors,
    likelihood_score,
)
from vad.methods.itae.clips import FrameAverage, VideoClips, clip_starts
from vad.methods.itae.presets import PRESETS, resolved_preset
from vad.methods.itae.train import CHECKPOINT_NAME, train_model
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
    "size": [32, 32],
    "epochs": [1, 1],
    "batch_sizes": [4, 4],
    "clips_per_epoch": 8,
    "train_stride": 4,
    "test_stride": 4,
    "glow_steps": 2,
    "glow_hidden": 8,
    "map_cell": 8,
    "device": "cpu",
    "threads": 1,
}


def itae_params(**changes) -> dict:
    params = copy.deepcopy(PARAMS)
    params["methods"] = ["itae"]
    params["itae"].update(TINY, **changes)
    return params


# --- clips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "length", "stride", "expected"),
    [(20, 16, 4, [0, 4]), (16, 16, 4, [0]), (23, 16, 4, [0, 4, 7]), (5, 16, 4, [0])],
)
def test_clips_cover_every_frame_the_last_ending_at_the_videos_end(
    frames, length, stride, expected
):
    starts = clip_starts(frames, length, stride)
    assert starts == expected
    covered = np.unique(np.concatenate([clamped_clip(s, length, frames) for s in starts]))
    np.testing.assert_array_equal(covered, np.arange(frames))


def test_a_video_shorter_than_a_clip_repeats_its_last_frame():
    np.testing.assert_array_equal(clamped_clip(0, 6, 4), [0, 1, 2, 3, 3, 3])
    frames = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1) * 50
    batch = VideoClips(frames, 6, 2).batch([0])
    assert batch.shape == (1, 1, 6, 1, 1)
    np.testing.assert_allclose(batch[0, 0, :, 0, 0].numpy() * 255, [0, 50, 100, 150, 150, 150])


def test_frame_average_counts_every_appearance():
    average = FrameAverage(3)
    average.add(np.array([0, 1, 1]), np.array([1.0, 2.0, 4.0]))
    average.add(np.array([1, 2, 2]), np.array([6.0, 3.0, 5.0]))
    np.testing.assert_allclose(average.mean(), [1.0, 4.0, 4.0])
    with pytest.raises(ValueError, match="in no clip"):
        FrameAverage(2).mean()


# --- eqs. 7-9 ------------------------------------------------------------------------------


def test_eq_7_error_map_and_the_patch_maximum():
    clip = torch.zeros(1, 1, 1, 4, 4)
    output = torch.zeros(1, 1, 1, 4, 4)
    output[..., :2, :2] = 0.9  # -log10(1 - 0.9) = 1 on the top-left 2x2 cell
    errors = error_maps(clip, output)
    np.testing.assert_allclose(errors[0, 0, :2, :2].numpy(), 1.0, rtol=1e-5)
    assert float(errors[0, 0, 3, 3]) == 0.0
    assert float(frame_errors(errors, 0)[0, 0]) == pytest.approx(4 / 16, rel=1e-5)
    assert float(frame_errors(errors, 2)[0, 0]) == pytest.approx(1.0, rel=1e-5)  # the hot cell
    assert torch.isfinite(error_maps(clip, torch.ones_like(clip))).all()  # |I - Î| = 1 clamped
    np.testing.assert_allclose(cell_maps(errors, 3)[0, 0].numpy(),
                               [[4 / 9, 0.0], [0.0, 0.0]], rtol=1e-5)  # fmt: skip


def test_eq_8_weights_the_nlls_by_their_training_ranges_and_eq_9_uses_training_statistics():
    statistics = {"range_appearance": 3.0, "range_motion": 1.0,
                  "mean_r": 1.0, "std_r": 0.5, "mean_l": 10.0, "std_l": 2.0}  # fmt: skip
    likelihood = likelihood_score(np.array([4.0]), np.array([8.0]), statistics)
    assert float(likelihood[0]) == pytest.approx((3 * 4 + 1 * 8) / 4)
    full = combined_score(np.array([2.0]), np.array([14.0]), statistics, "full", 0.5)
    assert float(full[0]) == pytest.approx((2 - 1) / 0.5 + 0.5 * (14 - 10) / 2)
    assert float(combined_score(np.array([2.0]), np.array([14.0]), statistics,
                                "reconstruction", 0.5)[0]) == pytest.approx(2.0)  # fmt: skip
    assert float(combined_score(np.array([2.0]), np.array([14.0]), statistics,
                                "likelihood", 0.5)[0]) == pytest.approx(2.0)  # fmt: skip


# --- settings ------------------------------------------------------------------------------


def test_presets_hold_the_papers_values():
    ped2, avenue, shanghai = PRESETS["ped2"], PRESETS["avenue"], PRESETS["shanghaitech"]
    assert (ped2.size, ped2.glow_levels, ped2.patch, ped2.ms_ssim_weight) == ((360, 240), 1, 32, 1)
    assert (avenue.size, avenue.glow_levels, avenue.patch) == ((256, 256), 3, 0)
    steps = [(p.autoencoder.batch_size, p.autoencoder.learning_rate, p.glow.batch_size,
              p.glow.learning_rate) for p in (ped2, avenue, shanghai)]  # fmt: skip
    assert steps == [(2, 1e-3, 20, 5e-4), (4, 1e-3, 32, 5e-4), (8, 2e-4, 16, 1e-4)]
    assert all(p.clip_length == 16 and p.tau == 4 and p.glow_steps == 32
               for p in (ped2, avenue, shanghai))  # fmt: skip
    method = get_method("itae")
    assert set(PRESETS) == {"ped2", "avenue", "shanghaitech", "cpu"}
    params = copy.deepcopy(PARAMS)  # params.yaml's defaults with the Ped2 budget on top
    params["itae"].update({k.split(".")[1]: v for k, v in method.budgets["ped2"].items()})
    preset = resolved_preset(method.settings(params)["train"])
    assert preset == PRESETS["cpu"]  # the budget is the cpu preset, whatever the defaults


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"preset": "ucsd"}, "itae.preset"),
        ({"size": [30, 32]}, "itae.size"),
        ({"epochs": [1]}, "itae.epochs"),
        ({"learning_rates": [1e-3, -1]}, "itae.learning_rates"),
        ({"score_parts": "both"}, "itae.score_parts"),
        ({"glow_levels": 0}, "itae.glow_levels"),
        ({"kk": 1}, "itae.kk"),
    ],
)
def test_a_bad_setting_is_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        get_method("itae").settings(itae_params(**changes))


def test_score_parts_is_a_score_setting_only():
    method = get_method("itae")
    full = method.settings(itae_params())
    recon = method.settings(itae_params(score_parts="reconstruction"))
    assert full["train"] == recon["train"] and full["prepare"] == recon["prepare"]
    assert full["score"] != recon["score"]


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny synthetic scene's frames, and ITAE prepared and trained on it through the stage
    runners (1 + 1 epochs of 8 clips at 32x32)."""
    root = tmp_path_factory.mktemp("itae")
    frames = root / "frames.h5"
    dataset = open_dataset("synthetic", None, options=SCENE)
    write_frame_cache(dataset, frames, root / "gt.h5", "gray", progress=False)
    write_settings(itae_params(), root / "settings")
    caches = {name: frames for name in ("frames", "flow", "dynflow", "objects", "stc")}
    write_inputs(root / "settings" / "caches.json", caches, root / "inputs")
    threads = torch.get_num_threads()
    settings = root / "settings" / "itae"
    run_prepare("itae", settings / "prepare.json", root / "inputs" / "itae.json",
                root / "prepared.h5")  # fmt: skip
    run_train("itae", settings / "train.json", root / "prepared.h5", root / "model",
              root / "work", root / "history.json")  # fmt: skip
    torch.set_num_threads(threads)
    return root


def score(root: Path, out: Path, settings: str = "settings") -> Path:
    threads = torch.get_num_threads()
    run_score("itae", root / settings / "itae" / "score.json", root / "inputs" / "itae.json",
              root / "prepared.h5", root / "model", out)  # fmt: skip
    torch.set_num_threads(threads)
    return out


def test_prepare_holds_the_training_frames_at_the_models_size(run):
    with open_cache(run / "prepared.h5") as f:
        assert sorted(f["train"]) == ["train_00", "train_01"]
        stored = f["train"]["train_00"]["frames"][:]
        assert stored.shape == (20, 32, 32, 1) and f.attrs["train_digest"]
    expected = load_frames(run / "frames.h5", "train/train_00", size=(32, 32))
    np.testing.assert_array_equal(stored, expected)


def test_the_history_has_a_row_per_epoch_with_every_term(run):
    rows = json.loads((run / "history.json").read_text())
    assert [(row["epoch"], row["phase"]) for row in rows] == [(1, "autoencoder"), (2, "glow")]
    assert len({tuple(row) for row in rows}) == 1  # same keys in every row (dvc plots)
    assert rows[0]["nll_motion"] is None and rows[1]["l2"] is None


def test_a_run_scores_every_video_with_maps_and_extras(run, tmp_path):
    scores = read_scores(score(run, tmp_path / "scores.h5"))
    assert set(scores.test) == {"test_00", "test_01"} and set(scores.train) == {
        "train_00", "train_01"
    }  # fmt: skip
    test = scores.test["test_00"]
    assert test.frame_scores.shape == (20,) and np.isfinite(test.frame_scores).all()
    assert test.score_maps.shape == (20, 4, 4) and (test.score_maps >= 0).all()
    assert set(test.extras) >= {"reconstruction", "likelihood", "explanation"}
    stats = scores.attrs["statistics"]
    expected = combined_score(test.extras["reconstruction"], test.extras["likelihood"], stats,
                              "full", 1.0)  # fmt: skip
    np.testing.assert_allclose(test.frame_scores, expected, rtol=1e-5)
    train_r = np.concatenate([v.extras["reconstruction"] for v in scores.train.values()])
    assert float(train_r.mean()) == pytest.approx(stats["mean_r"], rel=1e-4)


def test_score_parts_score_one_term_with_the_same_model(run, tmp_path):
    write_settings(itae_params(score_parts="reconstruction"), run / "settings_recon")
    full = read_scores(score(run, tmp_path / "full.h5")).test["test_01"]
    recon = read_scores(score(run, tmp_path / "recon.h5", "settings_recon")).test["test_01"]
    np.testing.assert_array_equal(recon.extras["reconstruction"], full.extras["reconstruction"])
    assert not np.allclose(recon.frame_scores, full.frame_scores)


def trained(run: Path, workdir: Path, epochs: tuple[int, int]):
    settings = get_method("itae").settings(itae_params(epochs=list(epochs)))["train"]
    return train_model(run / "prepared.h5", resolved_preset(settings), 0, workdir,
                       torch.device("cpu"))  # fmt: skip


def assert_same_training(a, b) -> None:
    for name, module in a[0].modules().items():
        state_a, state_b = module.state_dict(), b[0].modules()[name].state_dict()
        for key in state_a:
            assert torch.equal(state_a[key], state_b[key]), (name, key)
    assert a[1]["autoencoder"] == b[1]["autoencoder"] and a[1]["glow"] == b[1]["glow"]


def test_resume_is_bit_identical(run, tmp_path, monkeypatch):
    reference = trained(run, tmp_path / "straight", (2, 2))
    trained(run, tmp_path / "split", (2, 0))  # stop after the auto-encoder
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
    assert (checkpoint["step"], checkpoint["epoch"]) == ("autoencoder", 2)
    monkeypatch.setattr(train_module, "run_epoch", original)
    assert_same_training(reference, trained(run, tmp_path / "crash", (2, 2)))


def test_a_few_steps_lower_each_loss(run):
    history = trained(run, run / "few_steps", (3, 3))[1]
    for step in ("autoencoder", "glow"):
        losses = history[step]["loss"]
        assert losses[-1] < losses[0], (step, losses)
