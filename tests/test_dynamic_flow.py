"""Dynamic flow per frame (GMFC-VAE Sec. III-A, eq. 4): vad.motion.dynamic_flow."""

from __future__ import annotations

import numpy as np
import pytest

from vad.motion.dynamic_flow import (
    DEFAULT_OUTPUT_SCALE,
    dynamic_flows,
    dynamic_flows_raw,
    flow_gram_band,
    quantize_dynamic_flow,
    stream_dynamic_flows,
    window_dynamic_flows,
    window_layout,
    window_mean_grams,
)
from vad.motion.rank_pool import (
    approx_rank_pool_coefficients,
    rank_svm_window,
    time_varying_means,
)


def moving_square_flows(num_flows: int, height: int = 12, width: int = 16) -> np.ndarray:
    """Flows of a square drifting right with growing speed over a static background, plus noise."""
    rng = np.random.default_rng(num_flows)
    flows = 0.02 * rng.normal(size=(num_flows, height, width, 2))
    for index in range(num_flows):
        left = 2 + index % (width - 6)
        flows[index, 3:8, left : left + 4, 0] += 1.0 + 0.1 * index
    return flows.astype(np.float32)


def encoded(flows: np.ndarray, a: float = 16.0, b: float = 128.0) -> np.ndarray:
    return np.clip(flows.reshape(len(flows), -1).astype(np.float64) * a + b, 0, 255)


@pytest.mark.parametrize("method", ["ranksvm", "approx"])
@pytest.mark.parametrize(
    ("num_flows", "window", "block"), [(30, 6, 4), (30, 6, 7), (5, 6, 2), (6, 6, 1), (9, 4, 64)]
)
def test_flows_read_a_block_of_windows_at_a_time_give_the_same_maps(
    method: str, num_flows: int, window: int, block: int
) -> None:
    """The stage's streamed computation (the flows' mean, band, weighted sums and RankSVM
    solutions a block at a time) equals the whole video's, bit for bit: blocks across the
    video, a video shorter than its window, one window per block, one block."""
    flows = moving_square_flows(num_flows).astype(np.float16)  # as flow.h5 stores them
    whole = dynamic_flows(flows.astype(np.float32), window=window, method=method)
    blocks = list(
        stream_dynamic_flows(
            lambda start, stop: flows[start:stop], num_flows, window, method, block=block
        )
    )
    assert all(len(maps) <= block + window for maps in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


@pytest.mark.parametrize("method", ["ranksvm", "approx"])
def test_one_uint8_map_per_frame(method: str) -> None:
    flows = moving_square_flows(9)
    maps = dynamic_flows(flows, window=4, method=method)
    assert maps.shape == (10, 12, 16, 3) and maps.dtype == np.uint8
    assert maps[..., :2].min() < 128 < maps[..., :2].max()  # motion shows in both directions


def test_sliding_gram_equals_direct_window_gram() -> None:
    flows = moving_square_flows(11)
    values = encoded(flows)
    values -= values.mean(axis=0)  # what the pipeline works on: exact for every window

    def encode(columns: slice) -> np.ndarray:
        return values[:, columns]

    count, length = window_layout(11, 5)
    band = flow_gram_band(encode, 11, values.shape[1], length)
    grams = window_mean_grams(band, count, length)
    for start in range(count):
        means = time_varying_means(values[start : start + length])
        np.testing.assert_allclose(grams[start], means @ means.T, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("C", [0.1, 1.0, 50.0])
def test_pipeline_equals_direct_rank_svm_per_window(C: float) -> None:
    flows = moving_square_flows(10)
    windows, frame_window = window_dynamic_flows(flows, window=6, C=C)
    values = encoded(flows)
    for start in range(len(windows)):
        direct = rank_svm_window(time_varying_means(values[start : start + 6]), C=C)
        np.testing.assert_allclose(
            windows[start].reshape(-1), direct, rtol=1e-4, atol=1e-6 * np.abs(direct).max()
        )
    np.testing.assert_array_equal(frame_window, [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4])


def test_approx_is_bilen_combination_of_the_window() -> None:
    flows = moving_square_flows(7)
    windows, _ = window_dynamic_flows(flows, window=5, method="approx")
    expected = approx_rank_pool_coefficients(5) @ encoded(flows)[1:6]
    np.testing.assert_allclose(windows[1].reshape(-1), expected, rtol=1e-5, atol=1e-3)


def test_frames_near_the_end_reuse_the_last_full_window() -> None:
    raw = dynamic_flows_raw(moving_square_flows(8), window=3)
    assert raw.shape == (9, 12, 16, 2) and raw.dtype == np.float32
    for frame in (6, 7, 8):  # windows would start at flows 6, 7, 8: all use flows 5..7
        np.testing.assert_array_equal(raw[frame], raw[5])
    assert not np.array_equal(raw[4], raw[5])


def test_short_video_uses_all_its_flows_as_one_window() -> None:
    flows = moving_square_flows(4)
    assert window_layout(4, 20) == (1, 4)
    raw = dynamic_flows_raw(flows, window=20)
    direct = rank_svm_window(time_varying_means(encoded(flows)))
    for frame in range(5):
        np.testing.assert_allclose(raw[frame].reshape(-1), direct, rtol=1e-4, atol=1e-9)


def test_two_frame_video_has_zero_dynamic_flow() -> None:
    maps = dynamic_flows(moving_square_flows(1), window=20)
    assert maps.shape == (2, 12, 16, 3)
    assert np.all(maps[..., :2] == 128) and np.all(maps[..., 2] == 0)


def test_zero_motion_video_maps_to_the_neutral_value() -> None:
    maps = dynamic_flows(np.zeros((6, 5, 7, 2), np.float32), window=4)
    assert np.all(maps[..., :2] == 128) and np.all(maps[..., 2] == 0)


def test_encoding_offset_cancels() -> None:
    flows = moving_square_flows(8)  # |16 f| < 100: no clipping at either offset
    shifted = dynamic_flows_raw(flows, window=4, b=100.0)
    np.testing.assert_allclose(shifted, dynamic_flows_raw(flows, window=4), rtol=1e-4, atol=1e-9)


def test_repeated_frames_still_solve() -> None:
    flows = moving_square_flows(12)
    flows[[2, 3, 7]] = 0.0  # duplicated frames: identical flows, rank-deficient windows
    maps = dynamic_flows(flows, window=6, C=10.0)
    assert maps.shape == (13, 12, 16, 3)


def test_quantization_is_one_fixed_linear_map() -> None:
    scale = 100.0
    dynamic = np.array([[0.0, 0.0], [0.5, -0.5], [0.3, 0.4], [2.0, 0.0]])
    np.testing.assert_array_equal(
        quantize_dynamic_flow(dynamic, scale),
        [[128, 128, 0], [178, 78, 141], [158, 168, 100], [255, 128, 255]],
    )
    assert set(DEFAULT_OUTPUT_SCALE) == {"ranksvm", "approx"}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_flow_is_rejected_with_video_and_index(bad: float) -> None:
    flows = moving_square_flows(6)
    flows[3, 2, 2, 1] = bad
    with pytest.raises(ValueError, match=r"Test001: flow 3 \(frames 3 -> 4\)"):
        dynamic_flows(flows, window=4, name="Test001")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"flows": np.zeros((4, 5, 6))}, r"\(N, H, W, 2\)"),
        ({"flows": np.zeros((0, 5, 6, 2), np.float32)}, "at least one flow"),
        ({"window": 0}, "window"),
        ({"method": "svm"}, "method"),
        ({"C": -1.0}, "C"),
        ({"a": 0.0}, "encoding scale"),
        ({"scale": 0.0}, "output scale"),
    ],
)
def test_bad_arguments_are_named(changes: dict, message: str) -> None:
    arguments = {"flows": moving_square_flows(5), "window": 3, "name": "clip"} | changes
    with pytest.raises(ValueError, match=message):
        dynamic_flows(**arguments)
