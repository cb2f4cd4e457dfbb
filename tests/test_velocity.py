"""Object-velocity density: its features, kNN distances, calibration by training statistics,
scoring, explanations, and the method end to end on small caches."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from vad.cache import write_h5
from vad.config import ConfigError
from vad.methods.base import Inputs
from vad.methods.registry import get_method
from vad.methods.velocity.density import (
    Calibration,
    Scorer,
    fit_density,
    fit_index,
    knn_distances,
)
from vad.methods.velocity.explain import (
    TrainingStats,
    describe,
    deviating_feature,
    explain_group,
)
from vad.methods.velocity.features import (
    FlowWindow,
    attribute_columns,
    box_features,
    flow_maps,
    frame_features,
    group_features,
    orientation_histogram,
    window_flows,
)
from vad.motion.flow import make_flow_estimator
from vad.scores import read_scores, write_scores

BINS = 8


def textured_frames(shift: tuple[int, int], size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Two 96×128 gray frames: a textured square at (40, 30), then moved by `shift` (dx, dy),
    on a smooth background."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    base = (100 + 20 * np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype(np.uint8)
    texture = cv2_blur(rng.integers(60, 250, (size, size)).astype(np.uint8))
    first, second = base.copy(), base.copy()
    first[30 : 30 + size, 40 : 40 + size] = texture
    dx, dy = shift
    second[30 + dy : 30 + dy + size, 40 + dx : 40 + dx + size] = texture
    return first, second


def cv2_blur(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (3, 3), 0)


# motions inside a bin (18, 288 and 162 deg), not on its edges, where flow noise splits them
@pytest.mark.parametrize(("shift", "bin_index"), [((3, 1), 0), ((1, -3), 6), ((-3, 1), 3)])
def test_orientation_histogram_of_a_translating_blob_is_in_the_right_bin(shift, bin_index):
    """DIS flow of a textured square moved by `shift`: inside its box the weight sits in the
    bin of the motion's direction (image axes, y down: up is 270 deg) with the right magnitude."""
    first, second = textured_frames(shift)
    flow = make_flow_estimator("dis", {"preset": "medium"})(first, second)
    box = np.array([[44, 34, 60, 50]], np.float32)  # inside the square in both frames
    features = frame_features(flow, box, (128, 96), BINS)[0]
    histogram = features[attribute_columns(BINS)["direction"]]
    assert int(np.argmax(histogram)) == bin_index
    speed = float(np.hypot(*shift))
    assert histogram[bin_index] == pytest.approx(speed, rel=0.15)
    assert histogram.sum() - histogram[bin_index] < 0.15 * speed
    mean_speed, p90 = features[attribute_columns(BINS)["speed"]]
    assert mean_speed == pytest.approx(speed, rel=0.15) and p90 >= mean_speed


def test_orientation_histogram_weights_by_magnitude_and_divides_by_the_box():
    flow = np.zeros((10, 10, 2), np.float32)
    flow[:5, :, 0] = 2.0  # half the box moves right at 2 px/frame
    flow[5:, :2, 1] = -4.0  # 10 pixels move up at 4
    histogram = orientation_histogram(flow, 4)  # bins of 90 deg: right, down, left, up
    np.testing.assert_allclose(histogram, [2.0 * 50 / 100, 0, 0, 4.0 * 10 / 100])


def test_features_scale_boxes_to_the_flow_grid_and_record_size_and_position():
    flow = np.zeros((50, 80, 2), np.float32)
    flow[10:20, 40:60, 0] = 1.0  # frame pixels (80..120, 20..40) of a 160x100 frame
    row = frame_features(flow, np.array([[80, 20, 120, 40]], np.float32), (160, 100), BINS)[0]
    cols = attribute_columns(BINS)
    assert row[cols["direction"]][0] == pytest.approx(1.0)
    np.testing.assert_allclose(row[cols["size"]], [40, 20])
    np.testing.assert_allclose(row[cols["position"]], [100 / 160, 30 / 100])


def test_flow_maps_hold_each_bins_magnitudes_and_the_magnitude():
    rng = np.random.default_rng(5)
    angle = rng.uniform(0, 2 * np.pi, (30, 40))
    off_edges = np.abs(np.mod(angle, np.pi / 4) - np.pi / 8) < np.pi / 8 - 0.02
    angle = np.where(off_edges, angle, np.pi / 8)  # no vector within 1 deg of a bin's edge
    magnitude = rng.uniform(0, 3, (30, 40))
    flow = np.stack([magnitude * np.cos(angle), magnitude * np.sin(angle)], -1).astype(np.float32)
    maps = flow_maps(flow, BINS)
    assert maps.shape == (BINS + 1, 30, 40)
    np.testing.assert_allclose(maps[BINS], magnitude, rtol=1e-5)
    np.testing.assert_allclose(maps[:BINS].sum(0), magnitude, rtol=1e-5)
    assert np.all(np.count_nonzero(maps[:BINS], axis=0) <= 1)  # each vector in one bin
    np.testing.assert_allclose(
        maps[:BINS, 5:20, 10:30].mean(axis=(1, 2)),
        orientation_histogram(flow[5:20, 10:30], BINS),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    ("t", "num_frames", "window", "expected"),
    [
        (0, 10, 1, [0]),
        (9, 10, 1, [8]),  # the last frame: the flow into it, as with one flow
        (4, 10, 5, [2, 3, 4, 5, 6]),
        (0, 10, 5, [0, 1, 2]),  # the video's first frames: the window is cut
        (9, 10, 5, [7, 8]),  # frames 7, 8 and 9 -> flows 7, 8 and 8
        (8, 10, 9, [4, 5, 6, 7, 8]),
        (1, 3, 9, [0, 1]),
    ],
)
def test_a_frames_window_holds_the_flows_of_its_frames_inside_the_video(
    t, num_frames, window, expected
):
    assert window_flows(t, num_frames, window) == expected


def test_a_video_of_one_frame_has_no_window():
    with pytest.raises(ValueError, match="1 frame"):
        window_flows(0, 1, 3)


def test_window_features_average_the_flows_and_smooth_a_jittery_speed():
    """A box whose flow alternates 1 and 5 px/frame to the right: each single flow gives 1 or
    5, a window of 3 flows their mean (the direction and mean speed are linear in the maps)."""
    box = np.array([[8, 8, 24, 24]], np.float32)
    flows = []
    for speed in (1.0, 5.0, 1.0):
        flow = np.zeros((32, 32, 2), np.float32)
        flow[8:24, 8:24, 0] = speed
        flows.append(flow)
    window = FlowWindow(BINS)
    for i, flow in enumerate(flows):
        window.put(i, flow)
    averaged = box_features(window.window([0, 1, 2]), box, (32, 32), BINS)[0]
    single = [frame_features(flow, box, (32, 32), BINS)[0] for flow in flows]
    cols = attribute_columns(BINS)
    assert [row[cols["speed"]][0] for row in single] == pytest.approx([1.0, 5.0, 1.0])
    assert averaged[cols["speed"]][0] == pytest.approx(7.0 / 3)
    np.testing.assert_allclose(averaged[cols["direction"]], np.mean(single, 0)[cols["direction"]])
    np.testing.assert_allclose(averaged[cols["size"]], single[0][cols["size"]])
    window.forget_before(2)
    with pytest.raises(KeyError, match=r"\[0, 1\]"):
        window.window([0, 1, 2])


def test_a_joint_speed_and_size_group_finds_what_each_alone_cannot():
    """Training: small objects slow (1 px/frame), large ones fast (4). A small fast object has
    a usual speed and a usual size, but not together: only the joint group sees it."""
    rng = np.random.default_rng(6)
    n = 120
    small = rng.random(n) < 0.5
    rows = np.zeros((n, BINS + 6), np.float32)
    cols = attribute_columns(BINS)
    speed = np.where(small, 1.0, 4.0) + rng.normal(0, 0.05, n)
    rows[:, cols["speed"]] = np.c_[speed, speed * 1.2]
    size = np.where(small, 10.0, 40.0) + rng.normal(0, 0.5, n)
    rows[:, cols["size"]] = np.c_[size, size * 2]
    videos = np.arange(n) % 3
    query = np.zeros((2, BINS + 6), np.float32)
    query[:, cols["speed"]] = [[1.0, 1.2], [4.0, 4.8]]  # slow and fast
    query[:, cols["size"]] = [[10.0, 20.0], [10.0, 20.0]]  # both small
    knn = Scorer("knn", k=1, components=2)
    scores = {}
    for groups in (["speed"], ["size"], ["speed", "size"], ["speed+size"]):
        model, _ = fit_density(group_features(rows, BINS, groups), videos, groups, knn, 100, 0)
        scores[tuple(groups)] = model.score(group_features(query, BINS, groups)).score
    for alone in (("speed",), ("size",), ("speed", "size")):
        assert scores[alone][1] < 1.0  # within the training objects' held-out scores
    assert scores[("speed+size",)][1] > 10 * max(scores[("speed+size",)][0], 0.1)
    joint = group_features(rows, BINS, ["speed+size"])["speed+size"]
    np.testing.assert_allclose(joint, np.c_[rows[:, cols["speed"]], rows[:, cols["size"]]])
    model, _ = fit_density({"speed+size": joint}, videos, ["speed+size"], knn, 100, 0)
    np.testing.assert_allclose(model.scale["speed+size"], 1 / joint.std(0), rtol=1e-5)
    model, _ = fit_density({"speed": joint[:, :2]}, videos, ["speed"], knn, 100, 0)
    np.testing.assert_array_equal(model.scale["speed"], 1.0)  # one attribute: its own units


def test_a_joint_group_is_explained_by_its_most_deviating_attribute():
    rng = np.random.default_rng(7)
    train = np.c_[rng.normal(1.0, 0.1, 200), rng.normal(1.5, 0.1, 200),
                  rng.normal(20, 2, 200), rng.normal(40, 4, 200)]  # fmt: skip
    stats = TrainingStats.of(train)
    text = explain_group("speed+size", np.array([1.0, 1.5, 20.0, 90.0]), stats, BINS)
    assert text.startswith("size: box height") and "above 100.0%" in text
    text = explain_group("speed+size", np.array([3.0, 1.5, 20.0, 40.0]), stats, BINS)
    assert text.startswith("speed: mean speed 3.0x the training median")


def test_knn_distances_equal_a_brute_force_computation():
    rng = np.random.default_rng(1)
    train, query = rng.normal(size=(300, 5)), rng.normal(size=(40, 5))
    for k in (1, 4):
        distances, nearest = knn_distances(fit_index(train, k), query)
        brute = np.sqrt(((query[:, None, :] - train[None, :, :]) ** 2).sum(-1))
        np.testing.assert_allclose(distances, np.sort(brute, axis=1)[:, :k].mean(axis=1))
        np.testing.assert_array_equal(nearest, brute.argmin(axis=1))


def test_calibration_uses_held_out_training_statistics_only():
    rng = np.random.default_rng(2)
    features = {"speed": rng.normal(size=(90, 2)), "size": rng.normal(size=(90, 2)) * 10}
    videos = np.repeat([0, 1, 2], 30)
    features["speed"][30] = features["speed"][31]  # a duplicate within video 1: not its neighbour
    knn = Scorer("knn", k=1, components=2)
    model, held = fit_density(features, videos, ["speed", "size"], knn, percentile=90, folds=0)
    for column, name in enumerate(["speed", "size"]):
        values = features[name]
        raw = np.empty(90)
        for v in range(3):  # brute-force leave-one-video-out nearest distances
            mine, others = values[videos == v], values[videos != v]
            raw[videos == v] = np.sqrt(((mine[:, None] - others[None]) ** 2).sum(-1)).min(1)
        assert model.calibration.low[column] == pytest.approx(raw.min())
        assert model.calibration.high[column] == pytest.approx(np.percentile(raw, 90))
    calibration = (model.calibration.low.copy(), model.calibration.high.copy())
    test = {"speed": rng.normal(size=(5, 2)) * 100, "size": rng.normal(size=(5, 2))}
    scores = model.score(test)
    np.testing.assert_array_equal(model.calibration.low, calibration[0])  # unchanged by test data
    np.testing.assert_array_equal(model.calibration.high, calibration[1])
    assert np.all(scores.calibrated[:, 0] > 1)  # far beyond the training objects' percentile
    assert held.shape == (90,)


def test_gaussian_mixture_density_scores_an_outlier_above_the_training_objects():
    rng = np.random.default_rng(4)
    features = {"speed": rng.normal(1.0, 0.1, size=(60, 2))}
    videos = np.repeat([0, 1, 2], 20)
    gmm = Scorer("gmm", k=1, components=2)
    model, held = fit_density(features, videos, ["speed"], gmm, percentile=100, folds=0)
    scores = model.score({"speed": np.array([[1.0, 1.0], [3.0, 3.0]])}).score
    assert scores[1] > 1.0 > scores[0]  # beyond the worst held-out training object: > 1
    assert held.min() == pytest.approx(0.0) and held.max() == pytest.approx(1.0)


def test_calibration_maps_minimum_to_zero_and_percentile_to_one():
    calibration = Calibration.fit(np.array([[1.0], [2.0], [3.0], [5.0]]), percentile=100)
    np.testing.assert_allclose(calibration(np.array([[1.0], [5.0], [9.0]])), [[0], [1], [2]])


def test_a_fast_moving_object_scores_above_slow_ones_and_is_explained_by_speed(tmp_path):
    method = get_method("velocity")
    settings = method.settings(PARAMS)
    flow, objects = tmp_path / "flow.h5", tmp_path / "objects.h5"
    write_caches(flow, objects)
    inputs = Inputs({"flow": flow, "objects": objects})
    prepared, model = tmp_path / "prepared.h5", tmp_path / "model"
    method.prepare(inputs, settings["prepare"], prepared)
    method.train(prepared, settings["train"], model, tmp_path / "work")
    scores = method.score(inputs, prepared, model, settings["score"]).collect()
    test = scores.test["t"]
    slow, fast, empty = test.frame_scores[:4], test.frame_scores[4:8], test.frame_scores[8:]
    assert fast.min() > slow.max()
    np.testing.assert_array_equal(empty, 0.0)  # frames without objects: the floor
    for text in test.extras["explanation"][4:8]:  # 6 px/frame against 1-1.5 in training
        assert text.startswith("speed:") and "(above 100.0% of training objects)" in text
        ratio = float(text.split("speed ")[-1].split("x the training median")[0])
        assert 4.0 <= ratio <= 6.0
    assert list(test.extras["top_attribute"][8:]) == [-1, -1]
    np.testing.assert_allclose(test.extras["top_box"][5], [40, 40, 64, 64])
    maps = test.score_maps  # cells of 8 px: the fast object's box is cells (5..8, 5..8)
    assert maps[5, 5:8, 5:8].min() == pytest.approx(fast[1]) and maps[5, 0, 0] == 0.0
    assert set(scores.train) == {"a", "b"} and len(scores.train["a"].frame_scores) == 10
    write_scores(tmp_path / "scores.h5", scores)
    again = read_scores(tmp_path / "scores.h5").test["t"]
    assert list(again.extras["explanation"]) == list(test.extras["explanation"])


def test_explanations_compare_with_the_training_distribution():
    stats = TrainingStats.of(np.column_stack([np.arange(1.0, 101.0), np.full(100, 5.0)]))
    assert deviating_feature(np.array([300.0, 5.0]), stats) == 0
    assert deviating_feature(np.array([50.0, 9.0]), stats) == 1  # any change of a constant
    text = describe("speed", 0, 151.5, stats, BINS)
    assert text == "speed: mean speed 3.0x the training median (above 100.0% of training objects)"
    text = describe("size", 1, 2.5, stats, BINS)
    assert text == "size: box height 0.5x the training median (below 100.0% of training objects)"
    assert describe("direction", 1, 10.0, stats, BINS).startswith("direction: motion toward 45-90")


def test_settings_name_the_key_at_fault():
    method = get_method("velocity")
    with pytest.raises(ConfigError, match="velocity.attributes"):
        method.settings({"velocity": {**PARAMS["velocity"], "attributes": ["speed", "colour"]}})
    with pytest.raises(ConfigError, match="velocity.k"):
        method.settings({"velocity": {**PARAMS["velocity"], "k": 0}})
    for groups in (["speed+colour"], ["speed", "speed+size"], ["speed+"], [], "speed", [3]):
        with pytest.raises(ConfigError, match="velocity.attributes"):
            method.settings({"velocity": {**PARAMS["velocity"], "attributes": groups}})
    with pytest.raises(ConfigError, match="velocity.window' must be odd"):
        method.settings({"velocity": {**PARAMS["velocity"], "window": 4}})
    with pytest.raises(ConfigError, match="velocity.window"):
        method.settings({"velocity": {**PARAMS["velocity"], "window": 0}})


PARAMS = {
    "velocity": {
        "bins": 8,
        "window": 1,
        "border_objects": "keep",
        "attributes": ["direction", "speed"],
        "density": "knn",
        "k": 1,
        "gmm_components": 2,
        "calibration_percentile": 100.0,
        "calibration_folds": 0,
        "map_cell": 8,
    }
}


def write_caches(flow_path, objects_path) -> None:
    """flow.h5 and objects.h5 for 2 training videos of walkers (1-1.5 px/frame, in several
    directions) and a test video: 4 frames of a slow walker, 4 of a fast one (6 px/frame), 2
    without objects. Frames are 128×96; flow at the same size; one 24×24 object per frame."""
    rng = np.random.default_rng(3)
    box = np.array([40, 40, 64, 64], np.float32)

    def video(speeds_angles):
        flows = np.zeros((len(speeds_angles), 96, 128, 2), np.float16)
        for t, (speed, angle) in enumerate(speeds_angles):
            if speed is not None:
                flows[t, 40:64, 40:64] = speed * np.array([np.cos(angle), np.sin(angle)])
        return flows

    train = {
        name: [(rng.uniform(1.0, 1.5), rng.choice([0, np.pi / 2, np.pi, 3 * np.pi / 2]))
               for _ in range(10)]
        for name in ("a", "b")
    }  # fmt: skip
    test = [(1.2, 0.0)] * 4 + [(6.0, 0.0)] * 4 + [(None, 0.0)] * 2
    videos = {("train", n): v for n, v in train.items()} | {("test", "t"): test}
    with write_h5(flow_path, {}) as flows, write_h5(objects_path, {}) as objects:
        for (split, name), frames in videos.items():
            flows.create_dataset(f"{split}/{name}/flow", data=video(frames)[: len(frames) - 1])
            present = [t for t, (speed, _) in enumerate(frames) if speed is not None]
            group = objects.create_group(f"{split}/{name}")
            group.create_dataset("frame", data=np.array(present, np.int32))
            group.create_dataset("box", data=np.tile(box, (len(present), 1)))
            group.create_dataset("score", data=np.ones(len(present), np.float32))
            group.create_dataset("source", data=np.zeros(len(present), np.uint8))
            group.attrs.update(num_frames=len(frames), width=128, height=96)
    with h5py.File(flow_path, "r") as f:
        assert f["test/t/flow"].shape == (9, 96, 128, 2)
