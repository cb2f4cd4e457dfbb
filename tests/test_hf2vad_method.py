"""HF2-VAD behind the method interface (vad/methods/hf2vad/method.py and its prepared, batches,
train, errors, score and maps modules): settings, prepare -> train -> score on a tiny synthetic
run, eq. 9, the frame and map rules, chunk-random batches, learning, exact resume, the
score-only ablations and parallel scoring."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

import vad.methods.hf2vad.batches as batches_module
import vad.methods.hf2vad.train as train_module
from vad.cache import open_cache
from vad.config import ConfigError
from vad.datasets import open_dataset
from vad.frame_cache import write_frame_cache
from vad.methods.hf2vad.batches import TrainingCubes
from vad.methods.hf2vad.errors import ErrorStatistics, Weights, anomaly_scores, floor
from vad.methods.hf2vad.method import CPU_BUDGET_PED2, HF2VAD, PRESET_NAMES
from vad.methods.hf2vad.model import build_network, cube_tensors, load_network
from vad.methods.hf2vad.prepared import cube_layout, training_videos
from vad.methods.hf2vad.presets import (
    CPU_SMALL,
    PRESETS,
    customized,
    fitted_to_cubes,
    get_preset,
)
from vad.methods.hf2vad.score import ObjectScores, frame_results
from vad.methods.hf2vad.train import (
    CHECKPOINT_NAME,
    PHASES,
    make_optimizer,
    phase_losses,
    set_modes,
    train_network,
)
from vad.methods.object_maps import object_map
from vad.methods.plan import write_inputs, write_settings
from vad.methods.runner import run_prepare, run_train
from vad.methods.score_runner import run_score
from vad.motion.flow_runner import run_flow_stage
from vad.objects.runner import run_objects_stage
from vad.params.check import check_params, with_overrides
from vad.params.objects import objects_settings
from vad.scores import read_scores
from vad.stc.runner import read_cubes, run_stc_stage
from vad.stc.settings import CubeSettings

torch.set_num_threads(1)  # the machine's 2 cores are shared: 2 threads beside a busy process crawl

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SCENE = {
    "seed": 4,
    "width": 112,
    "height": 84,
    "train_videos": 2,
    "test_videos": 3,
    "frames_per_video": 16,
}
TINY = {
    "epochs": [1, 1, 1],
    "batch_sizes": [16, 16, 16],
    "memae_channels": [2, 4, 4, 8],
    "num_slots": 10,
    "cvae_channels": [4, 8, 8, 8],
    "device": "cpu",
    "threads": 1,
}


def hf2vad_params(**changes) -> dict:
    params = copy.deepcopy(PARAMS)
    params["methods"] = ["hf2vad"]
    params["hf2vad"].update(TINY, **changes)
    return params


def tiny_preset(layout, epochs=(1, 1, 1)) -> object:
    """The TINY network and batch sizes on cubes of `layout`, with `epochs` per phase."""
    preset = customized(
        get_preset("cpu_small"),
        list(epochs),
        TINY["batch_sizes"],
        TINY["memae_channels"],
        TINY["num_slots"],
        TINY["cvae_channels"],
    )
    return fitted_to_cubes(preset, layout.frames, layout.size, layout.channels)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny synthetic scene's frames, flow, objects and stc caches, and HF2-VAD prepared and
    trained through the stage runners on it (1 + 1 + 1 epochs of the TINY networks)."""
    root = tmp_path_factory.mktemp("hf2vad")
    caches = {name: root / f"{name}.h5" for name in ("frames", "flow", "objects", "stc")}
    dataset = open_dataset("synthetic", None, options=SCENE)
    write_frame_cache(dataset, caches["frames"], root / "gt.h5", "gray", progress=False)
    run_flow_stage(caches["frames"], caches["flow"], "dis", {"preset": "ultrafast"},
                   [112, 84], 1, False)  # fmt: skip
    objects = objects_settings(PARAMS)["settings"]
    run_objects_stage(caches["frames"], caches["objects"], objects, 1, False)
    run_stc_stage(caches["frames"], caches["flow"], caches["objects"], caches["stc"],
                  CubeSettings(), 1, False)  # fmt: skip
    write_settings(hf2vad_params(), root / "settings")
    caches["dynflow"] = caches["frames"]  # a stand-in: only other methods read it
    write_inputs(root / "settings" / "caches.json", caches, root / "inputs")
    threads = torch.get_num_threads()
    settings = root / "settings" / "hf2vad"
    run_prepare("hf2vad", settings / "prepare.json", root / "inputs" / "hf2vad.json",
                root / "prepared.h5")  # fmt: skip
    run_train("hf2vad", settings / "train.json", root / "prepared.h5", root / "model",
              root / "work", root / "history.json")  # fmt: skip
    torch.set_num_threads(threads)
    return root


def score(root: Path, out: Path, settings: str = "settings", n_jobs: int = 1) -> Path:
    threads = torch.get_num_threads()
    run_score(
        "hf2vad",
        root / settings / "hf2vad" / "score.json",
        root / "inputs" / "hf2vad.json",
        root / "prepared.h5",
        root / "model",
        out,
        n_jobs=n_jobs,
    )
    torch.set_num_threads(threads)
    return out


# ---- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"preset": "ped3"}, r"'hf2vad.preset' must be one of"),
        ({"epochs": [1, 2]}, r"'hf2vad.epochs' must be null or a list of 3 integers >= 0"),
        ({"batch_sizes": [16, 0, 16]}, r"'hf2vad.batch_sizes' must be null or a list of 3"),
        ({"memae_channels": [4, 8, 16]}, r"'hf2vad.memae_channels' must be null or a list of 4"),
        ({"cvae_channels": [4, 8, 8, 16]}, r"'hf2vad.cvae_channels' must end with two equal"),
        ({"num_slots": 0}, r"'hf2vad.num_slots' must be >= 1"),
        ({"score_parts": "both"}, r"'hf2vad.score_parts' must be one of"),
        ({"threads": 0}, r"'hf2vad.threads' must be >= 1"),
        ({"epocs": [1, 1, 1]}, r"unknown key 'hf2vad.epocs' \(did you mean 'hf2vad.epochs'\?\)"),
    ],
)
def test_a_bad_setting_is_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        HF2VAD.settings(hf2vad_params(**changes))


def test_presets_and_the_ped2_budget_are_those_of_presets_py():
    assert set(PRESET_NAMES) == set(PRESETS)
    budget = {key.split(".")[1]: value for key, value in CPU_BUDGET_PED2.items()}
    assert customized(get_preset(budget.pop("preset")), **budget) == CPU_SMALL
    assert check_params(with_overrides(PARAMS, CPU_BUDGET_PED2)) == []


def test_score_parts_is_a_score_setting_only():
    full = HF2VAD.settings(hf2vad_params())
    flow = HF2VAD.settings(hf2vad_params(score_parts="flow"))
    assert full["prepare"] == flow["prepare"] and full["train"] == flow["train"]
    assert full["score"] != flow["score"]


# ---- eq. 9, frames and maps on hand-made numbers -------------------------------------------


def test_eq_9_on_hand_made_errors():
    stats = ErrorStatistics(flow_mean=1.0, flow_std=2.0, frame_mean=4.0, frame_std=3.0)
    weights = Weights(flow=1.0, frame=0.5)
    # (3 - 1) / 2 + 0.5 (10 - 4) / 3 = 1 + 1;  (5 - 1) / 2 + 0.5 (2 - 4) / 3 = 2 - 1/3
    scores = anomaly_scores(np.array([3.0, 5.0]), np.array([10.0, 2.0]), stats, weights)
    np.testing.assert_allclose(scores, [2.0, 5 / 3])
    assert floor(stats, weights) == pytest.approx(-0.5 - 2 / 3)  # both errors 0
    of = ErrorStatistics.of(np.array([1.0, 3.0]), np.array([2.0, 6.0]))
    assert (of.flow_mean, of.flow_std, of.frame_mean, of.frame_std) == (2.0, 1.0, 4.0, 2.0)


def test_a_frame_scores_its_top_object_and_the_floor_without_objects():
    stats = ErrorStatistics(flow_mean=1.0, flow_std=2.0, frame_mean=4.0, frame_std=3.0)
    weights = Weights(flow=1.0, frame=0.5)
    # objects on frames 2, 0, 0: flow z (S_r - 1) / 2 = 1, 2, 3; frame z (S_p - 4) / 3 = 2, -2/3,
    # 0; scores 1 + 0.5 * 2 = 2, 2 - 1/3 and 3; frames 1 and 3 have none
    objects = ObjectScores.of(
        np.array([2, 0, 0]), np.array([3.0, 5.0, 7.0]), np.array([10.0, 2.0, 4.0]), stats, weights
    )
    result = frame_results(objects, 4, stats, weights)
    expected = [3.0, -0.5 - 2 / 3, 2.0, -0.5 - 2 / 3]
    np.testing.assert_allclose(result.frame_scores, expected, rtol=1e-6)
    np.testing.assert_allclose(result.extras["flow_score"], [3.0, -0.5, 1.0, -0.5], rtol=1e-6)
    np.testing.assert_allclose(result.extras["frame_score"], [0, -4 / 3, 2.0, -4 / 3], atol=1e-6)
    assert result.extras["explanation"][1] == ""
    assert "+3.0 sd" in result.extras["explanation"][0]


def test_object_maps_hold_each_box_score_the_max_where_boxes_overlap():
    boxes = np.array([[0, 0, 5, 4], [4, 0, 12, 8], [-3, 5, 2, 9]], np.float32)
    score_map = object_map(boxes, np.array([1.0, 2.0, 3.0]), (12, 8), 4, floor=-1.0)
    np.testing.assert_array_equal(score_map, [[1, 2, 2], [3, 2, 2]])
    empty = object_map(np.zeros((0, 4)), np.zeros(0), (12, 9), 4, floor=-1.0)
    np.testing.assert_array_equal(empty, np.full((3, 3), -1.0))


# ---- chunk-random batches --------------------------------------------------------------------


def test_epochs_visit_every_cube_once_a_window_of_chunks_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(batches_module, "WINDOW_CHUNKS", 2)
    counts = [70, 5, 130]  # chunks of 64: 64 + 6, 5, 64 + 64 + 2
    with h5py.File(tmp_path / "cubes.h5", "w") as f:
        offset = 0
        for v, count in enumerate(counts):
            group = f.create_group(f"v{v}")
            group["frame"] = np.zeros(count, np.int32)
            rows = np.arange(offset, offset + count)
            group.create_dataset("flows", data=rows, chunks=(64,), maxshape=(None,))
            offset += count
        cubes = TrainingCubes([f[f"v{v}"] for v in range(3)], ("flows",))
        order = cubes.epoch_order(seed=0, phase=1, epoch=2)
        np.testing.assert_array_equal(np.sort(order), np.arange(205))
        assert not np.array_equal(order, np.sort(order))
        # each chunk's cubes lie within one window: between its first and last cube in the
        # order come cubes of at most WINDOW_CHUNKS chunks (a global shuffle would mix all)
        chunk_of = np.searchsorted([0, 64, 70, 75, 139, 203], order, side="right") - 1
        for chunk in range(6):
            where = np.flatnonzero(chunk_of == chunk)
            assert len(set(chunk_of[where.min() : where.max() + 1])) <= 2
        np.testing.assert_array_equal(cubes.epoch_order(0, 1, 2), order)
        assert not np.array_equal(cubes.epoch_order(0, 1, 3), order)
        assert not np.array_equal(cubes.epoch_order(0, 2, 2), order)
        np.testing.assert_array_equal(cubes.take(order[:50])["flows"], order[:50])


# ---- the stages on a tiny run ----------------------------------------------------------------


def test_prepare_copies_the_training_cubes(run):
    with open_cache(run / "prepared.h5") as f:
        assert [name for name, _ in training_videos(f)] == ["train_00", "train_01"]
        assert "test" not in f
        layout = cube_layout(f)
        assert (layout.frames, layout.size, layout.channels) == (5, 32, 1)
        copied = f["train/train_01/frames"][()]
    np.testing.assert_array_equal(copied, read_cubes(run / "stc.h5", "train/train_01")["frames"])


def test_training_writes_the_history_of_each_phase(run):
    rows = json.loads((run / "history.json").read_text())
    assert [row["phase"] for row in rows] == list(PHASES)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert all(set(row) == set(rows[0]) for row in rows)
    assert rows[0]["kl"] is None and rows[1]["entropy"] is None and rows[2]["kl"] is not None


def direct_object_scores(run: Path, key: str, stats: ErrorStatistics, weights: Weights):
    """Each cube's frame and eq. 9 score, its errors computed with the cube alone through the
    network."""
    network, _ = load_network(run / "model" / "model.pt", "cpu")
    cubes = read_cubes(run / "stc.h5", key)
    flow_errors, frame_errors = [], []
    with torch.no_grad():
        for i in range(len(cubes["frame"])):
            frames, flows = cube_tensors(cubes["frames"][i : i + 1], cubes["flows"][i : i + 1],
                                         torch.device("cpu"))  # fmt: skip
            out = network(frames, flows, mode="test")
            flow_errors.append(float(((out.flows.reconstruction - flows) ** 2).sum()))
            frame_errors.append(float(((out.frame.prediction - frames[:, -1:]) ** 2).sum()))
    return cubes["frame"], anomaly_scores(np.array(flow_errors), np.array(frame_errors), stats,
                                          weights)  # fmt: skip


def test_a_run_scores_every_video_each_frame_its_top_object(run):
    scores = read_scores(score(run, run / "scores" / "full.h5"))
    assert sorted(scores.train) == ["train_00", "train_01"]
    assert sorted(scores.test) == ["test_00", "test_01", "test_02"]
    stats = ErrorStatistics(**scores.attrs["statistics"])
    weights = Weights(*scores.attrs["weights"])
    assert scores.attrs["weights"] == [1.0, 0.1]  # cpu_small = Ped2's (w_r, w_p)
    floor_value = np.float32(scores.attrs["static_value"])
    assert floor_value == np.float32(floor(stats, weights))
    for video in scores.train.values():
        assert video.score_maps is None and len(video.frame_scores) == 16
    empty_frames = 0
    for name, video in scores.test.items():
        assert video.score_maps.shape == (16, 21, 28)  # 84 x 112 px in cells of 4
        frame, object_scores = direct_object_scores(run, f"test/{name}", stats, weights)
        for t in range(16):
            if not np.any(frame == t):
                empty_frames += 1
                assert video.frame_scores[t] == floor_value
                assert np.all(video.score_maps[t] == floor_value)
                continue
            top = object_scores[frame == t].max()
            assert video.frame_scores[t] == pytest.approx(top, rel=1e-4, abs=1e-4)
            assert video.score_maps[t].max() == video.frame_scores[t]
            assert video.frame_scores[t] > floor_value
    assert empty_frames > 0  # the scene has frames without boxes


def test_score_parts_score_one_stream_with_the_same_model(run):
    full = read_scores(score(run, run / "scores" / "full_again.h5"))
    for parts, extra, weights in (("flow", "flow_score", [1.0, 0.0]),
                                  ("frame", "frame_score", [0.0, 1.0])):  # fmt: skip
        write_settings(hf2vad_params(score_parts=parts), run / f"settings_{parts}")
        same_training = [
            (run / folder / "hf2vad" / "train.json").read_bytes()
            for folder in ("settings", f"settings_{parts}")
        ]
        assert same_training[0] == same_training[1]  # no retraining
        one = read_scores(score(run, run / "scores" / f"{parts}.h5", f"settings_{parts}"))
        assert one.attrs["weights"] == weights and one.attrs["score_parts"] == parts
        for split in ("train", "test"):
            for name, video in getattr(one, split).items():
                # its score is its top object's normalised error of that stream, at least the
                # error of the object the full score chose
                np.testing.assert_allclose(video.frame_scores, video.extras[extra], rtol=1e-6)
                reference = getattr(full, split)[name].extras[extra]
                assert np.all(video.frame_scores >= reference - 1e-5)


def test_a_process_pool_scores_exactly_as_one_process(run):
    one = score(run, run / "scores" / "one.h5")
    pool = score(run, run / "scores" / "pool.h5", n_jobs=2)
    with h5py.File(one, "r") as a, h5py.File(pool, "r") as b:
        assert dict(a.attrs) == dict(b.attrs)
        names = []
        a.visit(names.append)
        other = []
        b.visit(other.append)
        assert names == other
        for name in names:
            if isinstance(a[name], h5py.Dataset):
                np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)


# ---- learning and resuming -------------------------------------------------------------------


def test_a_few_steps_lower_each_phase_loss(run):
    with open_cache(run / "prepared.h5") as f:
        preset = tiny_preset(cube_layout(f))
        cubes = TrainingCubes([g for _, g in training_videos(f)], ("frames", "flows"))
        batch = cubes.take(np.arange(16))
    for phase in PHASES:
        network = build_network(preset, seed=0)
        optimizer, _ = make_optimizer(network, preset, phase)
        for group in optimizer.param_groups:
            group["lr"] = 1e-3
        before = batch_loss(network, preset, phase, batch)
        for _ in range(8):
            batch_loss(network, preset, phase, batch, optimizer)
        assert batch_loss(network, preset, phase, batch) < 0.9 * before, phase


def batch_loss(network, preset, phase: str, batch: dict, optimizer=None) -> float:
    """The phase's loss on `batch` with the same noise and dropout masks each time; with
    `optimizer`, one step on it."""
    set_modes(network, phase)
    generator = torch.Generator().manual_seed(7)
    losses = phase_losses(network, preset, phase, batch, generator, torch.device("cpu"))
    if optimizer is not None:
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    return float(losses["loss"].detach())


def trained(run: Path, workdir: Path, epochs: tuple[int, int, int]):
    with open_cache(run / "prepared.h5") as f:
        preset = tiny_preset(cube_layout(f), epochs)
        return train_network(f, preset, 0, workdir, torch.device("cpu"), progress=False)


def assert_same_training(a, b) -> None:
    state_a, state_b = a.network.state_dict(), b.network.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    assert {p: a.history[p] for p in PHASES} == {p: b.history[p] for p in PHASES}
    assert a.statistics == b.statistics


def test_resume_after_an_interrupted_phase_is_bit_identical(run, tmp_path, monkeypatch):
    reference = trained(run, tmp_path / "straight", (1, 2, 1))

    # (a) stop after the first phase, then ask for all three on the same workdir
    trained(run, tmp_path / "split", (1, 0, 0))
    assert_same_training(reference, trained(run, tmp_path / "split", (1, 2, 1)))

    # (b) crash inside the second CVAE epoch, then rerun the same command
    original = train_module._run_epoch
    calls = {"n": 0}

    def crash_in_the_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "_run_epoch", crash_in_the_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        trained(run, tmp_path / "crash", (1, 2, 1))
    checkpoint = torch.load(tmp_path / "crash" / CHECKPOINT_NAME, weights_only=True)
    assert (checkpoint["phase"], checkpoint["epoch"]) == ("cvae", 1)
    monkeypatch.setattr(train_module, "_run_epoch", original)
    assert_same_training(reference, trained(run, tmp_path / "crash", (1, 2, 1)))

    # (c) a checkpoint whose finished phase ran other epochs is not resumed
    changed = trained(run, tmp_path / "crash", (2, 2, 1))
    assert len(changed.history["memae"]["loss"]) == 2
