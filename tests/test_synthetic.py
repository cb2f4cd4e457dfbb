"""Tests of the embedded procedural walkway dataset (vad.datasets.synthetic)."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vad.datasets.base import Dataset
from vad.datasets.synthetic import (
    ANOMALY_KINDS,
    NORMAL_KIND,
    SyntheticOptions,
    SyntheticScene,
    open_synthetic,
)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return open_synthetic()


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return SyntheticScene(SyntheticOptions())


def trivial_frame_difference_scores(video) -> np.ndarray:
    """Per frame: max over 28×28 cells (frame resized to 420×280) of mean |frame difference|."""
    previous, scores = None, []
    for frame in video.frames():
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        grey = cv2.resize(grey, (420, 280), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if previous is not None:
            cells = np.abs(grey - previous).reshape(10, 28, 15, 28).mean(axis=(1, 3))
            scores.append(cells.max())
        previous = grey
    return np.array(scores[:1] + scores)  # frame 0 has no predecessor: reuse frame 1's score


def test_default_layout_names_shapes_and_dtypes(dataset: Dataset) -> None:
    assert [v.name for v in dataset.train] == [f"train_{i:02d}" for i in range(6)]
    assert [v.name for v in dataset.test] == [f"test_{i:02d}" for i in range(6)]
    assert all(v.split == "train" for v in dataset.train)
    assert all(v.split == "test" for v in dataset.test)
    assert set(dataset.ground_truth) == {v.name for v in dataset.test}
    assert dataset.has_pixel_masks
    video = dataset.test[0]
    frame = video.frame(video.num_frames - 1)
    assert frame.shape == (160, 240, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame[..., 0], frame[..., 2])  # grey replicated
    truth = dataset.ground_truth[video.name]
    assert truth.labels.shape == (video.num_frames,) and truth.labels.dtype == bool
    masks = truth.load_masks()
    assert masks.shape == (video.num_frames, 160, 240) and masks.dtype == bool


def test_options_change_size_and_counts() -> None:
    small = open_synthetic(
        "some/root",
        seed=3,
        width=128,
        height=96,
        train_videos=2,
        test_videos=1,
        frames_per_video=10,
    )
    assert str(small.root) == "some/root"
    assert len(small.train) == 2 and len(small.test) == 1
    assert small.test[0].num_frames == 10
    assert small.train[1].frame(9).shape == (96, 128, 3)
    assert small.ground_truth["test_00"].load_masks().shape == (10, 96, 128)


def test_unknown_or_bad_option_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="frames_per_clip"):
        open_synthetic(frames_per_clip=10)
    with pytest.raises(ValueError, match="width"):
        open_synthetic(width=10)
    with pytest.raises(ValueError, match="max_walker_lanes"):
        open_synthetic(min_walker_lanes=4, max_walker_lanes=2)


def test_two_opens_give_identical_frames_and_ground_truth(dataset: Dataset) -> None:
    again = open_synthetic()
    for first, second in zip(dataset.videos, again.videos, strict=True):
        for index in (0, first.num_frames // 2, first.num_frames - 1):
            assert np.array_equal(first.frame(index), second.frame(index))
    for name, truth in dataset.ground_truth.items():
        assert np.array_equal(truth.labels, again.ground_truth[name].labels)
        assert np.array_equal(truth.load_masks(), again.ground_truth[name].load_masks())


def test_another_seed_gives_another_scene(dataset: Dataset) -> None:
    other = open_synthetic(seed=1)
    assert not np.array_equal(dataset.test[0].frame(5), other.test[0].frame(5))


def test_random_access_equals_sequential_reading(dataset: Dataset) -> None:
    video = dataset.test[1]
    sequential = list(video.frames())
    for index in reversed(range(0, video.num_frames, 7)):
        assert np.array_equal(video.frame(index), sequential[index])
    assert not np.array_equal(sequential[0], sequential[1])  # noise and motion: frames differ


def test_labels_are_exactly_mask_non_empty(dataset: Dataset) -> None:
    for truth in dataset.ground_truth.values():
        masks = truth.load_masks()
        assert np.array_equal(truth.labels, masks.any(axis=(1, 2)))


def test_test_set_has_both_classes_and_mixed_clips(dataset: Dataset) -> None:
    labels = np.concatenate([g.labels for g in dataset.ground_truth.values()])
    assert 0.2 < labels.mean() < 0.8
    for truth in dataset.ground_truth.values():  # every clip mixes normal and anomalous stretches
        assert truth.labels.any() and not truth.labels.all()
    starts_mid_clip = [g.labels[0] == 0 and g.labels.any() for g in dataset.ground_truth.values()]
    assert any(starts_mid_clip)


def test_every_anomaly_kind_is_visible_in_default_test_set(scene: SyntheticScene) -> None:
    for kind in ANOMALY_KINDS:
        visible = [
            scene.mask(plan, t, kinds=(kind,)).sum()
            for plan in scene.test
            for t in range(0, plan.num_frames, 3)
        ]
        assert max(visible) > 30, kind


def test_train_clips_have_no_anomalies(scene: SyntheticScene) -> None:
    for plan in scene.train:
        assert plan.anomaly_kinds == set()
        assert all(not scene.mask(plan, t).any() for t in range(plan.num_frames))


def test_normal_clips_have_a_few_pedestrians_in_view(scene: SyntheticScene) -> None:
    width = scene.layout.width
    for plan in scene.train:
        in_view = [
            sum(a.kind == NORMAL_KIND and 0 <= a.feet(t)[0] < width for a in plan.actors)
            for t in range(plan.num_frames)
        ]
        assert 1.5 <= np.mean(in_view) <= 7.0, plan.name
        assert min(in_view) >= 1, plan.name


def test_mask_is_exactly_where_anomalous_actors_change_the_image() -> None:
    noiseless = SyntheticScene(SyntheticOptions(noise_sigma=0.0))
    for plan in noiseless.test[:4]:
        normal_only = replace(plan, actors=tuple(a for a in plan.actors if not a.anomalous))
        for t in range(0, plan.num_frames, 9):
            mask = noiseless.mask(plan, t)
            changed = np.any(noiseless.frame(plan, t) != noiseless.frame(normal_only, t), axis=2)
            assert not (changed & ~mask).any()  # nothing outside the mask was drawn by anomalies
            assert changed.sum() >= 0.8 * mask.sum()  # and the mask is covered by their pixels


def test_walking_speeds_are_plausible(scene: SyntheticScene) -> None:
    speeds = {kind: [] for kind in (NORMAL_KIND, *ANOMALY_KINDS)}
    for plan in scene.train + scene.test:
        for actor in plan.actors:
            speeds[actor.kind].append(abs(actor.vx))
    assert 1.0 <= min(speeds[NORMAL_KIND]) and max(speeds[NORMAL_KIND]) <= 2.0
    assert all(3.0 <= s <= 6.0 for s in speeds["cyclist"])


def test_trivial_frame_difference_scorer_is_neither_perfect_nor_useless(dataset: Dataset) -> None:
    scores = np.concatenate([trivial_frame_difference_scores(v) for v in dataset.test])
    labels = np.concatenate([dataset.ground_truth[v.name].labels for v in dataset.test])
    auc = roc_auc_score(labels, scores)
    assert 0.55 < auc < 0.97
