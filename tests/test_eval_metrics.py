"""Frame- and pixel-level metrics against hand-computed cases, sklearn and a naive pixel loop."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vad.eval.metrics import (
    PixelRocAccumulator,
    eer,
    evaluate,
    frame_auc_macro,
    frame_auc_micro,
    pixel_auc_eer,
    pixel_critical_scores,
    pixel_metrics,
    pixel_roc,
    roc,
)

PED2 = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ped2"


def arrays(**videos: list) -> dict[str, np.ndarray]:
    return {name: np.asarray(values) for name, values in videos.items()}


# --- frame level ----------------------------------------------------------------------------


def test_micro_auc_by_hand():
    # positives 0.35, 0.8 against negatives 0.1, 0.4: pairs ranked right are 3 of 4.
    scores = arrays(a=[0.1, 0.4], b=[0.35, 0.8])
    labels = arrays(a=[False, False], b=[True, True])
    assert frame_auc_micro(scores, labels) == pytest.approx(0.75)


def test_micro_auc_counts_ties_as_half():
    assert frame_auc_micro(arrays(a=[0.5, 0.5]), arrays(a=[0, 1])) == pytest.approx(0.5)


def test_micro_auc_matches_sklearn_and_uses_only_shared_videos():
    rng = np.random.default_rng(0)
    scores = {name: rng.normal(size=n) for name, n in [("03", 40), ("01", 25), ("02", 31)]}
    labels = {name: rng.random(s.size) < 0.4 for name, s in scores.items()}
    scores["unlabelled"] = rng.normal(size=7)
    labels["unscored"] = np.ones(5, bool)
    names = ["01", "02", "03"]
    expected = roc_auc_score(
        np.concatenate([labels[n] for n in names]), np.concatenate([scores[n] for n in names])
    )
    assert frame_auc_micro(scores, labels) == pytest.approx(expected)


def test_macro_leaves_out_one_class_videos():
    # a: positives 0.9, 0.2 vs negatives 0.1, 0.8 -> 3/4; b: 1.0; c: all anomalous, excluded.
    scores = arrays(a=[0.1, 0.9, 0.2, 0.8], b=[0.3, 0.6], c=[0.5, 0.7])
    labels = arrays(a=[0, 1, 1, 0], b=[0, 1], c=[1, 1])
    mean, details = frame_auc_macro(scores, labels)
    assert mean == pytest.approx(0.875)
    assert details["per_video"] == {"a": pytest.approx(0.75), "b": pytest.approx(1.0), "c": None}
    assert details["n_excluded"] == 1
    assert details["excluded"] == ["c"]


def test_macro_is_nan_when_no_video_has_both_classes():
    mean, details = frame_auc_macro(arrays(a=[0.1, 0.2], b=[0.3]), arrays(a=[1, 1], b=[0]))
    assert math.isnan(mean)
    assert details["n_excluded"] == 2


def test_roc_and_eer_by_hand():
    # ROC points (0,0) (0,.5) (.5,.5) (.5,1) (1,1): FPR = 1 - TPR exactly at (.5, .5).
    curve = roc(arrays(a=[0.1, 0.4, 0.35, 0.8]), arrays(a=[0, 0, 1, 1]))
    assert curve.thresholds[0] == np.inf
    assert (curve.fpr[-1], curve.tpr[-1]) == (1.0, 1.0)
    assert eer(curve.fpr, curve.tpr) == pytest.approx(0.5)


def test_eer_interpolates_between_bracketing_points():
    # (1-TPR) - FPR goes 1, 0.2, -1: crossing 1/6 of the way from (0.2, 0.6) to (1, 1),
    # at FPR = 0.2 + 0.8/6 = 1/3, where 1 - TPR = 1 - (0.6 + 0.4/6) = 1/3 too.
    assert eer([0.0, 0.2, 1.0], [0.0, 0.6, 1.0]) == pytest.approx(1 / 3)
    assert eer([0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.5)
    assert eer([0.0, 0.0, 1.0], [0.0, 1.0, 1.0]) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("fpr", "tpr", "message"),
    [
        ([0.0, 0.5], [0.0, 0.2], "does not cross"),
        ([0.0, 0.6, 0.4, 1.0], [0.0, 0.5, 0.6, 1.0], "non-decreasing"),
        ([0.0, 1.0], [0.0], "equal length"),
        ([0.0, np.nan], [0.0, 1.0], "finite"),
    ],
)
def test_eer_rejects_bad_curves(fpr, tpr, message):
    with pytest.raises(ValueError, match=message):
        eer(fpr, tpr)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (arrays(a=[0.1, 0.2]), arrays(a=[1, 1]), "undefined: all 2 frames are anomalous"),
        (arrays(a=[0.1, 0.2]), arrays(a=[0, 0]), "undefined: all 2 frames are normal"),
        (arrays(v7=[0.1, 0.2, 0.3]), arrays(v7=[0, 1]), "'v7': 3 scores but 2 labels"),
        (arrays(v7=[0.1, np.nan]), arrays(v7=[0, 1]), "'v7': scores contain NaN"),
        (arrays(v7=[[0.1, 0.2]]), arrays(v7=[0, 1]), "'v7': scores must be a non-empty 1-D"),
        (arrays(v7=[0.1, 0.2]), arrays(v7=[0, 2]), "'v7': labels must be bool or 0/1"),
        (arrays(a=[0.1]), arrays(b=[1]), "no video has both scores and labels"),
    ],
)
def test_frame_metrics_reject_bad_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        frame_auc_micro(scores, labels)


# --- pixel level ----------------------------------------------------------------------------


def test_detection_at_the_wrong_place_is_not_a_true_positive():
    # 2x2 patch grid -> 10x10 frame; the anomaly is the top-left patch, the peak top-right.
    mask = np.zeros((1, 10, 10), bool)
    mask[0, :5, :5] = True
    wrong_place = np.array([[[0.1, 0.9], [0.1, 0.1]]])
    assert pixel_critical_scores(wrong_place, mask) == pytest.approx([0.1])
    normal = np.full((1, 2, 2), 0.5)
    maps = {"anomalous": wrong_place, "normal": normal}
    masks = {"anomalous": mask, "normal": np.zeros((1, 10, 10), bool)}
    labels = {"anomalous": np.array([True]), "normal": np.array([False])}
    curve = pixel_roc(maps, masks, labels).curve
    # At θ = 0.9 the anomalous frame is detected, yet the curve has no TP above θ = 0.1.
    assert curve.tpr[curve.thresholds > 0.1].max() == 0.0
    auc, _ = pixel_auc_eer(maps, masks, labels)
    assert auc == pytest.approx(0.0)


def coverage_frame(n_gt: int, n_hit: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A frame whose first n_gt pixels are ground truth, n_hit of them scored 0.9, others 0.2."""
    mask = np.zeros(size[0] * size[1], bool)
    mask[:n_gt] = True
    score = np.full(mask.size, 0.5)  # background: detected at θ <= 0.5
    score[:n_gt] = 0.2
    score[:n_hit] = 0.9
    return score.reshape(1, *size), mask.reshape(1, *size)


@pytest.mark.parametrize(
    ("n_gt", "n_hit", "critical"),
    [
        (10, 4, 0.9),  # exactly 40%: a TP at θ = 0.9
        (100, 40, 0.9),
        (100, 39, 0.2),  # 39%: not a TP at θ = 0.9, only once θ falls to 0.2
        (5, 2, 0.9),  # 40% of 5 is 2 pixels exactly, not 3 by floating-point rounding
        (3, 1, 0.2),  # 33%: ceil(1.2) = 2 pixels are needed
        (3, 2, 0.9),
    ],
)
def test_forty_percent_coverage(n_gt, n_hit, critical):
    score_map, mask = coverage_frame(n_gt, n_hit, (20, 20))
    assert pixel_critical_scores(score_map, mask) == pytest.approx([critical])


def test_normal_frame_critical_is_its_maximum_after_resize():
    score_map = np.array([[[0.3, 0.7, 0.1]], [[0.0, 0.2, 0.4]]])
    assert pixel_critical_scores(score_map, np.zeros((2, 4, 6), bool)) == pytest.approx([0.7, 0.4])


def test_bilinear_interpolation_changes_the_critical_value():
    # 1x2 -> 1x4: nearest gives 0 0 1 1, bilinear 0 .25 .75 1; 40% of 4 pixels needs 2.
    score_map, mask = np.array([[[0.0, 1.0]]]), np.ones((1, 1, 4), bool)
    assert pixel_critical_scores(score_map, mask) == pytest.approx([1.0])
    bilinear = pixel_critical_scores(score_map, mask, interpolation="bilinear")
    assert bilinear == pytest.approx([0.75])


def test_labels_and_masks_that_disagree_are_counted():
    maps = {"v": np.array([[[0.9]], [[0.8]], [[0.1]], [[0.2]]])}
    masks = {"v": np.array([[[True]], [[False]], [[True]], [[False]]])}
    labels = {"v": np.array([True, True, False, False])}
    result = pixel_roc(maps, masks, labels)
    assert result.n_anomalous == 1  # frame 1 is anomalous with an empty mask: left out
    assert result.n_anomalous_empty_mask == 1
    assert result.n_normal == 2  # frame 2 has mask pixels but a normal label: a negative
    assert result.n_normal_with_mask == 1
    assert result.curve.tpr[1] == 1.0 and result.curve.fpr[1] == 0.0  # 0.9 beats 0.1 and 0.2


def naive_pixel_roc(maps, masks, labels, thresholds):
    """The criterion applied literally, threshold by threshold and frame by frame."""
    tpr, fpr = [], []
    for theta in thresholds:
        tp = fp = n_pos = n_neg = 0
        for name in maps:
            block = masks[name].shape[1] // maps[name].shape[1]
            full = np.kron(maps[name], np.ones((1, block, block)))  # nearest-neighbour blocks
            for frame, mask, label in zip(full, masks[name], labels[name], strict=True):
                detected = frame >= theta
                if not label:
                    n_neg += 1
                    fp += bool(detected.any())
                elif mask.any():
                    n_pos += 1
                    tp += bool((detected & mask).sum() >= 0.4 * mask.sum())
        tpr.append(tp / n_pos)
        fpr.append(fp / n_neg)
    return np.array(fpr), np.array(tpr)


def test_vectorized_pixel_roc_equals_naive_loop():
    rng = np.random.default_rng(1)
    maps, masks, labels = {}, {}, {}
    for name in ("a", "b", "c"):
        maps[name] = rng.integers(0, 12, size=(8, 3, 4)) / 10  # ties on purpose
        mask = np.zeros((8, 12, 16), bool)
        for t in range(8):
            if rng.random() < 0.6:
                top, left = rng.integers(0, 8), rng.integers(0, 10)
                mask[t, top : top + rng.integers(1, 5), left : left + rng.integers(1, 7)] = True
        masks[name], labels[name] = mask, mask.any(axis=(1, 2))
    result = pixel_roc(maps, masks, labels)
    fpr, tpr = naive_pixel_roc(maps, masks, labels, result.curve.thresholds[1:])
    np.testing.assert_allclose(result.curve.fpr[1:], fpr)
    np.testing.assert_allclose(result.curve.tpr[1:], tpr)
    every = np.unique(np.concatenate([m.ravel() for m in maps.values()]))[::-1]
    all_fpr, all_tpr = naive_pixel_roc(maps, masks, labels, every)
    naive_auc = np.trapezoid(np.r_[0, all_tpr, 1], np.r_[0, all_fpr, 1])
    assert pixel_auc_eer(maps, masks, labels)[0] == pytest.approx(naive_auc)


def random_video(rng: np.random.Generator, n_frames: int) -> tuple:
    """A coarse (n, 3, 4) map, (n, 12, 16) mask and labels where labels and masks disagree on
    some frames both ways: anomalous with an empty mask, normal with mask pixels."""
    mask = np.zeros((n_frames, 12, 16), bool)
    for t in range(n_frames):
        if rng.random() < 0.6:
            top, left = rng.integers(0, 8), rng.integers(0, 10)
            mask[t, top : top + rng.integers(1, 5), left : left + rng.integers(1, 7)] = True
    labels = mask.any(axis=(1, 2))
    flip = rng.random(n_frames) < 0.2
    labels[flip] = ~labels[flip]
    cells = mask.reshape(n_frames, 3, 4, 4, 4).mean(axis=(2, 4))
    score_map = (cells + rng.random(cells.shape)).astype(np.float32)
    score_map[rng.random(score_map.shape) < 0.1] = 0.5  # ties across frames and videos
    return score_map, mask, labels


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_pixel_roc_streamed_video_by_video_equals_the_in_memory_one(interpolation):
    rng = np.random.default_rng(7)
    videos = {f"{index:02d}": random_video(rng, int(rng.integers(5, 15))) for index in range(6)}
    maps = {name: video[0] for name, video in videos.items()}
    masks = {name: video[1] for name, video in videos.items()}
    labels = {name: video[2] for name, video in videos.items()}
    in_memory = pixel_roc(maps, masks, labels, interpolation=interpolation)
    assert in_memory.n_anomalous_empty_mask > 0 and in_memory.n_normal_with_mask > 0

    streamed = PixelRocAccumulator(interpolation=interpolation)
    for name in reversed(sorted(videos)):  # any order: each video's arrays are dropped after
        score_map, mask, video_labels = videos.pop(name)
        streamed.add(name, score_map, mask, video_labels)
    del score_map, mask, video_labels
    result = streamed.result()
    for got, want in zip(result.curve, in_memory.curve, strict=True):
        np.testing.assert_array_equal(got, want)
    assert result.counts() == in_memory.counts()
    assert pixel_metrics(result) == pixel_metrics(in_memory)
    if interpolation == "nearest":  # and both equal the criterion applied literally
        fpr, tpr = naive_pixel_roc(maps, masks, labels, result.curve.thresholds[1:])
        np.testing.assert_allclose(result.curve.fpr[1:], fpr)
        np.testing.assert_allclose(result.curve.tpr[1:], tpr)


def test_the_pixel_roc_accumulator_refuses_a_video_twice_and_no_video():
    accumulator = PixelRocAccumulator()
    with pytest.raises(ValueError, match="no video has a score map, a mask and labels"):
        accumulator.result()
    score_map, mask, labels = random_video(np.random.default_rng(0), 4)
    accumulator.add("v", score_map, mask, labels)
    with pytest.raises(ValueError, match="video 'v' was added twice"):
        accumulator.add("v", score_map, mask, labels)
    with pytest.raises(ValueError, match="video 'w': 4 masks but 3 labels"):
        accumulator.add("w", score_map, mask, labels[:3])


@pytest.mark.parametrize(
    ("score_map", "mask", "message"),
    [
        (np.zeros((2, 2, 2)), np.zeros((3, 4, 4), bool), "'v': score map has 2 frames, mask 3"),
        (np.zeros((2, 2)), np.zeros((2, 4, 4), bool), "'v': score map must be a non-empty"),
        (np.full((1, 2, 2), np.nan), np.zeros((1, 4, 4), bool), "'v': score map contains NaN"),
        (np.zeros((1, 2, 2)), np.full((1, 4, 4), 255, np.uint8), "'v': mask must be bool or 0/1"),
    ],
)
def test_pixel_metrics_reject_bad_input(score_map, mask, message):
    labels = {"v": np.zeros(mask.shape[0], bool)}
    with pytest.raises(ValueError, match=message):
        pixel_roc({"v": score_map}, {"v": mask}, labels)


def test_pixel_options_are_checked():
    score_map, mask = np.zeros((1, 2, 2)), np.ones((1, 4, 4), bool)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        pixel_critical_scores(score_map, mask, interpolation="cubic")
    with pytest.raises(ValueError, match="coverage must be in"):
        pixel_critical_scores(score_map, mask, coverage=0)


def test_an_uninformative_map_scores_well_below_half_pixel_auc():
    """The 40% criterion judges the two classes differently: a normal frame by its maximum
    over all pixels, an anomalous frame by the 40%-coverage score among its mask pixels. With
    i.i.d. scores, independent of the anomaly, the first is the top of ~1200 draws and the
    second about their 60th percentile, so normal frames nearly always outrank anomalous ones."""
    rng = np.random.default_rng(11)
    n_frames = 200
    labels = {"v": np.arange(n_frames) % 2 == 1}
    mask = np.zeros((n_frames, 30, 40), bool)
    mask[labels["v"], 10:20, 10:25] = True  # 150 of 1200 pixels
    maps = {"v": rng.random((n_frames, 30, 40))}
    auc_value, _ = pixel_auc_eer(maps, {"v": mask}, labels)
    assert auc_value < 0.05
    # The same noise as frame scores (each frame's maximum) is at chance, as it should be.
    frame_scores = {"v": maps["v"].max(axis=(1, 2))}
    assert 0.4 < frame_auc_micro(frame_scores, labels) < 0.6


# --- evaluate -------------------------------------------------------------------------------


def test_evaluate_reports_frame_and_pixel_metrics():
    scores = arrays(a=[0.1, 0.9, 0.2, 0.8], c=[0.5, 0.7], extra=[0.3])
    labels = arrays(a=[0, 1, 1, 0], c=[1, 1])
    frame_only, curves = evaluate(scores, labels)
    assert frame_only["frame_auc_micro"] == pytest.approx(frame_auc_micro(scores, labels))
    assert frame_only["frame_auc_macro"] == pytest.approx(0.75)
    assert frame_only["frame_eer"] == pytest.approx(eer(curves["frame"].fpr, curves["frame"].tpr))
    assert (frame_only["n_videos"], frame_only["n_frames"], frame_only["n_anomalous"]) == (2, 6, 4)
    assert frame_only["macro_n_excluded_videos"] == 1
    assert frame_only["n_videos_without_labels"] == 1
    assert "pixel_auc" not in frame_only and set(curves) == {"frame"}

    masks = {"a": np.zeros((4, 4, 4), bool), "c": np.ones((2, 4, 4), bool)}
    masks["a"][1:3, :2, :2] = True
    maps = {"a": np.zeros((4, 2, 2)), "c": np.zeros((2, 2, 2))}
    maps["a"][1:3, 0, 0] = 1.0  # anomalies found where they are; normal frames stay at 0
    maps["c"][:, 1, 1] = 0.5  # a quarter of the frame: under 40% coverage of the full mask
    metrics, curves = evaluate(scores, labels, maps, masks)
    assert metrics["pixel_n_anomalous"] == 4 and metrics["pixel_n_normal"] == 2
    # Critical values: positives 1, 1, 0, 0; negatives 0, 0 -> AUC = (2·2 + 2·2·0.5) / 8.
    assert metrics["pixel_auc"] == pytest.approx(0.75)
    assert metrics["pixel_eer"] == pytest.approx(eer(curves["pixel"].fpr, curves["pixel"].tpr))


def test_evaluate_needs_maps_and_masks_together():
    with pytest.raises(ValueError, match="score_maps and masks must be given together"):
        evaluate(arrays(a=[0.1, 0.2]), arrays(a=[0, 1]), score_maps={"a": np.zeros((2, 1, 1))})


def test_a_common_affine_map_changes_no_metric():
    """Why `evaluate.normalization: zscore` was removed: z-scoring every video with the same
    training mean and std is one increasing affine map, which keeps the order of all scores
    and so every ROC-based number."""
    rng = np.random.default_rng(5)
    scores, labels, maps, masks = {}, {}, {}, {}
    for name, n_frames in (("a", 30), ("b", 20), ("c", 25)):
        labels[name] = rng.random(n_frames) < 0.4
        scores[name] = rng.normal(labels[name] * 0.7, 1.0)
        masks[name] = np.zeros((n_frames, 8, 8), bool)
        masks[name][labels[name], 2:6, 1:5] = True
        maps[name] = rng.normal(masks[name][:, ::2, ::2] * 0.8, 1.0)
    mean, std = 3.7, 0.21  # say, the training scores' statistics
    zscored = {name: (values - mean) / std for name, values in scores.items()}
    zscored_maps = {name: (values - mean) / std for name, values in maps.items()}
    raw, _ = evaluate(scores, labels, maps, masks)
    transformed, _ = evaluate(zscored, labels, zscored_maps, masks)
    assert 0.5 < raw["frame_auc_micro"] < 1 and raw["pixel_auc"] > 0  # a non-trivial case
    for key in ("frame_auc_micro", "frame_auc_macro", "frame_eer", "pixel_auc", "pixel_eer"):
        assert transformed[key] == raw[key], key
    assert transformed["frame_auc_per_video"] == raw["frame_auc_per_video"]


# --- real data ------------------------------------------------------------------------------


def ped2_labels() -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    labels = {}
    for index, ranges in enumerate(loadmat(PED2 / "ped2.mat")["gt"][0]):
        name = f"{index + 1:02d}"
        n_frames = len(list((PED2 / "testing" / "masks" / name).glob("*.png")))
        labels[name] = np.zeros(n_frames, bool)
        for start, end in ranges.T.astype(int):
            labels[name][start - 1 : end] = True
    return labels


def ped2_masks(name: str) -> np.ndarray:
    paths = sorted((PED2 / "testing" / "masks" / name).glob("*.png"))
    return np.stack([cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0 for path in paths])


@pytest.mark.ped2
@pytest.mark.skipif(not (PED2 / "ped2.mat").exists(), reason="Ped2 not at ../shared/datasets/ped2")
def test_ped2_oracle_patch_maps_score_perfectly():
    labels = ped2_labels()
    assert sum(int(lab.sum()) for lab in labels.values()) == 1648
    rng = np.random.default_rng(2)
    scores = {name: lab + rng.random(lab.size) for name, lab in labels.items()}
    _, details = frame_auc_macro(scores, labels)
    # Clips 08 and 11 (180 frames) and 09 (120) and 10 (150) are anomalous from start to end.
    assert details["excluded"] == ["08", "09", "10", "11"]

    names = ("01", "02")
    masks = {name: ped2_masks(name) for name in names}
    # 10x15 grid of 24x24 patches, each scored by the anomalous fraction it holds.
    maps = {name: m.reshape(-1, 10, 24, 15, 24).mean(axis=(2, 4)) for name, m in masks.items()}
    metrics, _ = evaluate({n: scores[n] for n in names}, {n: labels[n] for n in names}, maps, masks)
    assert metrics["pixel_auc"] == pytest.approx(1.0)
    assert metrics["pixel_eer"] == pytest.approx(0.0)
    assert metrics["pixel_n_anomalous_empty_mask"] == 0
