"""Temporal smoothing, per-video normalization and the Protocol, on hand-made sequences."""

from __future__ import annotations

import numpy as np
import pytest

from vad.eval.metrics import frame_auc_micro
from vad.eval.postprocess import Protocol, normalization_affine, smooth_along_time


def gaussian_weights(sigma: float) -> np.ndarray:
    """The sampled kernel truncated at 4 sigma, normalized: weights for offsets -4σ..4σ."""
    offsets = np.arange(-int(4 * sigma), int(4 * sigma) + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


# --- smoothing ------------------------------------------------------------------------------


def test_median_smoothing_by_hand_with_reflected_edges():
    # Reflected: 1 | 1 5 2 8 3 | 3 -> medians of (1 1 5) (1 5 2) (5 2 8) (2 8 3) (8 3 3).
    smoothed = smooth_along_time(np.array([1.0, 5, 2, 8, 3]), "median", window=3)
    np.testing.assert_allclose(smoothed, [1, 2, 5, 3, 3])


def test_gaussian_smoothing_by_hand_with_reflected_edges():
    weights = gaussian_weights(1.0)  # offsets -4..4, centre at index 4
    impulse = np.zeros(11)
    impulse[5] = 1.0
    np.testing.assert_allclose(smooth_along_time(impulse, "gaussian", sigma=1.0)[1:10], weights)
    # At the edge, offset -1 reflects onto the first frame itself: it weighs w0 + w1.
    edge = np.zeros(11)
    edge[0] = 1.0
    smoothed = smooth_along_time(edge, "gaussian", sigma=1.0)
    assert smoothed[0] == pytest.approx(weights[4] + weights[3])
    # Reflection keeps a constant sequence constant (zero padding would pull the ends down).
    np.testing.assert_allclose(smooth_along_time(np.full(6, 2.0), "gaussian", sigma=3), 2.0)


def test_maps_are_smoothed_along_time_pixel_by_pixel():
    maps = np.zeros((5, 2, 2))
    maps[:, 0, 1] = [1.0, 5, 2, 8, 3]
    smoothed = smooth_along_time(maps, "median", window=3)
    np.testing.assert_allclose(smoothed[:, 0, 1], [1, 2, 5, 3, 3])
    smoothed[:, 0, 1] = 0
    assert not smoothed.any()  # no pixel borrowed from its neighbours


def test_no_smoothing_copies_and_keeps_float32():
    values = np.array([3.0, 1.0], dtype=np.float32)
    out = smooth_along_time(values, "none")
    out[0] = 9
    assert values[0] == 3.0 and out.dtype == np.float32


# --- normalization --------------------------------------------------------------------------


def test_minmax_affine_by_hand():
    minmax = normalization_affine(np.array([2.0, 4.0, 6.0]), "minmax")
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 6.0])), [0, 0.5, 1])
    constant = normalization_affine(np.array([3.0, 3.0]), "minmax")
    np.testing.assert_array_equal(constant(np.array([3.0, 3.0])), [0, 0])
    np.testing.assert_array_equal(normalization_affine(np.array([9.0]), "none")(np.ones(2)), 1)


@pytest.mark.parametrize(
    ("normalization", "message"),
    [
        ("zscore", "normalization 'zscore' was removed: .* leaves every ROC-based metric"),
        ("rank", "normalization must be one of none, minmax; got 'rank'"),
    ],
)
def test_normalization_rejects_bad_settings(normalization, message):
    with pytest.raises(ValueError, match=message):
        normalization_affine(np.array([1.0, 2.0]), normalization)
    with pytest.raises(ValueError, match=message):
        Protocol.from_params({"normalization": normalization})


def test_per_video_minmax_by_hand_changes_the_micro_auc():
    """Each video is scaled by its own min and max (test statistics), which reorders frames
    across videos: here the micro AUC goes from 7/12 on raw scores to 19/24."""
    scores = {"a": np.array([1.0, 2.0, 3.0, 5.0]), "b": np.array([10.0, 20.0, 30.0])}
    labels = {"a": np.array([0, 0, 1, 1]), "b": np.array([0, 1, 0])}
    protocol = Protocol(normalization="minmax")
    normalized, _ = protocol.apply(scores)
    np.testing.assert_allclose(normalized["a"], [0.0, 0.25, 0.5, 1.0])  # (s - 1) / 4
    np.testing.assert_allclose(normalized["b"], [0.0, 0.5, 1.0])  # (s - 10) / 20
    # Positives 3, 5, 20 against negatives 1, 2, 10, 30: 2 + 2 + 3 of 12 pairs ranked right.
    assert frame_auc_micro(scores, labels) == pytest.approx(7 / 12)
    # Positives 0.5, 1, 0.5 against 0, 0.25, 0, 1: 3 + 3.5 (a tie with 1) + 3 of 12.
    assert frame_auc_micro(normalized, labels) == pytest.approx(19 / 24)
    assert protocol.uses_test_statistics
    assert protocol.record() == {
        "smoothing": "none",
        "normalization": "minmax",
        "uses_test_statistics": True,
    }
    assert Protocol(smoothing="gaussian", sigma=3).record() == {
        "smoothing": "gaussian",
        "sigma": 3.0,
        "normalization": "none",
        "uses_test_statistics": False,
    }


# --- Protocol -------------------------------------------------------------------------------


def test_protocol_normalizes_each_video_and_its_maps_alike():
    protocol = Protocol.from_params({"normalization": "minmax"})
    scores = {"a": np.array([2.0, 4.0, 6.0]), "b": np.array([10.0, 30.0]), "c": np.array([7.0])}
    maps = {
        "a": np.array([[[6.0, 2.0]], [[4.0, 10.0]], [[2.0, 2.0]]], dtype=np.float32),
        "c": np.array([[[1.0, 9.0]]]),
    }
    out_scores, out_maps = protocol.apply(scores, maps)
    np.testing.assert_allclose(out_scores["a"], [0, 0.5, 1])
    np.testing.assert_allclose(out_scores["b"], [0, 1])
    np.testing.assert_array_equal(out_scores["c"], [0])
    # Maps take their video's frame-score affine (x - 2) / 4, not a min-max of their own.
    np.testing.assert_allclose(out_maps["a"], [[[1, 0]], [[0.5, 2]], [[0, 0]]])
    assert out_maps["a"].dtype == np.float32
    np.testing.assert_array_equal(out_maps["c"], [[[0, 0]]])  # constant video -> zeros
    assert set(out_maps) == {"a", "c"}


def test_protocol_smooths_before_normalizing():
    protocol = Protocol(smoothing="median", window=3, normalization="minmax")
    spike = {"v": np.array([1.0, 1.0, 50.0, 1.0, 3.0])}
    maps = {"v": np.array([1.0, 1.0, 50.0, 1.0, 3.0]).reshape(5, 1, 1)}
    out_scores, out_maps = protocol.apply(spike, maps)
    # median: 1 1 1 3 3, then min-max over the smoothed scores: 0 0 0 1 1.
    np.testing.assert_allclose(out_scores["v"], [0, 0, 0, 1, 1])
    np.testing.assert_allclose(out_maps["v"].ravel(), [0, 0, 0, 1, 1])


def test_apply_video_is_apply_for_one_video():
    protocol = Protocol(smoothing="median", window=3, normalization="minmax")
    rng = np.random.default_rng(0)
    scores = {"a": rng.random(7), "b": rng.random(4)}
    maps = {"a": rng.random((7, 2, 3)).astype(np.float32)}
    out_scores, out_maps = protocol.apply(scores, maps)
    video_scores, video_map = protocol.apply_video("a", scores["a"], maps["a"])
    np.testing.assert_array_equal(video_scores, out_scores["a"])
    np.testing.assert_array_equal(video_map, out_maps["a"])
    assert video_map.dtype == np.float32
    video_scores, no_map = protocol.apply_video("b", scores["b"])
    np.testing.assert_array_equal(video_scores, out_scores["b"])
    assert no_map is None


def test_protocol_round_trips_through_params():
    for params in (
        {"smoothing": "none", "normalization": "none"},
        {"smoothing": "median", "window": 5, "normalization": "minmax"},
        {"smoothing": "gaussian", "sigma": 1.5, "normalization": "none"},
    ):
        assert Protocol.from_params(params).as_dict() == params
    from_yaml = Protocol.from_params({"smoothing": "gaussian", "sigma": 3, "window": None})
    assert from_yaml == Protocol(smoothing="gaussian", sigma=3.0)
    assert from_yaml.as_dict() == {"smoothing": "gaussian", "sigma": 3.0, "normalization": "none"}


def test_params_may_hold_both_window_and_sigma_but_only_the_used_one_is_kept():
    params = {"smoothing": "median", "window": 9, "sigma": 3.0, "normalization": "none"}
    assert Protocol.from_params(params) == Protocol(smoothing="median", window=9)
    params["smoothing"] = "none"
    assert Protocol.from_params(params).as_dict() == {"smoothing": "none", "normalization": "none"}
    with pytest.raises(ValueError, match="window is used by median smoothing only"):
        Protocol(smoothing="gaussian", sigma=1.0, window=3)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"smoothing": "mean"}, "smoothing must be one of none, median, gaussian; got 'mean'"),
        ({"normalization": "l2"}, "normalization must be one of .*got 'l2'"),
        ({"smoothing": "median"}, "window must be an odd integer >= 1 .* got None"),
        ({"smoothing": "median", "window": 4}, "window must be an odd integer >= 1 .* got 4"),
        ({"smoothing": "median", "window": 2.5}, "window must be .* got 2.5"),
        ({"smoothing": "median", "window": True}, "window must be .* got True"),
        ({"smoothing": "gaussian", "sigma": -1}, "sigma must be a positive number .* got -1"),
        ({"smoothing": "gaussian", "sigma": "2"}, "sigma must be a positive number .* got '2'"),
        ({"smoothing": "gaussian", "sigma": 1, "window": 4}, "window must be an odd integer"),
        ({"smoothing": "none", "sigma": 0}, "sigma must be a positive number .* got 0"),
        ({"smoothing": "none", "windw": 3}, "unknown protocol key.* windw; expected"),
    ],
)
def test_protocol_rejects_bad_params(params, message):
    with pytest.raises(ValueError, match=message):
        Protocol.from_params(params)


def test_protocol_params_must_be_a_mapping():
    with pytest.raises(ValueError, match="must be a mapping, got list"):
        Protocol.from_params(["median", 3])


@pytest.mark.parametrize(
    ("scores", "maps", "message"),
    [
        ({"a": np.ones(3)}, {"b": np.ones((3, 1, 1))}, "score maps without frame scores .* b"),
        ({"a": np.ones(3)}, {"a": np.ones((2, 1, 1))}, "'a': score map must be \\(3, h, w\\)"),
        ({"a": np.ones(3)}, {"a": np.ones((3, 1))}, "'a': score map must be \\(3, h, w\\)"),
        ({"a": np.array([1.0, np.inf])}, None, "'a': scores contain NaN or infinite"),
        ({"a": np.ones((3, 1))}, None, "'a': scores must be a non-empty 1-D array"),
        ({"a": np.ones(2)}, {"a": np.full((2, 1, 1), np.nan)}, "'a': score map contains NaN"),
    ],
)
def test_apply_rejects_bad_input(scores, maps, message):
    with pytest.raises(ValueError, match=message):
        Protocol().apply(scores, maps)
